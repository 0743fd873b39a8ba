"""The `ledger` command: run the services, manage the embedded servers, send commands."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from audit import cli as audit_cli
from commands.mapping import key_field_of
from demo.command import add_demo_parser
from infra import logs
from infra.config import VARIABLES, ConfigError, Settings
from infra.kafka import KafkaClients, Outgoing, clients
from infra.postgres import redact
from local import embedded
from projections.registry import read_model_tables
from runtime import analytics, history, projections_command, report_command, runner, send
from runtime.processes import LoopDied
from runtime.projections_status import projections_status
from wire.codec import AvroCodec, AvroError
from wire.topics import COMMANDS_TOPIC, DEAD_LETTER_TOPIC, EVENTS_TOPIC, RESULTS_TOPIC

EPILOG = "Environment:\n" + "\n".join(f"  {name}\n      {text}" for name, text in VARIABLES.items())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ledger` console script; answers the exit status."""
    codec = AvroCodec()
    parser = build_parser(codec)
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        logs.configure(settings.log_level, settings.log_format)
        return int(args.action(args, settings, codec))
    except (
        ConfigError,
        embedded.EmbeddedError,
        send.SendError,
        AvroError,
        analytics.AnalyticsError,
        report_command.ReportError,
        history.HistoryError,
        NoServer,
        *audit_cli.ERRORS,
    ) as error:
        print(f"ledger: {error}", file=sys.stderr)
        return 2


def build_parser(codec: AvroCodec) -> argparse.ArgumentParser:
    """The argument parser, with one `send` subcommand per command schema."""
    parser = argparse.ArgumentParser(
        prog="ledger",
        description="billing-ledger: an event-sourced ledger for recurring billing.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = parser.add_subparsers(
        dest="verb", required=True, metavar="{run,demo,infra,send,db,projections,report,audit}"
    )

    run = verbs.add_parser(
        "run",
        help="run the command handler, the event relay and the projections",
        description="Run the command handler, the event relay and the projections until "
        "Ctrl-C or SIGTERM: as threads of one process, or with --workers each in a process of "
        "its own. Uses LEDGER_DATABASE_URL and LEDGER_KAFKA_BOOTSTRAP "
        "when set; starts embedded servers under LEDGER_HOME for what is unset, and stops "
        "the ones it started on exit.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--clock",
        type=float,
        metavar="SECONDS",
        help="also run a clock: every SECONDS, send AdvanceClock at the current time for every "
        "account (overrides LEDGER_CLOCK_INTERVAL_S)",
    )
    run.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="run N command-handler processes, one relay process and one projections process, "
        "so every core works; 0 runs them as threads of one process (overrides LEDGER_WORKERS)",
    )
    run.set_defaults(action=do_run)
    add_demo_parser(verbs)

    infra = verbs.add_parser(
        "infra",
        help="start, stop or show the embedded PostgreSQL and Kafka-compatible broker",
        description="Manage the embedded servers on their own. The default broker, tansu, keeps "
        "data in memory only: stopping it loses its topics and the ledger republishes its events. "
        "Apache Kafka (--broker apache-kafka, Java 17+ and Maven) keeps its data across restarts.",
    )
    infra.add_argument("operation", choices=["up", "down", "status"])
    infra.add_argument(
        "--broker",
        choices=sorted(embedded.BROKERS),
        help="with up: the broker to start (default LEDGER_EMBEDDED_BROKER, else the one this "
        "home ran last, else tansu)",
    )
    infra.add_argument("--json", action="store_true", help="print the status as JSON")
    infra.set_defaults(action=do_infra)

    sender = verbs.add_parser(
        "send",
        help="publish commands to billing.commands, from flags or a JSON-lines file",
        description="Publish commands as an upstream system would. Either name a command and "
        "give its fields as flags, or pass --file with one JSON object per line: "
        '{"type": "OpenAccount", "account_id": "acc-1", ...}. command_id defaults to a new '
        "UUID and issued_at to now. Then waits for each command's result on "
        "billing.command-results and prints it: on a terminal one line per command, else one "
        "JSON line per command (type, command_id, key, status, event_ids or rejection). Exit "
        "status: 0 every command accepted, 1 some rejected, 3 some result did not arrive "
        "within --timeout, 2 nothing sent (bad input or no broker).",
    )
    sender.add_argument("--file", type=Path, help="JSON-lines file of commands ('-' for stdin)")
    add_wait_flags(sender, argparse.Namespace(no_wait=False, timeout=WAIT_TIMEOUT_S))
    sender.set_defaults(action=do_send, command_type=None)
    types = sender.add_subparsers(dest="command_type", metavar="COMMAND")
    for command_type in send.command_names(codec):
        add_command_parser(types, codec, command_type)
    add_db_parser(verbs)
    add_projections_parser(verbs)
    report_command.add_parser(verbs, do_report)
    audit_cli.add_audit_parser(verbs, _database_url, _bootstrap)
    return parser


