"""An export written by an earlier version of `ledger audit export` still checks.

tests/fixtures/exports/format-1 is the worked example's book exported (format
billing-ledger-export/1, with the checkpoint it ends at, signed by format-1.pub). Keep it as
it is: a new export format must leave check-export able to read this one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from audit.check_export import ExportBroken, ExportChecked, check_export
from audit.checkpoint import load_public_key, open_note

FORMAT_1 = Path(__file__).parent.parent / "fixtures" / "exports" / "format-1"


class TestFormatOne:
    """The kept export of format 1 checks, against the checkpoint it holds, with no database."""

    def test_it_checks_against_its_checkpoint(self) -> None:
        """Its signature holds and every count, root and link is as its manifest says."""
        note = json.loads((FORMAT_1 / "manifest.json").read_text())["checkpoint"]
        checkpoint = open_note(note, load_public_key(FORMAT_1.with_suffix(".pub")))
        result = check_export(FORMAT_1, checkpoint)
        assert isinstance(result, ExportChecked), result
        assert (result.events, result.tree_size) == (106, 13)

    @pytest.mark.parametrize("offset", [-20, -40, -200, 600])
    def test_a_changed_byte_fails(self, tmp_path: Path, offset: int) -> None:
        """The same export with one byte of heads.avro flipped fails, without a crash."""
        copy = shutil.copytree(FORMAT_1, tmp_path / "copy")
        data = bytearray((copy / "heads.avro").read_bytes())
        data[offset] ^= 1
        (copy / "heads.avro").write_bytes(bytes(data))
        result = check_export(copy)
        assert isinstance(result, ExportBroken), result
