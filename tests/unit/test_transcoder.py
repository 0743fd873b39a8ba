"""Specification of the transcoder of stored events: orjson's speed, the json module's bytes.

Batch heads hash the stored bytes and exports carry them: the events a version stores must be
the bytes the json-module transcoder of earlier versions stored for the same events.
"""

from __future__ import annotations

from typing import Any

import pytest
from eventsourcing.persistence import Mapper, TranscodingNotRegisteredError
from hypothesis import given
from hypothesis import strategies as st

from ledger.application import BillingLedger, EnumKeepingTranscoder, OrjsonTranscoder
from ledger.dunning import FinalAction
from ledger.postings import LedgerAccount, Posting, Side
from tests.unit.builders import Sender, in_memory_ledger
from tests.unit.histories import History, histories
from tests.unit.test_properties import PROPERTY, stored
from tests.unit.test_released_events import RELEASES, every_event, release
from tests.unit.test_released_events import stored as released_stored_event


@pytest.fixture(name="ledger", scope="module")
def fixture_ledger() -> BillingLedger:
    return in_memory_ledger()


def json_module_transcoder(ledger: BillingLedger) -> EnumKeepingTranscoder:
    """The transcoder the ledger stored events with before orjson, with the same transcodings."""
    transcoder = EnumKeepingTranscoder()
    ledger.register_transcodings(transcoder)
    return transcoder


def both(ledger: BillingLedger, value: Any) -> tuple[bytes, bytes]:
    """`value` written by the ledger's transcoder and by the json module's."""
    return ledger.mapper.transcoder.encode(value), json_module_transcoder(ledger).encode(value)


class TestSameBytesAsTheJsonModule:
    """Every event is stored as the json-module transcoder stored it, byte for byte."""

    def test_the_ledger_stores_with_orjson(self, ledger: BillingLedger) -> None:
        """The application's transcoder is the orjson one."""
        assert isinstance(ledger.mapper.transcoder, OrjsonTranscoder)

    @PROPERTY
    @given(history=histories())
    def test_every_event_of_random_histories(self, history: History) -> None:
        """Random histories: each stored state is what the json module writes for its event."""
        ledger = in_memory_ledger()
        send = Sender(ledger)
        for batch in history.batches():
            send(*batch)
        reference = Mapper(json_module_transcoder(ledger))
        for notification in stored(ledger):
            event = ledger.mapper.to_domain_event(notification)
            assert reference.to_stored_event(event).state == notification.state

    @pytest.mark.parametrize("path", RELEASES, ids=lambda p: p.stem)
    def test_every_event_of_every_release(self, path: Any, ledger: BillingLedger) -> None:
        """Each released event, decoded and upcast, is written the same by both."""
        reference = Mapper(json_module_transcoder(ledger))
        for entry in every_event(release(path)):
            event = ledger.mapper.to_domain_event(released_stored_event(entry))
            state = ledger.mapper.to_stored_event(event).state
            assert state == reference.to_stored_event(event).state

    def test_enums_nested_and_at_the_top(self, ledger: BillingLedger) -> None:
        """A StrEnum member at the top is tagged, inside a dataclass it is its plain value."""
        posting = Posting(LedgerAccount.RECEIVABLE, Side.DEBIT, 100)
        value = {"final_action": FinalAction.SUSPEND, "postings": (posting,)}
        ours, theirs = both(ledger, value)
        assert ours == theirs
        assert b'"_type_":"enum_FinalAction"' in ours and b'"side":"DEBIT"' in ours

    @PROPERTY
    @given(text=st.text(st.characters(exclude_categories=["Cs"])))
    def test_any_text(self, ledger: BillingLedger, text: str) -> None:
        """Control characters, quotes, backslashes and non-ASCII text are escaped alike."""
        ours, theirs = both(ledger, {"text": text, "list": [text]})
        assert ours == theirs

    def test_an_int_beyond_64_bits(self, ledger: BillingLedger) -> None:
        """orjson refuses it; the json module writes it, as before."""
        ours, theirs = both(ledger, {"amount_minor": 2**70, "small": -(2**63)})
        assert (
            ours
            == theirs
            == b'{"amount_minor":1180591620717411303424,"small":-9223372036854775808}'
        )

    def test_an_unregistered_type_is_refused_as_before(self, ledger: BillingLedger) -> None:
        """A value without a transcoding raises the library's error, not orjson's."""
        with pytest.raises(TranscodingNotRegisteredError):
            ledger.mapper.transcoder.encode({"value": object()})
