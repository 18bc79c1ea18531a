"""What the robustness probes cost on one final checkpoint (the issue's target: all probes ≤ 60 s
on 2 cores), each probe timed alone, with its default budget, medians over repeats.

    python benchmarks/probe_cost.py RUN [--step 10] [--threads 2] [--repeats 3] [--json out.json]

RUN is a run folder whose step keeps its weights (``culbench run`` keeps them; published runs do
not). It is copied to a temporary folder, so RUN's own probe records are left alone; every repeat
starts from a copy without records, so nothing is skipped. Time it on a quiet machine: beside
another CPU job the numbers mean nothing.
"""

# ruff: noqa: T201  (a benchmark prints its table)
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch


def time_probe(run: Path, probe: str, step: int | None, repeats: int) -> list[float]:
    from culbench.probes import run_probes

    seconds = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(shutil.copytree(run, Path(tmp) / "run", ignore=shutil.ignore_patterns("probes")))
            start = time.perf_counter()
            run_probes(copy, [probe], [step])
            seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    from culbench.catalog import PROBES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--step", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--probes", default=",".join(PROBES.names()))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = {}
    for probe in args.probes.split(","):
        seconds = time_probe(args.run, probe, args.step, args.repeats)
        rows[probe] = {"median_s": round(statistics.median(seconds), 2), "all_s": [round(s, 2) for s in seconds]}
        print(f"{probe:12s} median {rows[probe]['median_s']:7.2f} s  ({', '.join(map(str, rows[probe]['all_s']))})")
    robustness = sum(r["median_s"] for p, r in rows.items() if p != "agreement")
    print(f"robustness probes together (paraphrase, attack, relearn): {robustness:.1f} s at {args.threads} threads")
    if args.json:
        args.json.write_text(json.dumps({"run": str(args.run), "threads": args.threads, "probes": rows,
                                         "robustness_s": round(robustness, 2)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
