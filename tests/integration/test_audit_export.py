"""`ledger audit export`, `check-export` and `journal` on the sample book, read back by two Avro libraries."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import avro.datafile
import avro.io
import fastavro
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eventsourcing.persistence import StoredEvent

from audit.check_export import ExportBroken, ExportChecked, check_export
from audit.checkpoint import read_unverified
from audit.export import Selection, export
from audit.export_format import offline_mapper, stored_event, typed_record
from audit.journal import journal_lines, write_journal
from audit.store import snapshot
from ledger.application import BillingLedger
from runtime.cli import main
from runtime.runner import open_ledger
from tests.integration.audit_book import (
    fixture_database_url,
    fixture_key,
    fixture_ledger,
    fixture_postgres_url,
    save_book,
    signed_checkpoint,
)
from tests.integration.test_audit_proofs import fixture_cli
from tools.worked_example import ACCOUNT

pytestmark = pytest.mark.integration
__all__ = [
    "fixture_cli",
    "fixture_database_url",
    "fixture_key",
    "fixture_ledger",
    "fixture_postgres_url",
]


def exported(
    database_url: str, folder: Path, selection: Selection | None = None, codec: str = "deflate"
) -> dict[str, Any]:
    """Export the store into `folder`; answer the manifest."""
    with snapshot(database_url) as store:
        return export(store, folder, selection or Selection(), codec).manifest


def checked(folder: Path, note: str | None = None) -> ExportChecked | ExportBroken:
    """What check-export says about `folder` (against the checkpoint `note`, unverified)."""
    return check_export(folder, None if note is None else read_unverified(note))


def broken(folder: Path) -> ExportBroken:
    """What check-export says about an export that must be broken."""
    result = checked(folder)
    assert isinstance(result, ExportBroken), result
    return result


def apache_records(path: Path) -> list[dict[str, Any]]:
    """The records of a container file as the Apache Avro implementation reads them."""
    with avro.datafile.DataFileReader(path.open("rb"), avro.io.DatumReader()) as container:
        return list(container)


def rfc6962_root(leaves: list[bytes]) -> bytes:
    """The RFC 6962 root of leaf hashes, by the RFC's recursive definition (independent of infra.merkle)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    split = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(
        b"\x01" + rfc6962_root(leaves[:split]) + rfc6962_root(leaves[split:])
    ).digest()


def leaf_by_hand(record: dict[str, Any]) -> bytes:
    """The Merkle leaf of an exported record, from docs/audit.md's definition."""
    import struct
    import uuid

    topic, state = record["topic"].encode(), record["state"]
    data = (
        b"BLE1"
        + struct.pack(">I", len(topic))
        + topic
        + uuid.UUID(str(record["originator_id"])).bytes
        + struct.pack(">QI", record["originator_version"], len(state))
        + state
    )
    return hashlib.sha256(b"\x00" + data).digest()


def rewrite(path: Path, change: Any) -> None:
    """Rewrite a container file with `change` applied to its list of records (schema and codec kept)."""
    with path.open("rb") as file:
        container = fastavro.reader(file)
        schema, codec = container.writer_schema, container.metadata["avro.codec"]
        records = list(container)
    change(records)
    with path.open("wb") as file:
        fastavro.writer(file, schema, records, codec=codec)


def edit_manifest(folder: Path, change: Any) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture(name="export_dir")
def fixture_export_dir(ledger: BillingLedger, database_url: str, tmp_path: Path) -> Path:
    """The whole sample book exported."""
    exported(database_url, tmp_path / "export")
    return tmp_path / "export"