def add_projections_parser(verbs: Any) -> None:
    """`ledger projections status`: the read models against the head of billing.events."""
    projections = verbs.add_parser(
        "projections",
        help="show how far the read models are behind billing.events, and what failed",
        description="Inspect the read models the projector feeds (LEDGER_DATABASE_URL and "
        "LEDGER_KAFKA_BOOTSTRAP, or the running embedded servers).",
    )
    operations = projections.add_subparsers(dest="operation", required=True, metavar="OPERATION")
    status = operations.add_parser(
        "status",
        help="each read model's position and lag, failed events and stale accounts",
        description="For each partition of billing.events: the last offset the read models "
        "applied, the head (the high watermark of a fetch) and the lag between them; then "
        "every event a read model failed to apply (projection_failures) and the accounts "
        "that are stale because of it (their rows stop before the failed event).",
    )
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(action=do_projections_status)
    projections_command.add_rebuild_parser(operations, do_projections_rebuild)


def add_db_parser(verbs: Any) -> None:
    """`ledger db grant-analytics`: database administration."""
    database = verbs.add_parser(
        "db",
        help="administer the ledger's PostgreSQL database",
        description="Administer the ledger's database (LEDGER_DATABASE_URL, or the running "
        "embedded server), as the ledger's database user.",
    )
    operations = database.add_subparsers(dest="operation", required=True, metavar="OPERATION")
    grant = operations.add_parser(
        "grant-analytics",
        help="let a read-only role read the read models, and nothing of the event store",
        description="Create the role if missing (LOGIN NOINHERIT), grant it CONNECT on the "
        "database, USAGE on the schema, SELECT on the read models ("
        + ", ".join(analytics.READ_MODEL_TABLES)
        + ") and on the tables the ledger creates later; revoke everything on "
        + ", ".join(analytics.PROTECTED_TABLES)
        + ". Start the ledger once before, so that its tables exist. Safe to run again.",
    )
    grant.add_argument("--role", required=True, help="name of the analytics role")
    grant.add_argument(
        "--password-env",
        metavar="VAR",
        help="set the role's password from environment variable VAR (never from the command "
        "line, which other users can see); unset: the password is left as it is",
    )
    grant.set_defaults(action=do_grant_analytics)


WAIT_TIMEOUT_S = 30.0


def add_wait_flags(parser: argparse.ArgumentParser, defaults: argparse.Namespace | None) -> None:
    """--no-wait and --timeout, on `send` (with defaults) and on each command (without, so
    that `send --no-wait OpenAccount ...` and `send OpenAccount --no-wait ...` both work)."""
    parser.add_argument(
        "--no-wait",
        action="store_true",
        default=defaults.no_wait if defaults else argparse.SUPPRESS,
        help="print each command as sent and exit, without waiting for its result",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        default=defaults.timeout if defaults else argparse.SUPPRESS,
        help=f"how long to wait for the results (default {WAIT_TIMEOUT_S:g})",
    )


def add_command_parser(types: Any, codec: AvroCodec, command_type: str) -> None:
    """A `send <command>` parser with one flag per field of the command's schema."""
    schema = codec.schema(f"billing.commands.{command_type}")
    sub = types.add_parser(command_type, help=schema.get("doc"), description=schema.get("doc"))
    for avro_field in schema["fields"]:
        name = avro_field["name"]
        optional = name in ("command_id", "issued_at") or "default" in avro_field
        kind, choices = _flag_kind(avro_field["type"])
        hint = {"json": " (JSON)", "time": " (ISO 8601; default now)"}.get(kind, "")
        sub.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            required=not optional,
            choices=choices,
            type=int if kind == "int" else str,
            help=(avro_field.get("doc") or "")
            + hint
            + (f" Default: {avro_field['default']!r}." if "default" in avro_field else ""),
        )
    add_wait_flags(sub, None)
    sub.set_defaults(field_kinds={f["name"]: _flag_kind(f["type"])[0] for f in schema["fields"]})


