"""Compute a from-scratch method's runs (``retrain``) step by step in parallel processes.

Each step of such a method is independent of the others (``culbench run --step K``), so a machine
with many cores, or one GPU shared by many processes, computes a seed's ten requests at once
instead of one after another. Jobs are (seed, step) pairs, taken in order (all of the first seed
first) by ``--workers`` processes; rerunning skips the steps already committed. One log per job
under ``--logs``; a line per job on stdout.

With ``--deadline`` (a lent machine that goes away), work that cannot finish in time is not
started or is stopped early, so that what runs shares the machine with fewer jobs and commits:
every ``--triage-every`` seconds the jobs' progress lines (``1234/10000``) give each one's rate;
if the steps they have left exceed what the whole machine does (the sum of the rates) before the
deadline, the jobs furthest from done are stopped until the rest fit. A job that is stopped, or
still running at the deadline, commits nothing (its snapshot stays, for a rerun on that machine).

    python tools/fanout.py --out /tmp/fan --seeds 0 1 2 --workers 8 --device cuda --deadline 500
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

BAR = re.compile(rb"(\d+)/(\d+) +\d+%")  # a progress bar's count; the last on a line is the innermost


@dataclass
class Job:
    seed: int
    step: int
    proc: subprocess.Popen[bytes]
    log: Path
    began: float
    seen: list[tuple[float, int, int]] = field(default_factory=list)  # (time, done, total)

    def name(self) -> str:
        return f"seed {self.seed} step {self.step}"

    def sample(self, now: float) -> None:
        with self.log.open("rb") as handle:
            handle.seek(max(0, self.log.stat().st_size - 4096))
            lines = [line for line in handle.read().splitlines() if BAR.search(line)]
        if lines:
            done, total = map(int, BAR.findall(lines[-1])[-1])
            if total > 1 and (not self.seen or done != self.seen[-1][1]):
                self.seen.append((now, done, total))

    def rate(self, window: float) -> float | None:
        """Steps a second over about the last ``window`` seconds of progress lines."""
        if len(self.seen) < 2:
            return None
        t1, d1, _ = self.seen[-1]
        t0, d0, _ = next(((t, d, n) for t, d, n in reversed(self.seen) if t1 - t >= window), self.seen[0])
        return (d1 - d0) / (t1 - t0) if t1 > t0 else None

    def left(self) -> int | None:
        return self.seen[-1][2] - self.seen[-1][1] if self.seen else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="retrain")
    parser.add_argument("--profile", default="standard")
    parser.add_argument("--out", type=Path, required=True, help="results root shared by every job")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, nargs="+", default=list(range(11)), help="0 = the base model")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per job")
    parser.add_argument("--deadline", type=float, default=None, help="seconds from now; then stop every job")
    parser.add_argument("--triage-every", type=float, default=30.0, help="seconds between progress checks")
    parser.add_argument("--tail", type=float, default=45.0,
                        help="seconds a job needs after its last training step (evaluation, commit)")
    parser.add_argument("--logs", type=Path, default=None, help="per-job logs (default: OUT/../fanout-logs)")
    parser.add_argument("--culbench", default=shutil.which("culbench") or "culbench",
                        help='the command, e.g. "python3 -m culbench"')
    args = parser.parse_args(argv)

    logs = args.logs or args.out.parent / "fanout-logs"
    logs.mkdir(parents=True, exist_ok=True)
    queue = [(seed, step) for seed in args.seeds for step in args.steps]
    start = time.monotonic()
    end = None if args.deadline is None else start + args.deadline
    running: list[Job] = []
    failed = 0
    next_triage = start + args.triage_every
    known: dict[str, float] = {}  # the machine's last measured rate, a job's steps and warm-up

    def measure() -> list[tuple[Job, float]]:
        measured = [(job, rate) for job in running if (rate := job.rate(60.0))]
        if measured:
            known.update(rate=sum(rate for _, rate in measured),
                         steps=max([known.get("steps", 0)] + [job.seen[-1][2] for job, _ in measured]),
                         warmup=max(job.seen[0][0] - job.began for job, _ in measured))
        return measured

    def say(message: str) -> None:
        print(f"[{time.monotonic() - start:4.0f} s] {message}", flush=True)  # noqa: T201

    def stop(job: Job, why: str) -> None:
        os.killpg(job.proc.pid, signal.SIGTERM)
        try:
            job.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(job.proc.pid, signal.SIGKILL)
        running.remove(job)
        say(f"{job.name()}: stopped {why} after {time.monotonic() - job.began:.0f} s "
            f"({job.seen[-1][1] if job.seen else 0} steps done)")

    def launch(seed: int, step: int) -> None:
        command = [*shlex.split(args.culbench), "run", "--method", args.method, "--profile", args.profile,
                   "--seed", str(seed), "--step", str(step), "--out", str(args.out),
                   "--device", args.device, "--threads", str(args.threads)]
        log = logs / f"seed{seed}-step{step:02d}.log"
        with log.open("wb") as handle:
            proc = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        running.append(Job(seed, step, proc, log, time.monotonic()))

    def can_finish(step: int, now: float) -> bool:
        """Could a new job still commit before the deadline, sharing the machine with the others?"""
        if end is None or step == 0:  # step 0 only evaluates the base model
            return end is None or end - now > args.tail
        measure()
        if not known:
            return True  # nothing measured yet: the first jobs
        return known["warmup"] + known["steps"] * (len(running) + 1) / known["rate"] + args.tail < end - now

    def triage(now: float) -> None:
        measured = measure()
        if end is None or not measured:
            return
        budget = sum(rate for _, rate in measured) * (end - now - args.tail)  # steps the machine still does
        kept = 0
        for job, _ in sorted(measured, key=lambda pair: pair[0].left() or 0):
            kept += job.left() or 0
            if kept > budget:
                stop(job, f"early: {job.left()} steps left will not fit before the deadline")

    while queue or running:
        now = time.monotonic()
        while queue and len(running) < args.workers:
            seed, step = queue[0]
            if not can_finish(step, now):
                say(f"deadline: {len(queue)} jobs not started (none could finish in time)")
                queue.clear()
                break
            launch(*queue.pop(0))
        time.sleep(1)
        now = time.monotonic()
        for job in list(running):
            job.sample(now)
            if job.proc.poll() is None:
                continue
            running.remove(job)
            failed += job.proc.returncode != 0
            say(f"{job.name()}: rc {job.proc.returncode} after {now - job.began:.0f} s")
        if now >= next_triage:
            triage(now)
            next_triage = now + args.triage_every
        if end is not None and now > end:
            for job in list(running):
                stop(job, "at the deadline")
            say(f"deadline: {len(queue)} jobs not started")
            return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