class TestExport:
    """The export holds every event once, in files any Avro library reads, and checks on its own."""

    def test_the_whole_book_checks(
        self, ledger: BillingLedger, database_url: str, export_dir: Path
    ) -> None:
        """Every stored event is exported, counted per type, and check-export finds it all holding."""
        manifest = json.loads((export_dir / "manifest.json").read_text())
        total = ledger.recorder.max_notification_id()
        assert manifest["events"] == total == sum(manifest["counts"].values())
        assert (manifest["first_position"], manifest["last_position"]) == (1, total)
        with snapshot(database_url) as store:
            last = store.last_head()
        assert last is not None and manifest["last_head"]["tree_root"] == last.tree_root.hex()
        result = checked(export_dir)
        assert isinstance(result, ExportChecked), result
        assert (result.events, result.tree_root) == (total, last.tree_root)

    def test_apache_avro_reads_what_fastavro_reads(self, export_dir: Path) -> None:
        """Both libraries read the same records; hashed by hand, they give the manifest's root."""
        manifest = json.loads((export_dir / "manifest.json").read_text())
        by_position = {}
        for name in manifest["counts"]:
            theirs = apache_records(export_dir / f"{name}.avro")
            with (export_dir / f"{name}.avro").open("rb") as file:
                ours = list(fastavro.reader(file))
            assert len(theirs) == len(ours) == manifest["counts"][name]
            for a, f in zip(theirs, ours, strict=True):
                assert (a["position"], a["state"], sorted(a["record"])) == (
                    f["position"],
                    f["state"],
                    sorted(f["record"]),
                )
                by_position[a["position"]] = a
        leaves = [leaf_by_hand(by_position[p]) for p in sorted(by_position)]
        assert rfc6962_root(leaves).hex() == manifest["merkle_root"]
        heads = apache_records(export_dir / "heads.avro")
        assert heads[-1]["tree_root"].hex() == manifest["last_head"]["tree_root"]

    def test_zstandard(self, ledger: BillingLedger, database_url: str, tmp_path: Path) -> None:
        """A zstandard export checks, and the Apache implementation reads it too."""
        manifest = exported(database_url, tmp_path / "z", codec="zstandard")
        assert manifest["codec"] == "zstandard"
        assert isinstance(checked(tmp_path / "z"), ExportChecked)
        heads = apache_records(tmp_path / "z" / "heads.avro")
        assert len(heads) == manifest["last_batch"]

    def test_one_account(self, ledger: BillingLedger, database_url: str, tmp_path: Path) -> None:
        """Only the account's events are exported; the others' leaves still close every batch root."""
        manifest = exported(database_url, tmp_path / "a", Selection(account_id=ACCOUNT))
        assert "PlanDefined" not in manifest["counts"]
        for name in manifest["counts"]:
            for record in apache_records(tmp_path / "a" / f"{name}.avro"):
                assert record["record"]["account_id"] == ACCOUNT
        assert manifest["events"] < ledger.recorder.max_notification_id()
        assert isinstance(checked(tmp_path / "a"), ExportChecked)

    def test_a_range_ends_at_its_checkpoint(
        self, ledger: BillingLedger, database_url: str, key: Ed25519PrivateKey, tmp_path: Path
    ) -> None:
        """Exported up to a checkpoint from the middle of the history, the range chains to that checkpoint only."""
        note = signed_checkpoint(database_url, key)
        save_book(ledger, first_offset=100)
        later = signed_checkpoint(database_url, key)
        selection = Selection(
            from_position=20, checkpoint=read_unverified(note), checkpoint_note=note
        )
        manifest = exported(database_url, tmp_path / "r", selection)
        assert manifest["first_position"] <= 20 < manifest["last_position"]
        assert manifest["previous_head"]["batch"] > 0 and manifest["checkpoint"] == note
        assert isinstance(checked(tmp_path / "r", note), ExportChecked)
        result = checked(tmp_path / "r", later)
        assert isinstance(result, ExportBroken) and "export ends at 13" in result.problem