def _flag_kind(avro_type: Any) -> tuple[str, list[str] | None]:
    if isinstance(avro_type, list) and len(avro_type) == 2 and "null" in avro_type:
        return _flag_kind(next(t for t in avro_type if t != "null"))  # optional: leave it out
    if isinstance(avro_type, dict) and avro_type.get("logicalType") == "date":
        return "str", None  # ISO 8601, e.g. 2027-12-31
    if avro_type == "boolean":
        return "bool", ["true", "false"]
    if isinstance(avro_type, dict) and avro_type.get("logicalType") == "timestamp-millis":
        return "time", None
    if isinstance(avro_type, dict) and avro_type.get("type") == "enum":
        return "str", list(avro_type["symbols"])
    if avro_type in ("int", "long"):
        return "int", None
    if avro_type == "string":
        return "str", None
    return "json", None


def do_run(args: argparse.Namespace, settings: Settings, codec: AvroCodec) -> int:
    """`ledger run`."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    if args.clock is not None:
        if args.clock < 0:
            raise ConfigError(f"--clock must not be negative, got {args.clock}")
        settings = replace(settings, clock_interval_s=args.clock)
    if args.workers is not None:
        if args.workers < 0:
            raise ConfigError(f"--workers must not be negative, got {args.workers}")
        settings = replace(settings, workers=args.workers)
    try:
        runner.run(settings, stop, on_running=print_banner if sys.stdout.isatty() else None)
    except LoopDied as died:
        print(f"ledger: {died}; every loop was stopped (restart to resume)", file=sys.stderr)
        return 1
    return 0


def print_banner(where: runner.Endpoints) -> None:
    """Tell a person at a terminal where the ledger runs and how to use and stop it."""
    print(banner(where), flush=True)


def banner(where: runner.Endpoints) -> str:
    """The few lines `ledger run` starts with on a terminal."""
    return "\n".join(
        [
            "billing-ledger is running.",
            f"  PostgreSQL  {redact(where.database_url)}",
            f"  Kafka       {where.kafka.bootstrap} (cluster {where.cluster_id})",
            f"  topics      {COMMANDS_TOPIC} in; {EVENTS_TOPIC}, {RESULTS_TOPIC}, "
            f"{DEAD_LETTER_TOPIC} out",
            "  read models " + ", ".join(read_model_tables()),
            "Send a command from another terminal:",
            "  ledger send OpenAccount --account-id acc-1 --currency EUR --customer-reference crm-1",
            "Stop with Ctrl-C (the batch in flight is finished first).",
        ]
    )


def do_grant_analytics(args: argparse.Namespace, settings: Settings, codec: AvroCodec) -> int:
    """`ledger db grant-analytics`."""
    password = None
    if args.password_env is not None:
        password = os.environ.get(args.password_env)
        if not password:
            raise analytics.AnalyticsError(
                f"--password-env {args.password_env}: that variable is unset or empty"
            )
    grant = analytics.grant_analytics(_database_url(settings), args.role, password)
    print(grant.describe())
    return 0


def do_projections_status(args: argparse.Namespace, settings: Settings, codec: AvroCodec) -> int:
    """`ledger projections status`."""
    kafka = clients(_bootstrap(settings), settings)
    status = projections_status(_database_url(settings), kafka)
    print(json.dumps(status.as_dict(), indent=2) if args.json else status.describe())
    return 0


def do_report(args: argparse.Namespace, settings: Settings, codec: AvroCodec) -> int:
    """`ledger report`: an option the report does not take is refused before any server."""
    report_command.refuse_options_not_taken(args)
    return report_command.run(args, _database_url(settings), sys.stdout)


def do_projections_rebuild(args: argparse.Namespace, settings: Settings, codec: AvroCodec) -> int:
    """`ledger projections rebuild`: the history from billing.events when a broker is there."""
    try:
        kafka: KafkaClients | None = clients(_bootstrap(settings), settings)
    except NoServer:
        kafka = None  # no broker configured or running: the event store is the history
    return projections_command.run(args, _database_url(settings), kafka)


def do_infra(args: argparse.Namespace, settings: Settings, codec: AvroCodec) -> int:
    """`ledger infra up|down|status`."""
    home = embedded.ledger_home()
    if args.operation == "up":
        status, _ = embedded.up(home, broker=args.broker)
    elif args.operation == "down":
        status = embedded.down(home)
    else:
        status = embedded.status(home)
    if args.json:
        print(json.dumps(status.as_dict(), indent=2))
    else:
        print(describe(status))
    running = status.postgres.running and status.kafka.running
    return 0 if args.operation == "down" or running else 3


def describe(status: embedded.EmbeddedStatus) -> str:
    """The status for people, with the variables that point the ledger at these servers."""
    lines = [f"home: {status.home}"]
    for server in (status.postgres, status.kafka):
        state = f"running (pid {server.pid})" if server.running else "not running"
        lines.append(f"{server.name}: {state}  {server.address or ''}  {server.detail}".rstrip())
    if status.postgres.running and status.kafka.running:
        lines += [
            "",
            "Connect with:",
            f"  export LEDGER_DATABASE_URL='{status.postgres.address}'",
            f"  export LEDGER_KAFKA_BOOTSTRAP='{status.kafka.address}'",
        ]
    return "\n".join(lines)


def do_send(args: argparse.Namespace, settings: Settings, codec: AvroCodec) -> int:
    """`ledger send`."""
    now = datetime.now(UTC).replace(microsecond=0)
    if args.command_type is None and args.file is None:
        raise send.SendError(
            "name a command (e.g. `ledger send OpenAccount --help`) or pass --file"
        )
    if args.command_type is not None:
        items = [(0, args.command_type, _fields_from_flags(args))]
    else:
        stream = sys.stdin if str(args.file) == "-" else args.file.open(encoding="utf-8")
        with stream:
            items = list(send.read_json_lines(stream))
    known = set(send.command_names(codec))
    messages = []
    for number, command_type, fields in items:
        if command_type not in known:
            raise send.SendError(
                f"line {number}: unknown command type {command_type!r}; "
                f"known: {', '.join(sorted(known))}"
            )
        record = send.complete(command_type, fields, now)
        try:
            messages.append((record, send.encode_command(codec, command_type, record)))
        except AvroError as error:
            raise send.SendError(f"line {number}: {command_type}: {error}") from None
    kafka = clients(_bootstrap(settings), settings)
    results = _send_and_wait(kafka, codec, [m for _, m in messages], args)
    lines = []
    for (record, _), (_, command_type, _) in zip(messages, items, strict=True):
        key = key_field_of(command_type)
        sent = {"type": command_type, "command_id": record["command_id"], key: record[key]}
        result = results.get(record["command_id"]) if results is not None else None
        if results is None:
            lines.append(json.dumps(sent))
        elif sys.stdout.isatty():
            lines.append(send.describe_result(command_type, str(record[key]), result))
        else:
            lines.append(json.dumps(sent | send.result_summary(result), default=str))
    print("\n".join(lines))
    return _send_status(results, len(messages))


def _send_and_wait(
    kafka: KafkaClients, codec: AvroCodec, messages: list[Outgoing], args: argparse.Namespace
) -> dict[str, dict[str, Any]] | None:
    """Publish `messages`; unless --no-wait, answer the results that arrived in time."""
    reader = None if args.no_wait else kafka.reader()
    producer = kafka.producer()
    try:
        if reader is not None:
            reader.assign_at_end(RESULTS_TOPIC)  # before sending: no result can be missed
        producer.produce_batch(messages)
        if reader is None:
            return None
        command_ids = [codec.decode(m.value or b"").record["command_id"] for m in messages]
        return send.await_results(reader, codec, command_ids, args.timeout)
    finally:
        producer.close()
        if reader is not None:
            reader.close()


def _send_status(results: dict[str, dict[str, Any]] | None, sent: int) -> int:
    """0 all accepted (or not waited for), 1 some rejected, 3 some result missing."""
    if results is None:
        return 0
    if len(results) < sent:
        return 3
    return 1 if any(r["status"] != "ACCEPTED" for r in results.values()) else 0


def _fields_from_flags(args: argparse.Namespace) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, kind in args.field_kinds.items():
        value = getattr(args, name)
        if value is None:
            continue
        if kind == "json":
            value = json.loads(value)
        elif kind == "bool":
            value = value == "true"
        fields[name] = value
    return fields


def _bootstrap(settings: Settings) -> str:
    return _address(settings.kafka_bootstrap, "kafka", "LEDGER_KAFKA_BOOTSTRAP")


def _database_url(settings: Settings) -> str:
    return _address(settings.database_url, "postgres", "LEDGER_DATABASE_URL")


def _address(configured: str | None, server: str, variable: str) -> str:
    """The configured address, else the running embedded server's."""
    if configured:
        return configured
    status = embedded.status(embedded.ledger_home())
    found = status.postgres if server == "postgres" else status.kafka
    if not found.running or not found.address:
        raise NoServer(
            f"no {server} server: set {variable}, or start the embedded one "
            "with `ledger infra up` (or `ledger run`)"
        )
    return found.address


class NoServer(Exception):
    """Neither a configured nor a running embedded server to talk to."""


if __name__ == "__main__":
    sys.exit(main())
