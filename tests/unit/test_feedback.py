"""Specification of customer feedback: an NPS-style score with a comment, once per feedback_id."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from commands.messages import RecordFeedback
from commands.table import command_from_record
from ledger.account import Account
from ledger.application import BillingLedger, event_id
from tests.unit.builders import Sender, account_events, open_account
from wire.codec import AvroCodec
from wire.event_records import ACCOUNT_EVENT_SCHEMAS, account_event_record, outgoing

START = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)


def feedback(
    feedback_id: str = "fb-1",
    *,
    score: int = 9,
    comment: str = "Invoices are clear.",
    topic: str | None = "billing",
    account_id: str = "acc-1",
) -> RecordFeedback:
    """A RecordFeedback command with a fresh command_id."""
    return RecordFeedback(
        str(uuid.uuid4()),
        account_id,
        START,
        feedback_id=feedback_id,
        score=score,
        comment=comment,
        topic=topic,
    )


def the_account(ledger: BillingLedger) -> Account:
    """acc-1, read back from the event store."""
    account = ledger.account("acc-1")
    assert account is not None
    return account


@pytest.fixture(name="opened")
def fixture_opened(send: Sender) -> Sender:
    """acc-1 is open."""
    send(open_account(issued_at=START - timedelta(days=1)))
    return send


class TestRecordFeedback:
    """Accepted feedback is one FeedbackRecorded event carrying all of it."""

    def test_the_event_carries_score_comment_and_topic(
        self, ledger: BillingLedger, opened: Sender
    ) -> None:
        """One event, no postings; the account remembers the feedback_id."""
        (outcome,) = opened(feedback())
        assert outcome.rejection is None and len(outcome.event_ids) == 1
        event = account_events(ledger)[-1]
        assert isinstance(event, Account.FeedbackRecorded)
        assert (event.feedback_id, event.score, event.comment, event.topic) == (
            "fb-1",
            9,
            "Invoices are clear.",
            "billing",
        )
        assert not hasattr(event, "postings")
        assert the_account(ledger).feedback_ids == {"fb-1"}

    @pytest.mark.parametrize(
        "command",
        [
            feedback(score=0),
            feedback(score=10),
            feedback(comment=""),
            feedback(comment="c" * 2000),
            feedback(topic=None),
            feedback(topic="t" * 128),
            feedback("f" * 128),
        ],
        ids=[
            "score 0",
            "score 10",
            "no comment",
            "longest comment",
            "no topic",
            "longest topic",
            "longest id",
        ],
    )
    def test_the_edges_of_each_rule_are_accepted(
        self, opened: Sender, command: RecordFeedback
    ) -> None:
        """The limits are inclusive; comment may be empty and topic absent."""
        (outcome,) = opened(command)
        assert outcome.rejection is None

    def test_many_pieces_of_feedback_are_kept_apart(
        self, ledger: BillingLedger, opened: Sender
    ) -> None:
        """Each feedback_id is its own event."""
        opened(feedback("fb-1"), feedback("fb-2", score=3))
        assert the_account(ledger).feedback_ids == {"fb-1", "fb-2"}


class TestRules:
    """Each rule rejects with its code on the offending field, and records nothing."""

    @pytest.mark.parametrize(
        ("command", "code", "field"),
        [
            (feedback(score=-1), "out_of_range", "score"),
            (feedback(score=11), "out_of_range", "score"),
            (feedback(comment="c" * 2001), "too_long", "comment"),
            (feedback(""), "missing_value", "feedback_id"),
            (feedback("  "), "missing_value", "feedback_id"),
            (feedback("f" * 129), "too_long", "feedback_id"),
            (feedback(topic=""), "missing_value", "topic"),
            (feedback(topic="t" * 129), "too_long", "topic"),
            (feedback(account_id="acc-404"), "unknown_account", "account_id"),
        ],
        ids=lambda value: value if isinstance(value, str) else "",
    )
    def test_a_broken_rule_is_rejected(
        self, ledger: BillingLedger, opened: Sender, command: RecordFeedback, code: str, field: str
    ) -> None:
        """The rejection names the rule and the field."""
        before = account_events(ledger)
        (outcome,) = opened(command)
        assert outcome.rejection is not None
        assert (outcome.rejection.code, outcome.rejection.field) == (code, field)
        assert account_events(ledger) == before

    def test_a_feedback_id_is_recorded_once(self, ledger: BillingLedger, opened: Sender) -> None:
        """duplicate_feedback on feedback_id, even with other content; the first stays."""
        opened(feedback("fb-1"))
        (outcome,) = opened(feedback("fb-1", score=2, comment="Changed my mind."))
        assert outcome.rejection is not None
        assert (outcome.rejection.code, outcome.rejection.field) == (
            "duplicate_feedback",
            "feedback_id",
        )
        recorded = [e for e in account_events(ledger) if isinstance(e, Account.FeedbackRecorded)]
        assert [e.score for e in recorded] == [9]

    def test_the_score_message_names_the_range(self, opened: Sender) -> None:
        """People see the allowed range and the value sent."""
        (outcome,) = opened(feedback(score=11))
        assert outcome.rejection is not None
        assert outcome.rejection.message == "score must be 0 to 10, got 11"


class TestWire:
    """The command arrives as an Avro record; its event leaves as one."""

    def test_omitted_comment_and_topic_take_their_defaults(self) -> None:
        """An empty comment and no topic."""
        codec = AvroCodec()
        record = {
            "command_id": "c",
            "account_id": "acc-1",
            "issued_at": START,
            "feedback_id": "fb-1",
            "score": 7,
        }
        decoded = codec.decode(codec.encode("billing.commands.RecordFeedback", record))
        assert command_from_record("RecordFeedback", decoded.record) == RecordFeedback(
            "c", "acc-1", START, feedback_id="fb-1", score=7, comment="", topic=None
        )

    def test_the_event_round_trips_through_its_schema(
        self, ledger: BillingLedger, opened: Sender
    ) -> None:
        """FeedbackRecorded is published with its schema and decodes to the same record."""
        opened(feedback(), feedback("fb-2", comment="", topic=None))
        codec = AvroCodec()
        records = []
        for notification in ledger.recorder.select_notifications(start=1, limit=1000):
            event = ledger.mapper.to_domain_event(notification)
            if isinstance(event, Account.FeedbackRecorded):
                message = outgoing(event, notification.id, codec)
                decoded = codec.decode(message.value)
                assert decoded.schema_name == ACCOUNT_EVENT_SCHEMAS[Account.FeedbackRecorded]
                assert decoded.record == account_event_record(event)
                assert dict(message.headers)["event_type"] == b"FeedbackRecorded"
                records.append((event, decoded.record))
        (first, first_record), (_, second_record) = records
        assert first_record == {
            "event_id": event_id(first.originator_id, 2),
            "account_id": "acc-1",
            "occurred_at": START,
            "command_id": first.command_id,
            "account_version": 2,
            "feedback_id": "fb-1",
            "score": 9,
            "comment": "Invoices are clear.",
            "topic": "billing",
        }
        assert (second_record["comment"], second_record["topic"]) == ("", None)
