"""Checkpoints and proofs: an event's inclusion and a checkpoint's extension, checked with no database."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.basics import CheckpointError, ProofError
from audit.checkpoint import open_note
from audit.proofs import check, consistency_json
from audit.prove import position_of, prove_event, prove_extension
from audit.store import snapshot
from audit.verify import Broken, Verified, verify
from infra import merkle
from infra.batch_heads import BatchHeadsTable, event_leaf, seal
from ledger.application import BillingLedger, event_id
from runtime.cli import main
from tests.integration.audit_book import (
    execute,
    fixture_cli,
    fixture_database_url,
    fixture_key,
    fixture_ledger,
    fixture_postgres_url,
    save_book,
    signed_checkpoint,
)

pytestmark = pytest.mark.integration
__all__ = [
    "fixture_cli",
    "fixture_database_url",
    "fixture_key",
    "fixture_ledger",
    "fixture_postgres_url",
]


def inclusion(database_url: str, note: str, position: int) -> str:
    """The inclusion proof of the event at `position`, as the file `prove` prints."""
    with snapshot(database_url) as store:
        return json.dumps(prove_event(store, note, position).to_json())


class TestInclusionProofs:
    """An event's proof holds for that event, that checkpoint and that key only."""

    def test_every_event_is_proved(
        self, ledger: BillingLedger, database_url: str, key: Ed25519PrivateKey
    ) -> None:
        """Each stored event's proof checks against the signed checkpoint."""
        note = signed_checkpoint(database_url, key)
        last = ledger.recorder.max_notification_id()
        assert last is not None
        for position in range(1, last + 1):
            assert check(inclusion(database_url, note, position), key.public_key()).startswith("OK")

    def test_altered_event_fails(
        self, ledger: BillingLedger, database_url: str, key: Ed25519PrivateKey
    ) -> None:
        """A proof made after the event was edited in the database does not check."""
        note = signed_checkpoint(database_url, key)
        execute(
            database_url,
            "UPDATE billing_events SET state = state || ' '::bytea WHERE notification_id = 4",
        )
        with pytest.raises(ProofError, match="does not hash into its batch's root"):
            check(inclusion(database_url, note, 4), key.public_key())

    def test_edited_proof_fails(
        self, ledger: BillingLedger, database_url: str, key: Ed25519PrivateKey
    ) -> None:
        """A proof file whose event or batch head was edited does not check."""
        proof = json.loads(inclusion(database_url, signed_checkpoint(database_url, key), 4))
        proof["event"]["originator_version"] += 1
        with pytest.raises(ProofError, match="is not that of aggregate"):
            check(json.dumps(proof), key.public_key())
        proof["event"]["originator_version"] -= 1
        proof["batch_head"]["recorded_at"] = "2020-01-01T00:00:00+00:00"
        with pytest.raises(ProofError, match="head does not hash into the checkpoint"):
            check(json.dumps(proof), key.public_key())

    def test_another_key_fails(
        self, ledger: BillingLedger, database_url: str, key: Ed25519PrivateKey
    ) -> None:
        """A proof whose checkpoint another key signed does not check."""
        proof = inclusion(database_url, signed_checkpoint(database_url, key), 1)
        with pytest.raises(ProofError, match="no signature by this key"):
            check(proof, Ed25519PrivateKey.generate().public_key())

    def test_edited_checkpoint_fails(
        self, ledger: BillingLedger, database_url: str, key: Ed25519PrivateKey
    ) -> None:
        """A checkpoint whose text was edited after signing is refused."""
        note = signed_checkpoint(database_url, key)
        lines = note.split("\n")
        lines[3] = "events 1"
        with pytest.raises(CheckpointError, match="signature does not hold"):
            open_note("\n".join(lines), key.public_key())

    def test_event_found_by_its_id(self, ledger: BillingLedger, database_url: str) -> None:
        """The event_id header on billing.events names the event to prove."""
        with snapshot(database_url) as store:
            row = store.event_at_position(9)
            assert row is not None
            assert position_of(store, event_id(row[2], row[3])) == 9


