"""A single-node Apache Kafka broker (KRaft, combined broker and controller) for tests and benchmarks.

Its jars come once from Maven, pinned by `apache-kafka/pom.xml` beside this module, and are kept in
a cache folder. Unlike tansu it keeps its data under the home folder, so a restart keeps the
cluster id and every topic.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import re
import secrets
import shutil
import subprocess
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import structlog

from local.processes import (
    HOST,
    BrokerRecord,
    EmbeddedError,
    port_for,
    tail,
    verified_process,
    wait_for_broker,
)

log = structlog.get_logger(__name__)

POM = Path(__file__).with_name("apache-kafka") / "pom.xml"
# A JVM starting on a busy two-core machine takes tens of seconds.
START_TIMEOUT_S = 120.0
# A controlled shutdown writes its state; killed, the next start recovers the logs, slower.
STOP_GRACE_S = 30.0
MINIMUM_JAVA = 17
# The machines this runs on are small and shared: the broker needs far less than Java's default
# heap (a quarter of memory) for a test's traffic, and one GC thread is enough. The quick JIT
# compiler alone (C1) starts the JVM about 40% sooner on two busy cores; the broker still moves
# messages far faster than the ledger's Python clients can (bench/README.md).
JVM_OPTIONS = (
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:+ExitOnOutOfMemoryError",
    "-XX:TieredStopAtLevel=1",
)
# The classes a start loads, archived once beside the jars (Java's application class-data
# sharing): formatting then takes a third of the time, and the broker starts ~30% sooner.
CLASS_ARCHIVE = "kafka-classes.jsa"
NO_CLASS_ARCHIVE = ".no-class-archive"  # why the archive could not be made, if it could not
NEEDS = (
    "Install Java 17 or newer and Maven (Debian: apt-get install openjdk-17-jre-headless maven) "
    "to run Apache Kafka, or use the default broker, tansu (LEDGER_EMBEDDED_BROKER=tansu), "
    "which needs neither."
)


def version() -> str:
    """The Apache Kafka version pom.xml pins."""
    namespace = {"m": "http://maven.apache.org/POM/4.0.0"}
    found = ElementTree.parse(POM).find("m:properties/m:kafka.version", namespace)
    assert found is not None and found.text, f"{POM} names no kafka.version"
    return found.text


# Where tests and benchmarks keep the jars, so that their throw-away homes do not fetch them again.
SHARED_JAR_CACHE = Path.home() / ".cache" / "billing-ledger" / "apache-kafka-jars"


def jar_cache(home: Path) -> Path:
    """Where the broker's jars are kept: $LEDGER_KAFKA_JARS, else a folder under home."""
    configured = os.environ.get("LEDGER_KAFKA_JARS")
    return Path(configured).expanduser() if configured else home / "apache-kafka-jars"


def ensure_jars(cache: Path) -> Path:
    """The folder of the pinned broker's jars, fetched with Maven the first time."""
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:16]
    jars = cache / f"kafka-{version()}-{digest}"
    if not (jars / ".complete").exists():
        _fetch_jars(cache, jars)
    if not (jars / CLASS_ARCHIVE).exists() and not (jars / NO_CLASS_ARCHIVE).exists():
        with _locked(cache / ".lock"):
            if not (jars / CLASS_ARCHIVE).exists():
                _archive_classes(jars)
    return jars


def _fetch_jars(cache: Path, jars: Path) -> None:
    maven = _program("mvn", "Maven")
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(cache / ".lock"):
        if (jars / ".complete").exists():  # another process fetched them while we waited
            return
        partial = jars.with_name(f".{jars.name}.{os.getpid()}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        command = [maven, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies"]
        command += ["-DincludeScope=runtime", f"-DoutputDirectory={partial}"]
        fetched = subprocess.run(command, capture_output=True, text=True, check=False)
        if fetched.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            raise ApacheKafkaError(
                f"Maven could not fetch Apache Kafka {version()}'s jars "
                f"(exit {fetched.returncode}):\n{(fetched.stdout + fetched.stderr)[-3000:]}"
            )
        (partial / ".complete").write_text(f"{POM.read_text()}")
        shutil.rmtree(jars, ignore_errors=True)
        partial.rename(jars)


