"""Reconciling a topic with the store names each kind of difference (audit/reconcile_topics.py)."""

from __future__ import annotations

from audit.reconcile_topics import Published, check_topic
from infra.kafka import Message

TOPIC = "billing.events"
WANTED = {
    f"id-{n}": Published(f"id-{n}", n, "InvoiceIssued") for n in range(1, 5)
}  # positions 1..4


def record(
    n: int,
    partition: int = 0,
    offset: int | None = None,
    key: bytes = b"acme",
    position: int | None = None,
) -> Message:
    """The record of stored event n as the relay publishes it."""
    headers = (("event_id", f"id-{n}".encode()), ("event_position", str(position or n).encode()))
    return Message(TOPIC, partition, n - 1 if offset is None else offset, key, b"", headers)


def details(
    messages: list[Message], starts: dict[int, int] | None = None, relayed: int | None = 4
) -> list[str]:
    """What check_topic names, one line each."""
    _, found = check_topic(TOPIC, WANTED, messages, starts or {0: 0}, relayed)
    return [d.describe() for d in found]


class TestCheckTopic:
    """Counts and ids per partition: what is missing, extra, twice or misplaced."""

    def test_a_complete_topic_reconciles(self) -> None:
        """Every stored event once, at its position: nothing to name."""
        rows, found = check_topic(TOPIC, WANTED, [record(n) for n in range(1, 5)], {0: 0}, 4)
        assert found == []
        assert rows[0] | {} == {
            "topic": TOPIC,
            "partition": 0,
            "log_start": 0,
            "records": 4,
            "event_ids": 4,
            "of_stored_events": 4,
        }

    def test_missing(self) -> None:
        """An event the relay published that the topic does not have is named by position."""
        assert details([record(1), record(2), record(4)]) == [
            "billing.events: position 3: InvoiceIssued (event id-3) is not on the topic"
        ]

    def test_not_yet_relayed_is_not_missing(self) -> None:
        """Events after the relay's stored position are not expected yet."""
        assert details([record(1), record(2)], relayed=2) == []

    def test_relay_never_ran(self) -> None:
        """Without a relay position every stored event is expected."""
        assert len(details([], relayed=None)) == 4

    def test_duplicate(self) -> None:
        """An event published twice is named with both places."""
        assert details([*(record(n) for n in range(1, 5)), record(2, offset=9)]) == [
            "billing.events: position 2: InvoiceIssued (event id-2) is on the topic 2 times: "
            "partition 0 offset 1, partition 0 offset 9"
        ]

    def test_stray(self) -> None:
        """A record of no stored event is named by partition and offset."""
        assert details([*(record(n) for n in range(1, 5)), record(7, offset=4)]) == [
            "billing.events: partition 0 offset 4: a record of no stored event (event_id id-7)"
        ]

    def test_wrong_position(self) -> None:
        """A record whose position header is not its event's position."""
        assert details([record(1), record(2), record(3, position=9), record(4)]) == [
            "billing.events: position 3: the record at partition 0 offset 2 says position 9"
        ]

    def test_key_on_two_partitions(self) -> None:
        """One key's events on two partitions are out of order for consumers."""
        messages = [record(1), record(2), record(3, partition=1, offset=0), record(4)]
        assert details(messages, {0: 0, 1: 0}) == ["billing.events: key acme: on partitions [0, 1]"]

    def test_retention_bounds_missing(self) -> None:
        """Records before the first kept one of a trimmed partition cannot be told missing."""
        assert details([record(3, offset=2), record(4, offset=3)], {0: 2}) == []
        assert details([record(4, offset=3)], {0: 2}) == []
