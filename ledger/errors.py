"""The one base error of the domain: a command that breaks a rule."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from datetime import datetime


class RuleViolation(Exception):
    """A command broke a business rule; it changes nothing and is answered with a rejection.

    `code` is stable and machine-readable, `field` names the offending command field when one
    field is to blame, and the message names the command, the rule and the value.
    """

    code: str = "rule_violation"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    @property
    def message(self) -> str:
        """The human explanation."""
        return str(self.args[0])


class MissingValue(RuleViolation):
    """A required value is empty."""

    code = "missing_value"


def check_range(field: str, value: int, lowest: int, highest: int) -> int:
    """Answer `value` if lowest <= value <= highest, else raise OutOfRange naming `field`."""
    if not lowest <= value <= highest:
        raise OutOfRange(f"{field} must be {lowest} to {highest}, got {value}", field=field)
    return value


class OutOfRange(RuleViolation):
    """A number is outside the range the rule allows."""

    code = "out_of_range"


def check_text(field: str, value: str, longest: int, *, required: bool = True) -> str:
    """Answer `value` if it has at most `longest` characters and, if `required`, is not blank."""
    if required and not value.strip():
        raise MissingValue(f"{field} must not be empty", field=field)
    if len(value) > longest:
        raise TooLong(
            f"{field} must be at most {longest} characters, got {len(value)}", field=field
        )
    return value


class TooLong(RuleViolation):
    """A text is longer than the rule allows."""

    code = "too_long"


def check_time_range(field: str, value: datetime, earliest: datetime, latest: datetime) -> datetime:
    """Answer `value` if earliest <= value <= latest, else raise OutOfRange naming `field`."""
    if not earliest <= value <= latest:
        raise OutOfRange(
            f"{field} must be from {earliest.isoformat()} to {latest.isoformat()}, "
            f"got {value.isoformat()}",
            field=field,
        )
    return value


def check_distinct(field: str, values: Sequence[Hashable]) -> Sequence[Hashable]:
    """Answer `values` if no value occurs twice, else raise DuplicateValue naming `field`."""
    seen: set[Hashable] = set()
    for value in values:
        if value in seen:
            raise DuplicateValue(f"{field} names {value!r} more than once", field=field)
        seen.add(value)
    return values


class DuplicateValue(RuleViolation):
    """A list names the same value twice."""

    code = "duplicate_value"