def _archive_classes(jars: Path) -> None:
    """Archive the classes a storage format loads (in a throwaway folder), for later JVMs.

    The archive names the class path, so it is made where the jars stay. Without it every JVM
    still starts, only slower: a failure is logged and remembered, not raised.
    """
    started_at = time.perf_counter()
    scratch = jars / f".archive-run.{os.getpid()}"
    partial = jars / f".{CLASS_ARCHIVE}.{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    config = scratch / "server.properties"
    config.write_text(server_properties(scratch / "data", f"{HOST}:9092", f"{HOST}:9093"))
    command = [java(), *JVM_OPTIONS, f"-XX:ArchiveClassesAtExit={partial}", "-cp", f"{jars}/*"]
    command += ["kafka.tools.StorageTool", "format", "--standalone"]
    command += ["--cluster-id", new_cluster_id(), "--config", str(config)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    shutil.rmtree(scratch, ignore_errors=True)
    if done.returncode != 0 or not partial.exists():
        partial.unlink(missing_ok=True)
        (jars / NO_CLASS_ARCHIVE).write_text((done.stdout + done.stderr)[-3000:])
        log.warning("embedded.kafka.class_archive.failed", jars=str(jars), exit=done.returncode)
        return
    os.replace(partial, jars / CLASS_ARCHIVE)
    seconds = round(time.perf_counter() - started_at, 3)
    log.info(
        "embedded.kafka.class_archive.written", path=str(jars / CLASS_ARCHIVE), seconds=seconds
    )


def java() -> str:
    """The java program, checked to be recent enough for Apache Kafka 4."""
    program = _program("java", "Java")
    answer = subprocess.run(
        [program, "-version"], capture_output=True, text=True, check=False
    ).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', answer)
    major = int(match.group(1)) if match else 0
    if major == 1 and match and match.group(2):  # "1.8.0" is Java 8
        major = int(match.group(2))
    if major < MINIMUM_JAVA:
        raise ApacheKafkaError(f"{program} is Java {major or '?'}, too old. {NEEDS}")
    return program


def new_cluster_id() -> str:
    """A cluster id as Kafka writes them: 16 random bytes, URL-safe base64 without padding."""
    while True:
        candidate = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
        if not candidate.startswith("-"):  # Kafka avoids ids that read as a command-line option
            return candidate


def stored_cluster_id(data: Path) -> str | None:
    """The cluster id the storage in data was formatted with, if it was."""
    try:
        lines = (data / "meta.properties").read_text().splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        name, _, value = line.partition("=")
        if name.strip() == "cluster.id":
            return value.strip()
    return None


def server_properties(data: Path, bootstrap: str, controller: str) -> str:
    """The broker's configuration: one node, loopback only, topics created explicitly."""
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "listeners": f"PLAINTEXT://{bootstrap},CONTROLLER://{controller}",
        "advertised.listeners": f"PLAINTEXT://{bootstrap}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.quorum.bootstrap.servers": controller,
        "log.dirs": str(data),
        # As docker-compose.yml: the ledger creates its topics; a typo must not make a new one.
        "auto.create.topics.enable": "false",
        # One broker: the internal topics cannot have more replicas than that.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # A group's first join otherwise waits 3 s for more members; tests start one at a time.
        "group.initial.rebalance.delay.ms": "0",
        # Tests use session timeouts of 2 s, under Apache Kafka's default minimum of 6 s.
        "group.min.session.timeout.ms": "1000",
        "num.partitions": "1",
    }
    return "".join(f"{name}={value}\n" for name, value in settings.items())


