"""What `ledger audit export|check-export|journal` do; imported only when one runs."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from audit import checkpoint as checkpoints
from audit.basics import CheckpointError
from audit.check_export import ExportChecked
from audit.check_export import check_export as check_folder
from audit.export import Selection, export
from audit.export_format import MANIFEST
from audit.journal import journal_lines
from audit.journal import write_journal as write_lines
from audit.store import snapshot


def export_history(args: argparse.Namespace, url: str) -> int:
    """Export the selected history into args.folder, with a progress bar; print the outcome."""
    note = checkpoint = None
    if args.checkpoint is not None:
        note = _text(args.checkpoint)
        checkpoint = checkpoints.open_note(note, _public_key(args))
    selection = Selection(args.from_position, args.to_position, args.account_id, checkpoint, note)
    started = time.monotonic()
    columns = (
        TextColumn("exporting"),
        BarColumn(),
        TextColumn("position"),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
    )
    with (
        snapshot(url) as store,
        Progress(*columns, console=Console(stderr=True), transient=True) as bar,
    ):
        task = bar.add_task("export", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        exported = export(store, args.folder, selection, args.codec, advance)
    seconds = time.monotonic() - started
    print(exported.describe())
    size = sum(p.stat().st_size for p in args.folder.iterdir())
    events = exported.manifest["events"]
    print(
        f"{len(exported.manifest['files'])} files, {size:,} bytes in {args.folder}; "
        f"{seconds:.1f} s ({events / seconds if seconds else 0:,.0f} events/s)"
    )
    return 0


def check_export(args: argparse.Namespace) -> int:
    """Check the export in args.folder; print OK or the first difference."""
    checkpoint = None
    if args.checkpoint is not None or args.public_key is not None:
        note = (
            _text(args.checkpoint) if args.checkpoint is not None else _manifest_note(args.folder)
        )
        checkpoint = checkpoints.open_note(note, _public_key(args))
    result = check_folder(args.folder, checkpoint)
    print(result.describe())
    return 0 if isinstance(result, ExportChecked) else 1


def write_journal(args: argparse.Namespace, url: str) -> int:
    """Write the journal of the selected postings; print the totals per currency."""
    with snapshot(url) as store:
        lines = journal_lines(store, args.from_position or 1, args.to_position, args.account_id)
        totals = write_lines(lines, args.folder, args.codec)
    print(f"{totals.lines} journal lines in {args.folder / 'journal.csv'} and journal.avro")
    for currency in sorted(totals.debit_minor):
        debit, credit = totals.debit_minor[currency], totals.credit_minor[currency]
        verdict = "balanced" if debit == credit else f"UNBALANCED by {debit - credit}"
        print(f"{currency}: debits {debit} = credits {credit} (minor units): {verdict}")
    return 1 if totals.unbalanced() else 0


def _public_key(args: argparse.Namespace) -> Ed25519PublicKey:
    if args.public_key is None:
        raise CheckpointError(
            "a checkpoint needs --public-key: it counts only once its signature holds"
        )
    return checkpoints.load_public_key(args.public_key)


def _manifest_note(folder: Path) -> str:
    try:
        note = json.loads((folder / MANIFEST).read_text()).get("checkpoint")
    except (OSError, ValueError) as error:
        raise CheckpointError(f"cannot read {folder / MANIFEST}: {error}") from error
    if not note:
        raise CheckpointError("the export holds no checkpoint: give --checkpoint")
    return str(note)


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as error:
        raise CheckpointError(f"cannot read {path}: {error.strerror}") from error
