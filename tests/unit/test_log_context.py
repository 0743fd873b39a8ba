"""Log lines about a command carry its id, its key and where it was read from."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from commands.consumer import CommandConsumer, handle_batch
from commands.messages import Subscribe
from commands.table import HANDLERS
from infra.kafka import Message
from ledger.application import BillingLedger
from tests.helpers import CODEC, command_message, open_account, subscribe
from tests.unit.builders import in_memory_ledger
from wire.topics import COMMANDS_TOPIC


@pytest.fixture(name="ledger")
def fixture_ledger() -> BillingLedger:
    """A ledger on in-memory persistence."""
    return in_memory_ledger()


def read_at(offset: int, record_type: str, record: dict[str, Any]) -> Message:
    """The command as the consumer reads it from partition 2 of the commands topic."""
    key, value = command_message(record_type, record)
    return Message(COMMANDS_TOPIC, 2, offset, key, value)


class TestFailingHandlerLog:
    """A handler that fails logs the command's context, bound when its message was decoded."""

    def test_the_failure_names_the_command_its_account_and_its_source(
        self, ledger: BillingLedger, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """commands.handler.failed carries command_id, account_id, topic, partition and offset."""

        def broken(command: Any, work: Any) -> None:
            raise ZeroDivisionError("a bug")

        monkeypatch.setitem(HANDLERS, Subscribe, broken)
        subscribing = subscribe("acc-7")
        messages = [
            read_at(40, "OpenAccount", open_account("acc-7")),
            read_at(41, "Subscribe", subscribing),
        ]
        with capture_logs() as logs:
            handled = handle_batch(ledger, CODEC, messages, "cluster-t")
        (failure,) = [line for line in logs if line["event"] == "commands.handler.failed"]
        assert {key: failure[key] for key in ("command_id", "account_id", "topic")} == {
            "command_id": subscribing["command_id"],
            "account_id": "acc-7",
            "topic": COMMANDS_TOPIC,
        }
        assert (failure["partition"], failure["offset"]) == (2, 41)
        assert "ZeroDivisionError: a bug" in failure["error"]
        rejected = [o for o in handled.outcomes if o.rejection is not None]
        assert [o.rejection.code for o in rejected if o.rejection] == ["internal_error"]


class TestOutcomeLines:
    """Each outcome line names the command, its key and its source, whatever is bound around."""

    def test_accepted_and_rejected_lines_carry_the_commands_context(
        self, ledger: BillingLedger
    ) -> None:
        """commands.accepted and commands.rejected: command_id, account_id, topic, partition, offset."""
        opening, again = open_account("acc-8"), open_account("acc-8")
        messages = [read_at(50, "OpenAccount", opening), read_at(51, "OpenAccount", again)]
        writer = CommandConsumer(ledger, None, None, CODEC, "cluster-t")  # type: ignore[arg-type]
        with capture_logs() as logs:
            writer._process_or_drop(messages)
        lines = [line for line in logs if line["event"].startswith("commands.")]
        assert [line["event"] for line in lines] == ["commands.accepted", "commands.rejected"]
        for line, record, offset in zip(lines, (opening, again), (50, 51), strict=True):
            assert {key: line[key] for key in ("command_id", "account_id", "topic")} == {
                "command_id": record["command_id"],
                "account_id": "acc-8",
                "topic": COMMANDS_TOPIC,
            }
            assert (line["partition"], line["offset"]) == (2, offset)
