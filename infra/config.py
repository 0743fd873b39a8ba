"""Settings from the environment: every LEDGER_* variable the services read, in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from infra.logs import mask_secrets

# Every variable the ledger reads, with its meaning; README.md's configuration table matches it.
VARIABLES: dict[str, str] = {
    "LEDGER_DATABASE_URL": "PostgreSQL URI; its TLS parameters (?sslmode=verify-full&sslrootcert=...) "
    "apply to every connection. Unset: an embedded server is started under LEDGER_HOME.",
    "LEDGER_KAFKA_BOOTSTRAP": "Kafka bootstrap servers, host:port[,host:port]. Unset: an "
    "embedded broker is started on a free loopback port.",
    "LEDGER_HOME": "Folder of the embedded servers' data, logs and state (default ~/.billing-ledger).",
    "LEDGER_EMBEDDED_BROKER": "The embedded broker: tansu (default; in memory, needs only Python) "
    "or apache-kafka (Apache Kafka 4 in KRaft mode, keeps its data; needs Java 17+ and Maven).",
    "LEDGER_KAFKA_JARS": "Folder caching the embedded Apache Kafka's jars (default "
    "LEDGER_HOME/apache-kafka-jars).",
    "LEDGER_KAFKA_START_TIMEOUT_S": "Seconds the embedded Apache Kafka may take to start (default 120).",
    "LEDGER_TOPIC_PARTITIONS": "Partitions of each topic the ledger creates (default 3).",
    "LEDGER_REPLICATION_FACTOR": "Replication factor of each topic the ledger creates (default 1).",
    "LEDGER_CONSUMER_GROUP": "Consumer group prefix of the ledger's workers (default billing-ledger).",
    "LEDGER_BATCH_SIZE": "Most commands handled in one transaction (default 500; the relay takes at least 1,000 events a transaction, the projections at least 5,000).",
    "LEDGER_WORKERS": "Processes of ledger run's command handler (default 0: the command handler, "
    "relay and projections are threads of one process). N >= 1: N command processes in one "
    "consumer group, one relay process and one projections process, so every core works.",
    "LEDGER_ACCOUNT_CACHE": "Accounts each command worker keeps in memory between batches, for "
    "the partitions it owns (default 20000; 0: read every account from the event store).",
    "LEDGER_ACCOUNT_CACHE_EVENTS": "Events those cached accounts may hold in all (default "
    "500000, about 120 MB): an account's memory grows with its history, so the least recently "
    "used are dropped past it too; 0: no limit.",
    "LEDGER_SESSION_TIMEOUT_MS": "Kafka consumer session timeout (default 6000: the embedded "
    "broker joins groups in about half of it).",
    "LEDGER_LOG_LEVEL": "debug, info, warning or error (default info).",
    "LEDGER_LOG_FORMAT": "json (one JSON object per line) or console (readable columns); "
    "default: console when stderr is a terminal, json otherwise.",
    "LEDGER_CLOCK_INTERVAL_S": "Seconds between the ticks of ledger run's clock, which sends "
    "AdvanceClock at the current time for every account (default 0: no clock).",
    "LEDGER_KAFKA_CLIENT": "kafka-python (default) or confluent-kafka (the faster librdkafka "
    "client; install the extra: pip install 'billing-ledger[fast]').",
    "LEDGER_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (default PLAINTEXT).",
    "LEDGER_KAFKA_SASL_MECHANISM": "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, with SASL_* protocols.",
    "LEDGER_KAFKA_SASL_USERNAME": "SASL user name.",
    "LEDGER_KAFKA_SASL_PASSWORD": "SASL password (never logged).",
    "LEDGER_KAFKA_SSL_CAFILE": "CA bundle (PEM) that signs the brokers' certificates, with SSL "
    "and SASL_SSL (default: the system's CAs).",
    "LEDGER_KAFKA_SSL_CERTFILE": "Client certificate (PEM) for brokers that authenticate clients "
    "by certificate, with SSL and SASL_SSL; may hold the private key too.",
    "LEDGER_KAFKA_SSL_KEYFILE": "Private key (PEM, unencrypted) of LEDGER_KAFKA_SSL_CERTFILE, when "
    "that file does not hold it.",
}

# The Kafka client libraries infra.kafka.factory can build the clients with; the first is the default.
KAFKA_CLIENTS = ("kafka-python", "confluent-kafka")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
# The SASL mechanisms that authenticate with a user name and a password (kafka-python's
# sasl_plain_username / sasl_plain_password serve all three).
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class KafkaSecurity:
    """Kafka authentication and encryption settings, passed to every client as they are."""

    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    @property
    def uses_sasl(self) -> bool:
        """Whether the clients authenticate with SASL."""
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def uses_tls(self) -> bool:
        """Whether the connections to the brokers are encrypted."""
        return self.security_protocol in ("SSL", "SASL_SSL")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> KafkaSecurity:
        """Read the LEDGER_KAFKA_SECURITY_PROTOCOL, _SASL_* and _SSL_* variables; refuse a
        combination the clients would reject, or silently ignore, at connection time."""
        security = cls(
            security_protocol=(env.get("LEDGER_KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT").upper(),
            sasl_mechanism=(env.get("LEDGER_KAFKA_SASL_MECHANISM") or "").upper() or None,
            sasl_username=env.get("LEDGER_KAFKA_SASL_USERNAME") or None,
            sasl_password=env.get("LEDGER_KAFKA_SASL_PASSWORD") or None,
            ssl_cafile=env.get("LEDGER_KAFKA_SSL_CAFILE") or None,
            ssl_certfile=env.get("LEDGER_KAFKA_SSL_CERTFILE") or None,
            ssl_keyfile=env.get("LEDGER_KAFKA_SSL_KEYFILE") or None,
        )
        _check_protocol(security)
        _check_sasl(security)
        _check_tls_files(security)
        return security


PLAINTEXT = KafkaSecurity()


@dataclass(frozen=True)
class Settings:
    """What the services are configured with."""

    database_url: str | None
    kafka_bootstrap: str | None
    topic_partitions: int = 3
    replication_factor: int = 1
    consumer_group: str = "billing-ledger"
    batch_size: int = 500
    workers: int = 0
    account_cache: int = 20_000
    account_cache_events: int = 500_000  # 0: no limit
    session_timeout_ms: int = 6000
    clock_interval_s: float = 0.0
    log_level: str = "info"
    log_format: str | None = None  # json or console; None: console on a terminal
    kafka_security: KafkaSecurity = PLAINTEXT
    kafka_client: str = KAFKA_CLIENTS[0]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from `env` (the process environment by default)."""
        env = os.environ if env is None else env
        return cls(
            database_url=env.get("LEDGER_DATABASE_URL") or None,
            kafka_bootstrap=env.get("LEDGER_KAFKA_BOOTSTRAP") or None,
            topic_partitions=_positive(env, "LEDGER_TOPIC_PARTITIONS", 3),
            replication_factor=_positive(env, "LEDGER_REPLICATION_FACTOR", 1),
            consumer_group=env.get("LEDGER_CONSUMER_GROUP") or "billing-ledger",
            batch_size=_positive(env, "LEDGER_BATCH_SIZE", 500),
            workers=_count(env, "LEDGER_WORKERS", 0),
            account_cache=_count(env, "LEDGER_ACCOUNT_CACHE", 20_000),
            account_cache_events=_count(env, "LEDGER_ACCOUNT_CACHE_EVENTS", 500_000),
            session_timeout_ms=_positive(env, "LEDGER_SESSION_TIMEOUT_MS", 6000),
            clock_interval_s=_seconds(env, "LEDGER_CLOCK_INTERVAL_S"),
            log_level=(env.get("LEDGER_LOG_LEVEL") or "info").lower(),
            log_format=_log_format(env),
            kafka_security=KafkaSecurity.from_env(env),
            kafka_client=_kafka_client(env),
        )

    def __repr__(self) -> str:
        # The database URL may carry a password; KafkaSecurity leaves its password out.
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))
        return mask_secrets(f"Settings({shown})")


