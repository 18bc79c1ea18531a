"""Launchers: where the jobs of a sweep run (``culbench sweep --launcher``).

* ``local``: in this process, one run after another (:mod:`culbench.launch.local`).
* ``ray``: Ray tasks on a cluster started here or an existing one (:mod:`culbench.launch.ray`).
* ``slurm``: a SLURM job array through submitit (:mod:`culbench.launch.slurm`).

``ray`` and ``slurm`` share the rest: the job list (:mod:`culbench.launch.base`: one job per run,
or per step of a from-scratch method), the polling of run folders (:mod:`culbench.launch.track`)
and the progress view (:mod:`culbench.launch.view`). Their packages are optional extras,
imported only when asked for.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from culbench.errors import CulbenchError, RunError
from culbench.launch.base import LAUNCH_DIR, Engine, Options, check_options, clear_status, is_complete, plan
from culbench.spec import RunSpec

LAUNCHERS = ("local", "ray", "slurm")


def open_engine(options: Options, out: Path) -> Engine:
    """The engine of ``options.launcher`` (``ray`` or ``slurm``), its package imported now."""
    if options.launcher == "ray":
        from culbench.launch.ray import RayEngine

        return RayEngine(options)
    if options.launcher == "slurm":
        from culbench.launch.slurm import SlurmEngine

        return SlurmEngine(options, out / LAUNCH_DIR / "slurm")
    raise CulbenchError(f"unknown --launcher '{options.launcher}'", f"use one of: {', '.join(LAUNCHERS)}")


def launch(specs: list[RunSpec], options: Options, console: Console, rerun: str) -> None:
    """Run ``specs`` through ``options.launcher`` until every job has ended, showing their
    progress on ``console``; a one-line error when a job failed, naming ``rerun`` (the command that
    resumes them). An interrupted sweep stops the jobs it started."""
    from culbench.cli.progress import interval_from_env
    from culbench.launch.track import Tracker
    from culbench.launch.view import View

    if options.launcher not in LAUNCHERS:
        raise CulbenchError(f"unknown --launcher '{options.launcher}'", f"use one of: {', '.join(LAUNCHERS)}")
    check_options(options)
    jobs = plan(specs, options.step_jobs)
    if not jobs:
        console.print(f"all {len(specs)} runs are complete", highlight=False)
        return
    every = interval_from_env()
    engine = open_engine(options, jobs[0].out)
    clear_status(jobs)
    tracker = Tracker(jobs, engine)
    try:
        for line in engine.submit(jobs):
            console.print(line, highlight=False, markup=False, soft_wrap=True)
        with View(console, every) as view:
            while True:
                tracker.poll()
                view.show(tracker)
                if tracker.finished:
                    break
                time.sleep(options.poll)
    except BaseException:
        engine.close(cancel=True)
        raise
    engine.close(cancel=False)
    failed = tracker.failures()
    if failed:
        raise RunError(f"{len(failed)} of {len(jobs)} jobs failed ({failed[0][0].label}: {failed[0][1]}"
                       + (", and more above" if len(failed) > 1 else "") + ")",
                       f"see each job's log in {jobs[0].out / LAUNCH_DIR}, then rerun the same command to resume: "
                       f"{rerun}")
    unfinished = sorted({str(job.run_dir) for job in jobs if not is_complete(job.run_dir)})
    if unfinished:
        raise RunError(f"every job ended, but {unfinished[0]} is not complete" + (
            f" (and {len(unfinished) - 1} more runs)" if len(unfinished) > 1 else ""),
            f"rerun the same command to finish it: {rerun}")
