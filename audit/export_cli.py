"""`ledger audit export|check-export|journal`: their arguments, and what each runs.

Registered by one line in audit/cli.py; the export modules are imported only when one runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audit.actions import DatabaseUrl, offline, online

COMMANDS = "audit.export_commands"
CODECS = ("deflate", "zstandard")  # as audit/export_format.py, without importing it here


def add_export_parsers(actions: Any, database_url: DatabaseUrl) -> None:
    """Add export, check-export and journal to the `ledger audit` operations."""
    exporter = actions.add_parser(
        "export",
        help="write the history as Avro container files with a manifest (counts, roots, head)",
        description="Write the history into DIR (new or empty): one Avro object container file "
        "per event type (<EventType>.avro, schema embedded; each record the stored event's "
        "columns beside its billing.events record), heads.avro with the batch heads, and "
        "manifest.json with the counts, positions, the Merkle root of the exported events and "
        "the head (and checkpoint) the export chains to. --from/--to are widened to whole "
        "batches. See docs/audit.md, 'Exports'.",
    )
    _add_range(exporter)
    exporter.add_argument(
        "--codec", choices=CODECS, default="deflate", help="the files' codec (default %(default)s)"
    )
    exporter.add_argument(
        "--checkpoint",
        type=Path,
        help="end the export at this signed checkpoint and keep it in the manifest",
    )
    exporter.add_argument(
        "--public-key", type=Path, help="the key that signed --checkpoint (required with it)"
    )
    exporter.add_argument("folder", type=Path, metavar="DIR")
    exporter.set_defaults(action=online("export_history", database_url, COMMANDS))
    checker = actions.add_parser(
        "check-export",
        help="check an export with no database: counts, roots, links, the chain to a checkpoint",
        description="Check the export in DIR on its own: every event's leaf and record, every "
        "batch root, head hash and link, the tree of heads, the counts, the files' SHA-256 "
        "and the Merkle root in the manifest; with --checkpoint, that the export ends at that "
        "signed checkpoint (the manifest's own, if it has one, with --public-key alone). "
        "Exits 1 at the first difference, named by file and record or batch and position.",
    )
    checker.add_argument("folder", type=Path, metavar="DIR")
    checker.add_argument(
        "--checkpoint", type=Path, help="a signed checkpoint the export must end at"
    )
    checker.add_argument(
        "--public-key", type=Path, help="the checkpoint signer's Ed25519 key (PEM)"
    )
    checker.set_defaults(action=offline("check_export", COMMANDS))
    journal = actions.add_parser(
        "journal",
        help="write the general-ledger journal of the postings as CSV and Avro",
        description="Write every posting of the selected events as a journal line (date, "
        "entry, line, ledger account, debit, credit, currency, document...) into DIR/journal.csv "
        "and DIR/journal.avro, from the events alone; prints debits and credits per currency, "
        "and exits 1 if they differ. Columns in docs/audit.md, 'The journal'.",
    )
    _add_range(journal)
    journal.add_argument(
        "--codec",
        choices=CODECS,
        default="deflate",
        help="journal.avro's codec (default %(default)s)",
    )
    journal.add_argument("folder", type=Path, metavar="DIR")
    journal.set_defaults(action=online("write_journal", database_url, COMMANDS))


def _add_range(parser: Any) -> None:
    parser.add_argument(
        "--from", dest="from_position", type=int, metavar="POS", help="first position"
    )
    parser.add_argument("--to", dest="to_position", type=int, metavar="POS", help="last position")
    parser.add_argument(
        "--account", dest="account_id", metavar="ID", help="only this account's events"
    )