def _log_format(env: Mapping[str, str]) -> str | None:
    raw = (env.get("LEDGER_LOG_FORMAT") or "").lower()
    if raw and raw not in ("json", "console"):
        raise ConfigError(f"LEDGER_LOG_FORMAT must be json or console, got {raw!r}")
    return raw or None


def _kafka_client(env: Mapping[str, str]) -> str:
    raw = (env.get("LEDGER_KAFKA_CLIENT") or KAFKA_CLIENTS[0]).lower()
    if raw not in KAFKA_CLIENTS:
        raise ConfigError(
            f"LEDGER_KAFKA_CLIENT must be one of {', '.join(KAFKA_CLIENTS)}, got {raw!r}"
        )
    return raw


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    return _whole(env, name, default, least=1)


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    return _whole(env, name, default, least=0)


def _whole(env: Mapping[str, str], name: str, default: int, *, least: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < least:
        raise ConfigError(f"{name} must be at least {least}, got {value}")
    return value


def _check_protocol(security: KafkaSecurity) -> None:
    if security.security_protocol not in SECURITY_PROTOCOLS:
        raise ConfigError(
            f"LEDGER_KAFKA_SECURITY_PROTOCOL must be one of {', '.join(SECURITY_PROTOCOLS)}, "
            f"got {security.security_protocol!r}"
        )


def _check_sasl(security: KafkaSecurity) -> None:
    protocol = security.security_protocol
    given = [
        name
        for name, value in (
            ("LEDGER_KAFKA_SASL_MECHANISM", security.sasl_mechanism),
            ("LEDGER_KAFKA_SASL_USERNAME", security.sasl_username),
            ("LEDGER_KAFKA_SASL_PASSWORD", security.sasl_password),
        )
        if value
    ]
    if not security.uses_sasl:
        if given:
            raise ConfigError(
                f"{', '.join(given)} set, but LEDGER_KAFKA_SECURITY_PROTOCOL={protocol} does not "
                "use SASL: set it to SASL_SSL (or SASL_PLAINTEXT), or unset the SASL variables"
            )
        return
    if security.sasl_mechanism is None:
        raise ConfigError(
            f"LEDGER_KAFKA_SECURITY_PROTOCOL={protocol} needs LEDGER_KAFKA_SASL_MECHANISM "
            f"({', '.join(SASL_MECHANISMS)})"
        )
    if security.sasl_mechanism not in SASL_MECHANISMS:
        raise ConfigError(
            f"LEDGER_KAFKA_SASL_MECHANISM must be one of {', '.join(SASL_MECHANISMS)}, "
            f"got {security.sasl_mechanism!r}"
        )
    missing = [
        name
        for name, value in (
            ("LEDGER_KAFKA_SASL_USERNAME", security.sasl_username),
            ("LEDGER_KAFKA_SASL_PASSWORD", security.sasl_password),
        )
        if not value
    ]
    if missing:
        raise ConfigError(
            f"LEDGER_KAFKA_SASL_MECHANISM={security.sasl_mechanism} needs {' and '.join(missing)}"
        )


def _check_tls_files(security: KafkaSecurity) -> None:
    files = [
        (name, value)
        for name, value in (
            ("LEDGER_KAFKA_SSL_CAFILE", security.ssl_cafile),
            ("LEDGER_KAFKA_SSL_CERTFILE", security.ssl_certfile),
            ("LEDGER_KAFKA_SSL_KEYFILE", security.ssl_keyfile),
        )
        if value
    ]
    if files and not security.uses_tls:
        raise ConfigError(
            f"{', '.join(name for name, _ in files)} set, but LEDGER_KAFKA_SECURITY_PROTOCOL="
            f"{security.security_protocol} does not use TLS: set it to SSL (or SASL_SSL), or "
            "unset the SSL variables"
        )
    for name, value in files:
        if not Path(value).is_file():
            raise ConfigError(f"{name} names {value}, which does not exist or is not a file")
    if security.ssl_keyfile and not security.ssl_certfile:
        raise ConfigError(
            "LEDGER_KAFKA_SSL_KEYFILE needs LEDGER_KAFKA_SSL_CERTFILE, the certificate of that key"
        )


def _seconds(env: Mapping[str, str], name: str) -> float:
    raw = env.get(name)
    if not raw:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {value}")
    return value


class ConfigError(ValueError):
    """A LEDGER_* variable has a value the ledger cannot use."""
