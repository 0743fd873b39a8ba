"""The envelope of a command: what must hold of its id, key, time and text before the domain sees it."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from datetime import UTC, datetime
from uuid import UUID

from commands.messages import Command
from ledger.errors import OutOfRange, RuleViolation

# The business times the ledger bills from. Billing periods reach up to 1000 years past a
# command (interval_count 1000 YEAR) and Python's dates end with the year 9999.
EARLIEST_ISSUED_AT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_ISSUED_AT = datetime(2200, 1, 1, tzinfo=UTC)
MAX_QUOTED_KEY_CHARS = 100


def check_envelope(command: Command, kafka_key: bytes | None) -> None:
    """Reject what is wrong with how the command was sent, before the domain sees it."""
    if problem := command_id_problem(command.command_id):
        raise InvalidCommandId(problem, field="command_id")
    if problem := key_problem(kafka_key, command.key, command.key_field):
        raise KeyMismatch(problem, field=command.key_field)
    if problem := issued_at_problem(command.issued_at):
        raise OutOfRange(problem, field="issued_at")
    if found := text_problem(command):
        field, problem = found
        raise InvalidText(problem, field=field)


def command_id_problem(command_id: str) -> str | None:
    """Why `command_id` is not a usable command id, or None if it is a canonical UUID string.

    Only the canonical form (36 characters, lower case, hyphenated) is accepted: receipts are
    keyed by the text, and one UUID written two ways must not be processed twice.
    """
    try:
        canonical = str(UUID(command_id))
    except ValueError:
        return f"command_id must be a UUID string, got {command_id!r}"
    if canonical != command_id:
        return f"command_id must be a UUID in canonical form ({canonical!r}), got {command_id!r}"
    return None


def issued_at_problem(issued_at: datetime) -> str | None:
    """Why `issued_at` is not a business time the ledger can bill from, or None if it is."""
    if EARLIEST_ISSUED_AT <= issued_at < LATEST_ISSUED_AT:
        return None
    return (
        f"issued_at must be from {EARLIEST_ISSUED_AT:%Y-%m-%d} and before "
        f"{LATEST_ISSUED_AT:%Y-%m-%d}, got {issued_at.isoformat()}"
    )


def key_problem(key: bytes | None, expected: str, key_field: str = "account_id") -> str | None:
    """Why `key` is not the Kafka key `expected` (the command's `key_field`), or None if it is.

    Kafka keeps order per partition and picks the partition from the key: a command keyed
    otherwise could overtake, or be overtaken by, the other commands on the same account
    (or plan).
    """
    if key == expected.encode():
        return None
    found = "the message had no key" if key is None else f"the key was {_quoted(key)}"
    subject = key_field.removesuffix("_id")
    return (
        f"the message key must be the {key_field} {expected!r}, so that one {subject}'s "
        f"commands stay in order; {found}. Send the command again keyed by its {key_field}, "
        "with a new command_id"
    )


def text_problem(command: Command) -> tuple[str, str] | None:
    """The field of `command` whose text holds a NUL character, and why that is a problem.

    PostgreSQL text cannot hold NUL: a command carrying one could be stored as events but
    never shown in a read model, so it is rejected before it is accepted.
    """
    field = _field_with_nul(command, "")
    if field is None:
        return None
    return field, f"{field} must not contain NUL (U+0000), which PostgreSQL text cannot hold"


def _field_with_nul(value: object, field: str) -> str | None:
    if isinstance(value, str):
        return field if "\x00" in value else None
    if isinstance(value, tuple):  # e.g. contacts: blame the list, the field the sender wrote
        return field if any(_field_with_nul(item, field) for item in value) else None
    if is_dataclass(value):  # the command, or its terms, whose fields are the record's own
        found = (_field_with_nul(getattr(value, f.name), f.name) for f in fields(value))
        return next((name for name in found if name), None)
    return None


def _quoted(key: bytes) -> str:
    try:
        quoted = repr(key.decode())
    except UnicodeDecodeError:
        quoted = repr(key)
    if len(quoted) > MAX_QUOTED_KEY_CHARS:
        return f"{quoted[:MAX_QUOTED_KEY_CHARS]}... ({len(key)} bytes)"
    return quoted


class InvalidCommandId(RuleViolation):
    """The command_id is not a UUID string."""

    code = "invalid_command_id"


class KeyMismatch(RuleViolation):
    """The Kafka message key is missing or is not the command's account_id (or plan_id)."""

    code = "key_mismatch"


class InvalidText(RuleViolation):
    """A text field holds a character the ledger's stores cannot keep (NUL)."""

    code = "invalid_text"