class TestTamperedExport:
    """check-export names the first thing changed in an export, by file and record."""

    def test_altered_record(self, export_dir: Path) -> None:
        """An invoice's amount changed in its wire record differs from its stored state."""
        rewrite(
            export_dir / "InvoiceIssued.avro", lambda rs: rs[1]["record"].update(amount_minor=1)
        )
        result = broken(export_dir)
        assert (result.file, result.record) == ("InvoiceIssued.avro", 1), result
        assert "differs from the one its stored state gives" in result.problem

    def test_altered_state(self, export_dir: Path) -> None:
        """A stored state changed with its record no longer hashes into its batch."""

        def change(records: list[dict[str, Any]]) -> None:
            first = records[0]
            state = json.loads(first["state"])
            state["amount_minor"] += 1
            first["state"] = json.dumps(state, separators=(",", ":")).encode()
            stored = stored_event(
                first["topic"], first["originator_id"], first["originator_version"], first["state"]
            )
            first["record"] = typed_record(offline_mapper().to_domain_event(stored))[1]

        rewrite(export_dir / "InvoiceIssued.avro", change)
        result = broken(export_dir)
        assert result.file == "heads.avro" and "hash to" in result.problem

    def test_dropped_record(self, export_dir: Path) -> None:
        """A record removed from a file is named by the file's count."""
        rewrite(export_dir / "PaymentReceived.avro", lambda rs: rs.pop(0))
        result = broken(export_dir)
        assert result.file == "PaymentReceived.avro" and "holds" in result.problem

    def test_dropped_record_with_counts_fixed(self, export_dir: Path) -> None:
        """Dropped with the manifest's counts made to agree, its position is missing from its batch."""
        with (export_dir / "PaymentReceived.avro").open("rb") as file:
            position = next(iter(fastavro.reader(file)))["position"]
        rewrite(export_dir / "PaymentReceived.avro", lambda rs: rs.pop(0))

        def fix(manifest: dict[str, Any]) -> None:
            manifest["files"]["PaymentReceived.avro"]["records"] -= 1
            manifest["counts"]["PaymentReceived"] -= 1
            manifest["events"] -= 1

        edit_manifest(export_dir, fix)
        result = broken(export_dir)
        assert result.position == position and "dropped" in result.problem

    def test_reordered_records(self, export_dir: Path) -> None:
        """Two records swapped in a file: the first one's position is missing where it belongs."""
        with (export_dir / "InvoiceIssued.avro").open("rb") as file:
            position = next(iter(fastavro.reader(file)))["position"]
        rewrite(export_dir / "InvoiceIssued.avro", lambda rs: rs.insert(0, rs.pop(1)))
        result = broken(export_dir)
        assert result.position == position and "dropped or moved" in result.problem

    @pytest.mark.parametrize(
        ("change", "expected"),
        [
            (
                lambda m: m["counts"].update(InvoiceIssued=m["counts"]["InvoiceIssued"] + 1),
                "the manifest counts",
            ),
            (lambda m: m.update(merkle_root="00" * 32), "merkle_root is"),
            (lambda m: m["last_head"].update(head_hash="00" * 32), "last_head says"),
            (lambda m: m["previous_head"].update(head_hash="11" * 32), "its link is"),
            (lambda m: m["files"]["heads.avro"].update(sha256="22" * 32), "SHA-256"),
            (lambda m: m["files"].pop("heads.avro"), "not listed in the manifest"),
        ],
        ids=["count", "merkle-root", "last-head", "previous-head", "sha256", "file-unlisted"],
    )
    def test_changed_manifest(self, export_dir: Path, change: Any, expected: str) -> None:
        """Each field of the manifest changed alone is caught."""
        edit_manifest(export_dir, change)
        assert expected in broken(export_dir).problem

    def test_another_history_s_checkpoint(
        self, ledger: BillingLedger, database_url: str, key: Ed25519PrivateKey, tmp_path: Path
    ) -> None:
        """Checked against a checkpoint of the same size but another root, the export fails."""
        exported(database_url, tmp_path / "e")
        lines = signed_checkpoint(database_url, key).split("\n")
        lines[2] = base64.b64encode(bytes(32)).decode()
        result = checked(tmp_path / "e", "\n".join(lines))
        assert isinstance(result, ExportBroken) and "the checkpoint signs" in result.problem


class TestJournal:
    """The journal lists every posting of the events once; debits equal credits per currency."""

    @pytest.fixture(name="journal_dir")
    def fixture_journal_dir(self, ledger: BillingLedger, database_url: str, tmp_path: Path) -> Path:
        with snapshot(database_url) as store:
            write_journal(journal_lines(store), tmp_path / "j", "deflate")
        return tmp_path / "j"

    def rows(self, journal_dir: Path) -> list[dict[str, str]]:
        with (journal_dir / "journal.csv").open(newline="") as file:
            return list(csv.DictReader(file))

    def test_debits_equal_credits(self, journal_dir: Path) -> None:
        """Per currency and per entry, the lines balance."""
        entries: dict[str, int] = {}
        for row in self.rows(journal_dir):
            entries[row["entry"]] = (
                entries.get(row["entry"], 0) + int(row["debit_minor"]) - int(row["credit_minor"])
            )
        assert entries and set(entries.values()) == {0}

    def test_the_account_totals_agree(self, ledger: BillingLedger, journal_dir: Path) -> None:
        """Revenue invoiced and cash received in the journal are the account's own totals."""
        account = ledger.account(ACCOUNT)
        assert account is not None
        rows = self.rows(journal_dir)
        invoiced = sum(
            int(r["credit_minor"])
            for r in rows
            if r["event_type"] == "InvoiceIssued" and r["ledger_account"] == "revenue"
        )
        received = sum(
            int(r["debit_minor"])
            for r in rows
            if r["event_type"] == "PaymentReceived" and r["ledger_account"].startswith("cash:")
        )
        assert (invoiced, received) == (
            account.totals.invoiced_minor,
            account.totals.received_minor,
        )
        assert invoiced > 0 and received > 0

    def test_the_avro_journal_is_the_csv(self, journal_dir: Path) -> None:
        """journal.avro, read by the Apache implementation, holds the CSV's lines."""
        rows = self.rows(journal_dir)
        records = apache_records(journal_dir / "journal.avro")
        assert [{k: str(v) for k, v in r.items()} for r in records] == rows


