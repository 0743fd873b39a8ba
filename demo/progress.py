"""Progress of `ledger demo` for people: a live bar on a terminal, a JSON line a month elsewhere."""

from __future__ import annotations

import json
import sys
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from demo.driver import Progress as BookProgress


class ProgressDisplay:
    """Shows the book's progress: a rich progress bar on a terminal, one JSON line a month off it."""

    def __init__(self, stream: TextIO = sys.stdout) -> None:
        self.stream = stream
        self.live = stream.isatty()
        self._last_month = 0
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> ProgressDisplay:
        if self.live:
            self._bar = Progress(
                TextColumn("[bold]{task.fields[business_month]}[/]"),
                BarColumn(),
                TextColumn("month {task.completed:.0f}/{task.total:.0f}"),
                TextColumn("{task.fields[counts]}"),
                TimeElapsedColumn(),
                console=Console(file=self.stream),
            )
            self._bar.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()

    def __call__(self, progress: BookProgress) -> None:
        """Show `progress`."""
        if self._bar is not None:
            self._show_live(self._bar, progress)
        elif progress.months_done != self._last_month:
            self.line(progress)
            self._last_month = progress.months_done

    def line(self, progress: BookProgress) -> None:
        """One JSON line of progress."""
        print(
            json.dumps({"event": "demo.progress", **progress.as_dict()}),
            file=self.stream,
            flush=True,
        )

    def _show_live(self, bar: Progress, progress: BookProgress) -> None:
        counts = (
            f"sent {progress.sent:,}  answered {progress.answered:,}  events {progress.events:,}"
            f"  {progress.commands_per_s:,.0f} commands/s"
        )
        if self._task is None:
            self._task = bar.add_task("book", total=progress.months, business_month="", counts="")
        bar.update(
            self._task,
            completed=progress.months_done,
            business_month=progress.business_month,
            counts=counts,
        )