LOG4J2_PROPERTIES = """\
# The broker logs to its standard output, which local/apache_kafka.py sends to the log file.
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def process(record: BrokerRecord) -> tuple[psutil.Process | None, str]:
    """The running broker of record, or None and why not: a java running its server.properties."""
    return verified_process(record["pid"], program="java", argument=record.get("config", "?"))


def start(home: Path, previous: BrokerRecord | None) -> BrokerRecord:
    """Start the broker on the previous start's ports when free, formatting its storage once."""
    jars = ensure_jars(jar_cache(home))
    started_at = time.perf_counter()
    same_kind = previous if previous and previous.get("broker") == "apache-kafka" else None
    bootstrap = f"{HOST}:{port_for(same_kind['bootstrap'] if same_kind else None)}"
    controller = f"{HOST}:{port_for(same_kind.get('controller') if same_kind else None)}"
    record = prepare(home, jars, bootstrap, controller)
    broker = launch(jars, record)
    timeout_s = float(os.environ.get("LEDGER_KAFKA_START_TIMEOUT_S") or START_TIMEOUT_S)
    log_path = Path(record["log"])
    if problem := wait_for_broker(broker, bootstrap, record["cluster_id"], log_path, timeout_s):
        raise ApacheKafkaError(f"the embedded Apache Kafka broker on {bootstrap}: {problem}")
    broker.returncode = 0  # tracked by its pid from here on, as tansu is (local/tansu.py)
    record["pid"] = broker.pid
    seconds = round(time.perf_counter() - started_at, 3)
    log.info(
        "embedded.kafka.started",
        broker="apache-kafka",
        version=version(),
        pid=broker.pid,
        address=bootstrap,
        cluster_id=record["cluster_id"],
        seconds=seconds,
    )
    return record


def prepare(home: Path, jars: Path, bootstrap: str, controller: str) -> BrokerRecord:
    """Write the configuration and format the storage unless it already is; keep its cluster id."""
    folder = home / "apache-kafka"
    data, config, log_path = folder / "data", folder / "server.properties", folder / "broker.log"
    folder.mkdir(parents=True, exist_ok=True)
    config.write_text(server_properties(data, bootstrap, controller))
    (folder / "log4j2.properties").write_text(LOG4J2_PROPERTIES)
    cluster_id = stored_cluster_id(data)
    if cluster_id is None:
        cluster_id = new_cluster_id()
        command = [*java_command(jars, folder), "kafka.tools.StorageTool", "format"]
        command += ["--standalone", "--cluster-id", cluster_id, "--config", str(config)]
        with log_path.open("ab") as log_file:
            formatted = subprocess.run(
                command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT
            )
        if formatted.returncode != 0:
            raise ApacheKafkaError(
                f"formatting Apache Kafka's storage in {data} failed "
                f"(exit {formatted.returncode})\n{tail(log_path)}"
            )
    return BrokerRecord(
        broker="apache-kafka",
        pid=None,
        bootstrap=bootstrap,
        cluster_id=cluster_id,
        log=str(log_path),
        controller=controller,
        config=str(config),
    )


def java_command(jars: Path, folder: Path) -> list[str]:
    """java with the broker's class path, heap and logging, ready for a main class."""
    logging = f"-Dlog4j2.configurationFile={folder / 'log4j2.properties'}"
    archive = jars / CLASS_ARCHIVE
    sharing = [f"-XX:SharedArchiveFile={archive}"] if archive.exists() else []
    return [java(), *JVM_OPTIONS, *sharing, logging, "-cp", f"{jars}/*"]


def launch(jars: Path, record: BrokerRecord) -> subprocess.Popen[bytes]:
    """Start the broker in its own session, its output appended to its log."""
    folder = Path(record["config"]).parent
    command = [*java_command(jars, folder), "kafka.Kafka", record["config"]]
    with Path(record["log"]).open("ab") as log_file:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _program(name: str, what: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ApacheKafkaError(f"{what} ({name}) is not on PATH. {NEEDS}")
    return found


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        yield


class ApacheKafkaError(EmbeddedError):
    """Apache Kafka could not be fetched, formatted or started; the message says what to do."""
