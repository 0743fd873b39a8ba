"""Speed of making the forecast snapshots' days: the forecast functions before and after, alternating.

    python -m bench forecast_days [COMMANDS] [ROUNDS]     (default 5,000 commands, 5 rounds)

A history is generated as `bench projections` does (bench/mix.py's commands over a fifth as
many accounts) and applied by the projector's write path; then each currency's rows are read
once up to its last snapshot day (`load_history`, as `make_days` does) and every snapshot day
is forecast from `History.as_of` of its midnight: by the frozen copy of the functions before
they were made cheaper (tests/unit/forecast_reference.py) and by `forecast_days` with one
`Memo` for the run, in alternating rounds, timed in process CPU seconds (the books'
`History.as_of`, the current code's in both, apart). The two must give the same forecasts.
The load average is printed before and after.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import date, timedelta
from typing import Any

import psycopg

from bench.audit import fresh_database, open_ledger
from bench.machine import machine
from bench.pipeline import RESULTS
from bench.projections import apply, event_messages, generate
from bench.servers import bench_servers
from projections.forecast_book import forecast_days
from projections.forecast_history import History, load_history
from projections.forecast_model import Memo, midnight
from projections.snapshot_days import SETTLE_DAYS
from tests.unit import forecast_reference


def histories(database_url: str) -> list[tuple[date, int, History]]:
    """Each currency's first snapshot day, its number of days, and its rows up to the last."""
    found = []
    with psycopg.connect(database_url) as database:
        spans = database.execute(
            "SELECT currency, first_day + 1, last_day - %s FROM forecast_snapshot_range",
            (SETTLE_DAYS,),
        ).fetchall()
        for currency, first, last in spans:
            days = (last - first).days + 1
            found.append((first, days, load_history(database, currency, midnight(last))))
    return found


def make(runs: list[tuple[date, int, History]], new: bool) -> tuple[float, float, list[Any]]:
    """Every day's forecast, old or new; the process CPU seconds of the books (`History.as_of`)
    and of the forecasts, and the forecasts."""
    books_s, forecasts_s, made = 0.0, 0.0, []
    for first, days, history in runs:
        memo = Memo()
        for n in range(days):
            as_of = midnight(first + timedelta(days=n))
            started = time.process_time()
            book = history.as_of(as_of)
            booked = time.process_time()
            if new:
                forecast = forecast_days(book, as_of, memo=memo)
            else:
                forecast = forecast_reference.forecast_days(book, as_of)
            forecasts_s += time.process_time() - booked
            books_s += booked - started
            made.append([list(forecast[0].items()), forecast[1], list(forecast[2].groups.items())])
    return books_s, forecasts_s, made


def main(commands: int = 5000, rounds: int = 5) -> None:
    """Generate and project a history, then time the old and new forecasts of its days."""
    with bench_servers() as servers:
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        details = machine(servers.server_url)
        database_url = fresh_database(servers.server_url)
        ledger = open_ledger(database_url)
        generate(ledger, commands, commands // 5)
        messages = event_messages(ledger)
        ledger.close()
        apply(database_url, messages).close()
        runs = histories(database_url)
    days = sum(run[1] for run in runs)
    items = sum(len(run[2].items) for run in runs)
    versions = sum(len(run[2].versions) for run in runs)
    print(f"{len(messages)} events; {days} snapshot days; {items} items, {versions} versions")
    print(f"load average before {os.getloadavg()}")
    figures: dict[str, list[float]] = {"old": [], "new": [], "old_books": [], "new_books": []}
    for _ in range(rounds):
        old_books, old, old_made = make(runs, new=False)
        new_books, new, new_made = make(runs, new=True)
        assert new_made == old_made, "the new forecast differs from the old"
        for name, seconds in zip(figures, (old, new, old_books, new_books), strict=True):
            figures[name].append(round(1000 * seconds / days, 2))
        print(
            f"forecast_days: old {1000 * old / days:.1f} ms/day, new {1000 * new / days:.1f}: "
            f"{old / new:.1f}x; History.as_of {1000 * old_books / days:.1f} and "
            f"{1000 * new_books / days:.1f} ms/day"
        )
    ratio = round(sum(figures["old"]) / sum(figures["new"]), 2)
    load_after = [round(x, 2) for x in os.getloadavg()]
    print(f"load average after {load_after}; forecast_days {ratio}x over the rounds")
    details["load_average_1_5_15_after"] = load_after
    result = {
        "started": started,
        "commands": commands,
        "snapshot_days": days,
        "items": items,
        "versions": versions,
        "machine": details,
        **{f"{name}_ms_per_day": values for name, values in figures.items()},
        "forecast_days_ratio": ratio,
    }
    out = RESULTS / f"forecast-days-{started.replace(':', '')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
