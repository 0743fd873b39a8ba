"""`ledger send`: publish commands as an upstream system would, from flags or a JSON-lines file."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from commands.mapping import key_field_of
from commands.messages import COMMAND_NAMESPACE
from infra.kafka import Outgoing, Reader
from wire.codec import AvroCodec, AvroError
from wire.topics import COMMANDS_TOPIC


def command_names(codec: AvroCodec) -> list[str]:
    """The command types there are schemas for, e.g. OpenAccount."""
    prefix = COMMAND_NAMESPACE + "."
    return [name[len(prefix) :] for name in codec.schema_names if name.startswith(prefix)]


def command_fields(codec: AvroCodec, command_type: str) -> list[dict[str, Any]]:
    """The Avro fields of a command type."""
    return list(codec.schema(f"{COMMAND_NAMESPACE}.{command_type}")["fields"])


def complete(command_type: str, fields: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The command's fields with command_id (a new UUID) and issued_at (`now`) filled in if absent."""
    record = dict(fields)
    record.setdefault("command_id", str(uuid.uuid4()))
    issued_at = record.get("issued_at")
    if issued_at is None:
        record["issued_at"] = now
    elif isinstance(issued_at, str):
        record["issued_at"] = parse_time(issued_at)
    return record


def parse_time(text: str) -> datetime:
    """An ISO 8601 time; a time without zone is taken as UTC."""
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def encode_command(codec: AvroCodec, command_type: str, record: Mapping[str, Any]) -> Outgoing:
    """The Kafka message of one command, keyed by its account id (a plan command: plan id)."""
    value = codec.encode(f"{COMMAND_NAMESPACE}.{command_type}", record)
    return Outgoing(COMMANDS_TOPIC, str(record[key_field_of(command_type)]).encode(), value)


def read_json_lines(lines: Iterable[str]) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(line number, command type, fields) of each non-blank line `{"type": ..., ...fields}`."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise SendError(f"line {number}: not JSON: {error}") from None
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            raise SendError(f'line {number}: expected an object with a "type" naming the command')
        command_type = item.pop("type")
        yield number, command_type, item


def await_results(
    reader: Reader,
    codec: AvroCodec,
    command_ids: Iterable[str],
    timeout_s: float,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, dict[str, Any]]:
    """The CommandResult of each command id, read from billing.command-results as they arrive.

    `reader` must be positioned before the commands were sent. Answers once every result is
    in, or when `timeout_s` has passed, with those that arrived.
    """
    wanted = set(command_ids)
    results: dict[str, dict[str, Any]] = {}
    deadline = clock() + timeout_s
    while wanted - results.keys() and clock() < deadline:
        for message in reader.poll_batch(min(0.5, max(deadline - clock(), 0.0))):
            try:
                record = codec.decode(message.value or b"").record
            except AvroError:
                continue  # not a result this command is waiting for
            if record.get("command_id") in wanted:
                results.setdefault(record["command_id"], record)
    return results


def describe_result(command_type: str, key: str, result: dict[str, Any] | None) -> str:
    """One line for people: what the ledger answered to the command."""
    if result is None:
        return f"{command_type} {key}: no result yet (is `ledger run` running?)"
    again = " (a redelivery: the first answer)" if result.get("redelivery") else ""
    if result["status"] == "ACCEPTED":
        events = result.get("event_ids") or []
        return f"{command_type} {key}: ACCEPTED{again}, {len(events)} event(s): {', '.join(events)}"
    rejection = result.get("rejection") or {}
    field = f" on {rejection['field']}" if rejection.get("field") else ""
    return (
        f"{command_type} {key}: REJECTED{again} {rejection.get('code')}{field}: "
        f"{rejection.get('message')}"
    )


def result_summary(result: dict[str, Any] | None) -> dict[str, Any]:
    """The result's fields for a JSON line: status, event ids or the rejection."""
    if result is None:
        return {"status": "NO_RESULT"}
    summary: dict[str, Any] = {"status": result["status"], "redelivery": result["redelivery"]}
    if result["status"] == "ACCEPTED":
        summary["event_ids"] = list(result.get("event_ids") or [])
    else:
        summary["rejection"] = result.get("rejection")
    return summary


class SendError(ValueError):
    """A command to send is malformed; the message says where."""
