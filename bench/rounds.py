"""Rounds of several checkouts, alternating which goes first, and their JSON result: what
`python -m bench writer` and `python -m bench rebuild` share."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

Round = Callable[[str, Path, int], dict[str, Any]]  # (label, checkout, round number) -> figures


def alternating(checkouts: dict[str, Path], rounds: int, run: Round) -> dict[str, list[Any]]:
    """`rounds` rounds of each checkout, this order in even rounds and the reverse in odd ones,
    so neither goes first every time; each round's figures printed as it ends."""
    runs: dict[str, list[Any]] = {label: [] for label in checkouts}
    for number in range(rounds):
        order = list(checkouts.items())
        for label, checkout in order if number % 2 == 0 else reversed(order):
            figures = run(label, checkout, number)
            runs[label].append(figures)
            print(label, json.dumps(figures), flush=True)
    return runs


def emit(result: dict[str, Any], out: Path | None) -> int:
    """Print the result as JSON, and write it to `out` if given; the exit status."""
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        out.write_text(text + "\n")
    return 0
