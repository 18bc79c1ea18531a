"""Compute a from-scratch method's runs (``retrain``) step by step in parallel processes.

Each step of such a method is independent of the others (``culbench run --step K``), so a machine
with many cores, or one GPU shared by many processes, computes a seed's ten requests at once
instead of one after another. Jobs are (seed, step) pairs, taken in order (all of seed 0 first)
by ``--workers`` processes; a job still running at ``--deadline`` is stopped and leaves nothing
committed (its snapshot stays for the next call on the same machine). Rerunning skips the steps
already committed. One log per job under ``--logs``; a summary line per job on stdout.

    python leaderboard/fanout.py --out /tmp/fan --seeds 0 1 2 --workers 16 --device cuda --deadline 500
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path


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
    parser.add_argument("--logs", type=Path, default=None, help="per-job logs (default: OUT/../fanout-logs)")
    parser.add_argument("--culbench", default=shutil.which("culbench") or "culbench",
                        help='the command, e.g. "python3 -m culbench"')
    args = parser.parse_args(argv)

    logs = args.logs or args.out.parent / "fanout-logs"
    logs.mkdir(parents=True, exist_ok=True)
    queue = [(seed, step) for seed in args.seeds for step in args.steps]
    end = None if args.deadline is None else time.monotonic() + args.deadline
    start = time.monotonic()
    running: dict[tuple[int, int], tuple[subprocess.Popen[bytes], float]] = {}
    failed = 0

    def launch(seed: int, step: int) -> None:
        command = [*shlex.split(args.culbench), "run", "--method", args.method, "--profile", args.profile,
                   "--seed", str(seed), "--step", str(step), "--out", str(args.out),
                   "--device", args.device, "--threads", str(args.threads)]
        log = (logs / f"seed{seed}-step{step:02d}.log").open("wb")
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        running[(seed, step)] = (proc, time.monotonic())

    while queue or running:
        while queue and len(running) < args.workers:
            launch(*queue.pop(0))
        time.sleep(1)
        for job, (proc, began) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[job]
            failed += proc.returncode != 0
            print(f"seed {job[0]} step {job[1]}: rc {proc.returncode} after {time.monotonic() - began:.0f} s "
                  f"(at {time.monotonic() - start:.0f} s)", flush=True)
        if end is not None and time.monotonic() > end:
            for job, (proc, began) in running.items():
                os.killpg(proc.pid, signal.SIGTERM)
                print(f"seed {job[0]} step {job[1]}: stopped at the deadline after "
                      f"{time.monotonic() - began:.0f} s", flush=True)
            for proc, _ in running.values():
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
            print(f"deadline: {len(queue)} jobs not started", flush=True)
            return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