class TestConsistencyProofs:
    """A later checkpoint extends an earlier one, unless the history between was rewritten."""

    def test_later_checkpoint_extends_earlier(
        self, ledger: BillingLedger, database_url: str, key: Ed25519PrivateKey
    ) -> None:
        """After more batches, the new checkpoint's tree has the old one as prefix."""
        old = signed_checkpoint(database_url, key)
        save_book(ledger, first_offset=1000)
        new = signed_checkpoint(database_url, key)
        with snapshot(database_url) as store:
            proof = consistency_json(old, new, prove_extension(store, old, new))
        assert check(json.dumps(proof), key.public_key()).startswith("OK")

    def test_rewritten_history_is_caught_by_the_checkpoint(
        self, ledger: BillingLedger, database_url: str, key: Ed25519PrivateKey
    ) -> None:
        """A forger who edits an event and re-seals every head passes a plain verify, but not
        verify from a checkpoint taken before, nor a consistency proof to it."""
        old = signed_checkpoint(database_url, key)
        execute(
            database_url,
            "UPDATE billing_events SET state = state || ' '::bytea WHERE notification_id = 4",
        )
        reseal(database_url)
        with snapshot(database_url) as store:
            assert isinstance(verify(store), Verified)
            from_old = verify(store, open_note(old, key.public_key()))
        assert isinstance(from_old, Broken) and "rewritten" in from_old.problem
        new = signed_checkpoint(
            database_url, key
        )  # the forger has the store, not the key: this is ours
        with snapshot(database_url) as store:
            path = prove_extension(store, old, new)
        with pytest.raises(ProofError, match="does not extend"):
            check(json.dumps(consistency_json(old, new, path)), key.public_key())


@pytest.mark.usefixtures("cli")
class TestCommandLine:
    """`ledger audit` end to end, as an auditor types it."""

    def test_keygen_checkpoint_verify_prove_check(
        self,
        ledger: BillingLedger,
        database_url: str,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """Each subcommand prints what it promises, and check-proof needs no database."""
        monkeypatch.setenv("LEDGER_DATABASE_URL", database_url)
        key = tmp_path / "auditor.pem"
        assert main(["audit", "keygen", str(key)]) == 0
        assert capsys.readouterr().out.startswith("private key ")
        assert main(["audit", "verify"]) == 0
        assert capsys.readouterr().out.startswith(
            f"OK: {last_position(ledger)} events in 13 batches"
        )
        assert main(["audit", "checkpoint", "--key", str(key)]) == 0
        checkpoint = tmp_path / "checkpoint.txt"
        checkpoint.write_text(capsys.readouterr().out)
        assert main(["audit", "prove", "--position", "5", "--checkpoint", str(checkpoint)]) == 0
        proof = tmp_path / "proof.json"
        proof.write_text(capsys.readouterr().out)
        assert (
            main(["audit", "verify", "--from", str(checkpoint), "--public-key", f"{key}.pub"]) == 0
        )
        capsys.readouterr()
        monkeypatch.setenv("LEDGER_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
        assert main(["audit", "check-proof", str(proof), "--public-key", f"{key}.pub"]) == 0
        assert "is at position 5" in capsys.readouterr().out

    def test_verify_exits_one_on_a_break(
        self,
        ledger: BillingLedger,
        database_url: str,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """A broken history makes verify print BROKEN and exit 1."""
        monkeypatch.setenv("LEDGER_DATABASE_URL", database_url)
        execute(database_url, "DELETE FROM billing_events WHERE notification_id = 2")
        assert main(["audit", "verify"]) == 1
        assert capsys.readouterr().out.startswith("BROKEN at batch 1, position 2")


def last_position(ledger: BillingLedger) -> int:
    """The position of the newest stored event."""
    last = ledger.recorder.max_notification_id()
    assert last is not None
    return last


def reseal(database_url: str) -> None:
    """Recompute every batch root and head from the stored events, as a forger with write
    access (but not the auditor's key) would, so that the store agrees with itself again."""
    table = BatchHeadsTable("public", "billing_batch_heads")
    with snapshot(database_url) as store:
        heads = [sealed.head for sealed in store.heads()]
        leaves = {
            h.batch: [
                event_leaf(*row[1:]) for row in store.events(h.first_position - 1, h.last_position)
            ]
            for h in heads
        }
    previous = None
    with psycopg.connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute("DELETE FROM billing_batch_heads")
        for head in heads:
            previous = seal(
                previous,
                events_root=merkle.root(leaves[head.batch]),
                event_count=head.event_count,
                last_position=head.last_position,
                sources=head.sources,
                now=head.recorded_at,
            )
            table.insert(cursor, previous)
