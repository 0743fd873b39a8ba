"""A golden list of the stored event topics: no move or rename may orphan stored history."""

from __future__ import annotations

from pathlib import Path

from eventsourcing.domain import Aggregate
from eventsourcing.utils import resolve_topic

from ledger.account import Account
from ledger.plans import Plan
from ledger.receipts import CommandReceipt

GOLDEN = Path(__file__).with_name("stored_topics.txt")


def pinned_topics() -> set[str]:
    """The topics listed in stored_topics.txt."""
    lines = GOLDEN.read_text().splitlines()
    return {line for line in lines if line and not line.startswith("#")}


def current_topics() -> set[str]:
    """The topic of every event class nested in the three stored aggregates."""
    topics = set()
    for aggregate in (Account, Plan, CommandReceipt):
        for name in dir(aggregate):
            member = getattr(aggregate, name)
            if (
                isinstance(member, type)
                and issubclass(member, Aggregate.Event)
                and member.__qualname__.startswith(f"{aggregate.__name__}.")
            ):
                topics.add(f"{member.__module__}:{member.__qualname__}")
    return topics


class TestStoredTopics:
    """Every stored event topic stays where the stored events say it is."""

    def test_every_pinned_topic_still_resolves_to_its_class(self) -> None:
        """Each pinned topic resolves to an event class of that very module and name."""
        for topic in pinned_topics():
            module, _, qualname = topic.partition(":")
            resolved = resolve_topic(topic)
            assert (resolved.__module__, resolved.__qualname__) == (module, qualname), topic

    def test_the_aggregates_have_exactly_the_pinned_topics(self) -> None:
        """A moved or renamed event class fails here; a new one must be pinned on purpose."""
        assert current_topics() == pinned_topics()
