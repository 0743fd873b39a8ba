"""Specification of the name-based ids: exactly `uuid.uuid5`'s, as stored ids must stay."""

from __future__ import annotations

import uuid
from uuid import UUID

from hypothesis import given
from hypothesis import strategies as st

from ledger.account import account_uuid
from ledger.application import event_id
from ledger.ids import name_uuid, name_uuid_text
from ledger.plans import plan_uuid
from ledger.receipts import receipt_uuid

NAMESPACES = st.builds(UUID, int=st.integers(0, 2**128 - 1))


class TestSameAsUuid5:
    """Every id is the one `uuid.uuid5` gives for the same namespace and name."""

    @given(namespace=NAMESPACES, name=st.text())
    def test_any_namespace_and_name(self, namespace: UUID, name: str) -> None:
        """Random namespaces and names, non-ASCII and empty ones too."""
        assert name_uuid(namespace, name) == uuid.uuid5(namespace, name)
        assert name_uuid_text(namespace, name) == str(uuid.uuid5(namespace, name))

    def test_the_event_ids_of_many_versions(self) -> None:
        """Versions 0-19,999 of a few aggregates: every digest nibble in every position."""
        for originator in (uuid.uuid4() for _ in range(5)):
            for version in range(20_000):
                expected = str(uuid.uuid5(originator, str(version)))
                assert event_id(originator, version) == expected

    def test_the_aggregate_ids(self) -> None:
        """Accounts, receipts and plans keep the ids they were stored under."""
        assert account_uuid("acc-1") == UUID("97749c44-b16c-50e4-bece-724b400c7f12")
        for name in ("acc-1", "burst-17", "pro-monthly", str(uuid.uuid4())):
            for id_of, kind in (
                (account_uuid, "account"),
                (receipt_uuid, "command"),
                (plan_uuid, "plan"),
            ):
                namespace = uuid.uuid5(uuid.NAMESPACE_URL, f"billing-ledger:{kind}")
                assert id_of(name) == uuid.uuid5(namespace, name)
