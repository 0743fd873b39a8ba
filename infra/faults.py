"""Crash points: named places where a test can make the process die, to prove nothing is lost.

`LEDGER_CRASH_AT=<point>:<n>` makes the process SIGKILL itself the n-th time it passes
`<point>` (n defaults to 1). Unset, a crash point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

CRASH_POINTS = (
    "commands.after_save",  # events and positions stored, no result published yet
    "relay.after_produce",  # events on Kafka, the relay's position not yet stored
    "projector.mid_batch",  # half a batch of read-model rows written, not committed
)
# Reached only with bad input, so not among the crash harness's random windows.
BAD_INPUT_CRASH_POINTS = (
    "commands.after_dead_letters",  # a batch's dead letters on Kafka, its positions not stored
)
_passes: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Die here, at once and without cleanup, if LEDGER_CRASH_AT names this point."""
    target = os.environ.get("LEDGER_CRASH_AT")
    if not target:
        return
    point, _, count = target.partition(":")
    if point != name:
        return
    _passes[name] = _passes.get(name, 0) + 1
    if _passes[name] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
