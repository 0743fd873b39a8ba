"""How often the property tests' random histories get each command type accepted.

    python bench/property_coverage.py [HISTORIES] [SEED]   (default 1000 histories, seed 0)

Draws the histories with the strategy of tests/unit/histories.py as the property tests do: in
runs of 100 examples, each run a hypothesis search of its own (seeds SEED, SEED + 1, ...; one
long run would draw many near copies of earlier examples). It processes each history in a
fresh in-memory ledger in its batches, and prints per command type: the histories containing
it, the share of those where at least one was accepted, the share of its distinct commands
accepted (an exact redelivery repeats the first answer, so it is not counted), and its most
common rejection codes; then every rejection code given, with how often. No servers needed.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from commands.handlers import Outcome  # noqa: E402
from tests.unit.builders import Sender, in_memory_ledger  # noqa: E402
from tests.unit.histories import History, histories  # noqa: E402

RUN_EXAMPLES = 100  # as many as each property test draws


@dataclass
class Tally:
    """What one command type got over all the histories drawn."""

    histories_with: int = 0
    histories_accepted: int = 0
    commands: int = 0
    accepted: int = 0
    rejections: Counter[str] = field(default_factory=Counter)

    def row(self, command_type: str, drawn: int) -> str:
        """One markdown table row: counts, shares, and the three most common rejection codes."""
        codes = ", ".join(
            f"{code} {count * 100 // self.commands}%"
            for code, count in self.rejections.most_common(3)
        )
        return (
            f"| {command_type} | {self.histories_with} ({self.histories_with * 100 // drawn}%) "
            f"| {self.histories_accepted * 100 // self.histories_with}% "
            f"| {self.accepted * 100 // self.commands}% of {self.commands} | {codes} |"
        )


def first_answers(history: History) -> list[Outcome]:
    """The answer to each distinct command of the history, processed batch by batch.

    A command whose id an earlier command took is answered `command_id_reused` on its first
    delivery, which counts; an exact redelivery repeats an answer, which does not.
    """
    send = Sender(in_memory_ledger())
    answers, seen = [], set()
    for outcome in (outcome for batch in history.batches() for outcome in send(*batch)):
        delivery = outcome.delivery
        if (delivery.command.command_id, delivery.content_digest) not in seen:
            seen.add((delivery.command.command_id, delivery.content_digest))
            answers.append(outcome)
    return answers


def add_history(tallies: dict[str, Tally], history: History) -> None:
    """Count the answers to one history's commands into `tallies`, by command type."""
    seen: dict[str, bool] = {}
    for outcome in first_answers(history):
        command_type = outcome.delivery.command_type
        each = tallies.setdefault(command_type, Tally())
        each.commands += 1
        if outcome.rejection is None:
            each.accepted += 1
        else:
            each.rejections[outcome.rejection.code] += 1
        seen[command_type] = seen.get(command_type, False) or outcome.rejection is None
    for command_type, accepted in seen.items():
        tallies[command_type].histories_with += 1
        tallies[command_type].histories_accepted += accepted


def tally(count: int, first_seed: int) -> tuple[dict[str, Tally], int]:
    """Draw about `count` histories, in runs of RUN_EXAMPLES, and tally the answers of each
    command type; also answer how many were drawn (a run may stop early)."""
    tallies: dict[str, Tally] = {}
    drawn = 0
    for run in range(max(1, count // RUN_EXAMPLES)):

        @seed(first_seed + run)
        @settings(
            max_examples=min(count, RUN_EXAMPLES),
            phases=[Phase.generate],
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(history=histories())
        def draw_one(history: History) -> None:
            nonlocal drawn
            drawn += 1
            add_history(tallies, history)

        draw_one()
    return tallies, drawn


def main(count: int, seed_value: int) -> None:
    """Print the table for `count` histories drawn from seed `seed_value` on."""
    tallies, drawn = tally(count, seed_value)
    print(f"{drawn} histories, seeds from {seed_value}\n")
    print(
        "| command | histories with it | with one accepted | commands accepted "
        "| most common rejections (share of its commands) |"
    )
    print("|---|---|---|---|---|")
    for command_type in sorted(
        tallies, key=lambda name: tallies[name].histories_with, reverse=True
    ):
        print(tallies[command_type].row(command_type, drawn))
    codes = sum((each.rejections for each in tallies.values()), Counter[str]())
    print(f"\nrejection codes given ({len(codes)}):")
    print(", ".join(f"{code} {count}" for code, count in sorted(codes.items())))


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(*(args + [1000, 0][len(args) :]))
