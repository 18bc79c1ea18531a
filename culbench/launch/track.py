"""Following a sweep's jobs: whether each has ended from the engine, how far it has got from its
run folder (the manifest's committed steps) and its status record, never from its output."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from culbench import runfolder as rf
from culbench.errors import CulbenchError
from culbench.launch.base import Engine, Job, read_status
from culbench.runfolder.progress import manifest_progress

STATES = ("queued", "running", "done", "failed")


@dataclass(frozen=True)
class Row:
    """One job as the progress view shows it.

    Attributes:
        label: the job (method, seed, settings, step); state: one of ``STATES``.
        steps: ``"committed/total"`` of the job's run (of its one step, for a step job).
        elapsed: seconds since the job started; left: estimated seconds to go (``None``: unknown).
        note: where it runs while running; its one-line error when it failed.
    """

    label: str
    state: str
    steps: str
    elapsed: float | None
    left: float | None
    note: str


class Tracker:
    """The jobs of one submission and what is known of them: the engine's results as they come
    (:meth:`poll`), the run folders' progress when asked (:meth:`rows`)."""

    def __init__(self, jobs: list[Job], engine: Engine, clock: Any = time.time) -> None:
        self.jobs, self.engine, self.clock = jobs, engine, clock
        self.results: dict[int, dict[str, Any]] = {}
        self.ended: dict[int, float] = {}
        self.began = clock()
        self.width = 1  # the most jobs seen running at once

    def poll(self) -> None:
        """Take the results of the jobs that ended since the last poll."""
        for index, result in self.engine.poll().items():
            self.results[index] = result
            self.ended[index] = self.clock()

    @property
    def finished(self) -> bool:
        return len(self.results) == len(self.jobs)

    def failures(self) -> list[tuple[Job, str]]:
        """Every failed job with its one-line error, in submission order."""
        return [(self.jobs[i], self.results[i]["error"]) for i in sorted(self.results) if "error" in self.results[i]]

    def rows(self) -> list[Row]:
        now = self.clock()
        rows = [self._row(i, job, now) for i, job in enumerate(self.jobs)]
        self.width = max(self.width, sum(row.state == "running" for row in rows))
        return rows

    def _row(self, index: int, job: Job, now: float) -> Row:
        result, status = self.results.get(index), read_status(job)
        if result is not None:
            state = "failed" if "error" in result else "done"
        else:
            state = "running" if status is not None else "queued"
        progress = _progress(job)
        started = status.get("started") if status else None
        elapsed = None if started is None else max(0.0, self.ended.get(index, now) - started)
        note = result["error"] if state == "failed" and result else f"on {status['host']}" if state == "running" else ""
        left = progress.get("seconds_left") if state == "running" else None
        return Row(job.label, state, progress["steps"], elapsed, left, note)

    def totals(self, rows: list[Row]) -> dict[str, Any]:
        """Jobs per state, seconds since submission and an estimate of the seconds left: the
        running jobs' longest estimate (a finished job's mean time where a job has none), then
        the queued jobs in waves as wide as the most jobs seen running at once."""
        counts = {state: sum(row.state == state for row in rows) for state in STATES}
        took = [row.elapsed for row in rows if row.state == "done" and row.elapsed is not None]
        mean = sum(took) / len(took) if took else None
        running = [row.left if row.left is not None else None if mean is None else max(0.0, mean - (row.elapsed or 0))
                   for row in rows if row.state == "running"]
        left = None
        if None not in running and (mean is not None or not counts["queued"]):
            left = max(running, default=0.0) + math.ceil(counts["queued"] / self.width) * (mean or 0.0)
        return {**counts, "jobs": len(rows), "elapsed": self.clock() - self.began, "left": left}


def _progress(job: Job) -> dict[str, Any]:
    """``steps`` (``"done/total"``) and, for a whole run, ``seconds_left`` from its manifest."""
    if job.step is not None:
        return {"steps": f"{int(rf.computed(job.run_dir, job.step))}/1"}
    try:
        return manifest_progress(rf.read_json(job.run_dir / rf.MANIFEST))
    except CulbenchError:  # not started yet, or being rewritten
        return {"steps": f"0/{job.steps_total + 1}"}
