"""Progress for long CLI work: live bars on a terminal, timed plain lines everywhere else.

A rich bar redraws in place, which a log file (``nohup``, a SLURM job, CI) cannot show: there it
prints nothing until the process ends, and a ten-hour retrain run would look hung. Off a
terminal, progress is therefore written as plain lines: at most one every
``CULBENCH_PROGRESS_EVERY`` seconds (default 60) while bars move, and one when the outermost bar
finishes, each naming every open bar with its count, and the innermost one with its rate's
estimate of the time left::

    [00:27:13] retrain on toy10@1 1/9 | retrain: UNet without zorb, star 3500/10000 35% ~50m left
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from rich.console import Console

from culbench.cli.console import duration

Advance = Callable[..., None]
Factory = Callable[[int, str], Advance]

ENV_EVERY = "CULBENCH_PROGRESS_EVERY"
DEFAULT_EVERY = 60.0


def interval_from_env() -> float:
    """Seconds between progress lines off a terminal (``CULBENCH_PROGRESS_EVERY``, default 60)."""
    from culbench.errors import ConfigError

    raw = os.environ.get(ENV_EVERY, "").strip()
    if not raw:
        return DEFAULT_EVERY
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"{ENV_EVERY}={raw!r} is not a positive number of seconds",
                          f"set it to e.g. 300 (a line every 5 minutes) or unset it for the default {DEFAULT_EVERY:.0f}")
    return value


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}"


@dataclass
class _Bar:
    description: str
    total: int
    done: int = 0
    rate_from: tuple[float, int] | None = None  # (time, done) at the first advance: the rate's origin


class LineProgress:
    """The plain-line reporter: ``add(total, description)`` returns the bar's ``advance(n=1)``.

    Inner bars close when they reach their total; the first bar opened is the outermost, and its
    finishing prints a line whatever the time. ``clock`` is injectable for tests.
    """

    def __init__(self, write: Callable[[str], None], every: float = DEFAULT_EVERY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.write, self.every, self.clock = write, every, clock
        self.bars: dict[int, _Bar] = {}
        self.outer: int | None = None
        self.start = clock()
        self.last = self.start
        self._next_id = 0

    def add(self, total: int, description: str) -> Advance:
        bar_id, self._next_id = self._next_id, self._next_id + 1
        self.bars[bar_id] = _Bar(description, max(0, int(total)))
        if self.outer is None:
            self.outer = bar_id

        def advance(n: int = 1) -> None:
            self._advance(bar_id, n)

        return advance

    def _advance(self, bar_id: int, n: int) -> None:
        bar = self.bars.get(bar_id)
        if bar is None:
            return
        bar.done += n
        now = self.clock()
        if bar.rate_from is None:  # measured from here: a resumed bar's first advance is its jump
            bar.rate_from = (now, bar.done)
        finished = bool(bar.total) and bar.done >= bar.total
        if now - self.last >= self.every or (finished and bar_id == self.outer):
            self.write(self.line(now))
            self.last = now
        if finished and bar_id != self.outer:
            del self.bars[bar_id]

    def line(self, now: float | None = None) -> str:
        now = self.clock() if now is None else now
        parts = []
        for bar_id, bar in self.bars.items():
            text = f"{bar.description} {bar.done}/{bar.total}"
            if bar_id == max(self.bars) and bar.total:
                text += f" {100 * bar.done / bar.total:.0f}%"
                since, done_then = bar.rate_from or (now, bar.done)
                worked, elapsed = bar.done - done_then, now - since
                left = elapsed / worked * (bar.total - bar.done) if worked > 0 else 0.0
                if left >= 1:
                    text += f" ~{duration(left)} left"
            parts.append(text)
        return f"[{_clock(now - self.start)}] " + " | ".join(parts)


@contextlib.contextmanager
def open_progress(console: Console, quiet: bool = False) -> Iterator[tuple[Factory, Callable[[str], None]]]:
    """``(progress, log)`` for the runner: rich bars when ``console`` is a terminal, else
    :class:`LineProgress` lines; ``quiet`` turns both off (log messages too)."""
    def log_plain(message: str) -> None:
        console.print(message, highlight=False, markup=False, soft_wrap=True)

    if quiet:
        yield (lambda total, description: (lambda n=1: None)), (lambda message: None)
        return
    if not console.is_terminal:
        every = interval_from_env()
        yield LineProgress(log_plain, every).add, log_plain
        return

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=False)
    first: list[int] = []

    def progress(total: int, description: str) -> Advance:
        """Add a bar; inner bars (iterations, sampling) disappear when they finish."""
        task = bars.add_task(description, total=total)
        first.append(first[0] if first else task)

        def advance(n: int = 1) -> None:
            bars.advance(task, n)
            done = next(t for t in bars.tasks if t.id == task).finished
            if done and task != first[0]:
                bars.remove_task(task)

        return advance

    with bars:
        yield progress, (lambda message: bars.console.print(message, highlight=False))
