"""The one base error of the domain: a command that breaks a rule."""

from __future__ import annotations


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
