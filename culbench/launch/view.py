"""The progress view of a launched sweep: one live table of every job on a terminal; elsewhere
(a log file, a SLURM job, CI) a line for each job that starts, ends or fails, and a line of totals
every ``CULBENCH_PROGRESS_EVERY`` seconds (default 60)."""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from culbench.cli.console import duration
from culbench.launch.track import Row, Tracker

STYLE = {"done": "green", "running": "cyan", "queued": "dim", "failed": "bold red"}


def totals_line(totals: dict[str, object]) -> str:
    """``3 done, 2 running, 4 queued, 1 failed of 10 jobs; 5m elapsed, ~12m left``."""
    counts = ", ".join(f"{totals[state]} {state}" for state in STYLE if totals[state])
    left = totals["left"]
    tail = f", ~{duration(left)} left" if isinstance(left, float) and left >= 1 else ""
    return f"{counts} of {totals['jobs']} jobs; {duration(totals['elapsed'])} elapsed{tail}"  # type: ignore[arg-type]


def table(rows: list[Row], caption: str) -> Table:
    """The live table: job, state, steps, elapsed, left and a note (host, or the error)."""
    grid = Table(caption=caption, caption_justify="left", pad_edge=False)
    for column in ("job", "state", "steps", "elapsed", "left", "note"):
        grid.add_column(column, overflow="fold", no_wrap=column != "note")
    for row in rows:
        left = f"~{duration(row.left)}" if row.left is not None else ""
        grid.add_row(row.label, Text(row.state, style=STYLE[row.state]), row.steps, duration(row.elapsed), left,
                     Text(row.note, style="red" if row.state == "failed" else ""))
    return grid


class View:
    """Shows a :class:`Tracker` on ``console``: :meth:`show` after each poll."""

    def __init__(self, console: Console, every: float) -> None:
        self.console, self.every = console, every
        self.live: Live | None = None
        self.seen: dict[int, str] = {}  # each job's state as last shown
        self.last = time.monotonic()

    def __enter__(self) -> View:
        if self.console.is_terminal:
            self.live = Live(console=self.console, auto_refresh=False, transient=False)
            self.live.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.live is not None:
            self.live.stop()

    def show(self, tracker: Tracker) -> None:
        rows = tracker.rows()
        caption = totals_line(tracker.totals(rows))
        if self.live is not None:
            self.live.update(table(rows, caption), refresh=True)
            return
        for index, row in enumerate(rows):  # off a terminal: a line per change of state
            if self.seen.get(index, "queued") != row.state:
                self._say(_change(row))
            self.seen[index] = row.state
        if tracker.finished or time.monotonic() - self.last >= self.every:
            self._say(caption)
            self.last = time.monotonic()

    def _say(self, line: str) -> None:
        self.console.print(f"[{time.strftime('%H:%M:%S')}] {line}", highlight=False, markup=False, soft_wrap=True)


def _change(row: Row) -> str:
    if row.state == "running":
        return f"{row.label}: running {row.note}".rstrip()
    if row.state == "failed":
        return f"{row.label}: failed after {duration(row.elapsed) or '0s'}: {row.note}"
    return f"{row.label}: {row.state}" + (f" in {duration(row.elapsed)} ({row.steps} steps)" if row.elapsed else "")