@pytest.mark.usefixtures("cli")
class TestCommandLine:
    """`ledger audit export|check-export|journal` as an auditor types them."""

    def test_export_check_journal(
        self,
        ledger: BillingLedger,
        database_url: str,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """Export with a checkpoint, check it with no database, and the journal balances."""
        monkeypatch.setenv("LEDGER_DATABASE_URL", database_url)
        key = tmp_path / "auditor.pem"
        assert main(["audit", "keygen", str(key)]) == 0
        assert main(["audit", "checkpoint", "--key", str(key)]) == 0
        checkpoint = tmp_path / "checkpoint.txt"
        checkpoint.write_text(capsys.readouterr().out.split("\n", 1)[1])
        folder = tmp_path / "export"
        arguments = ["--checkpoint", str(checkpoint), "--public-key", f"{key}.pub", str(folder)]
        assert main(["audit", "export", "--codec", "zstandard", *arguments]) == 0
        assert capsys.readouterr().out.startswith(
            f"exported {ledger.recorder.max_notification_id()} events"
        )
        monkeypatch.setenv("LEDGER_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
        assert main(["audit", "check-export", str(folder), "--public-key", f"{key}.pub"]) == 0
        assert "it ends at the checkpoint of billing-ledger (13 batches)" in capsys.readouterr().out
        rewrite(folder / "InvoiceIssued.avro", lambda rs: rs[0]["record"].update(currency="XXX"))
        assert main(["audit", "check-export", str(folder)]) == 1
        assert capsys.readouterr().out.startswith("BROKEN at InvoiceIssued.avro, record 0")
        monkeypatch.setenv("LEDGER_DATABASE_URL", database_url)
        assert main(["audit", "journal", str(tmp_path / "journal")]) == 0
        assert "balanced" in capsys.readouterr().out


RELEASED_EVENTS = sorted(
    (Path(__file__).parent.parent / "fixtures" / "released_events").glob("*.json")
)


class TestOlderHistory:
    """A history written by an earlier release exports, upcast, and checks."""

    @pytest.mark.parametrize("path", RELEASED_EVENTS, ids=lambda p: p.stem)
    def test_an_older_history_exports_and_checks(
        self, database_url: str, tmp_path: Path, path: Path
    ) -> None:
        """The release's stored events, one batch per history, export with current records."""
        ledger = open_ledger(database_url)
        stored, seen = [], set()
        for history in json.loads(path.read_text())["histories"]:
            if history[0]["originator_id"] in seen:
                continue  # the same aggregate in two of the release's tests
            seen.add(history[0]["originator_id"])
            stored.append([released_event(entry) for entry in history])
        for batch in stored:
            ledger.recorder.insert_events(batch)
        ledger.close()
        manifest = exported(database_url, tmp_path / "old")
        assert manifest["events"] == sum(map(len, stored))
        assert isinstance(checked(tmp_path / "old"), ExportChecked)
        for record in apache_records(tmp_path / "old" / "InvoiceIssued.avro"):
            state = json.loads(record["state"])
            if "early_payment_discount_minor" not in state:
                assert record["record"]["early_payment_discount_minor"] == 0


def released_event(entry: dict[str, Any]) -> StoredEvent:
    """A stored event of a released version's fixture."""
    return StoredEvent(
        originator_id=uuid.UUID(entry["originator_id"]),
        originator_version=entry["originator_version"],
        topic=entry["topic"],
        state=entry["state"].encode(),
    )
