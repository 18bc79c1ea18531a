"""Whole-run wall time per method, from the run manifests (issues: a whole toy10 run ≤ 5 min on
2 cores for dfr and every baseline; uce ≤ 1 min).

    python benchmarks/run_wall.py benchmarks/results/dfr_ablations leaderboard/results
    python benchmarks/run_wall.py leaderboard/results --phases   # a whole board's cost by phase

For every complete run under the given roots: wall seconds from the manifest's ``created`` to
its last ``updated`` (1 s resolution; excludes the ~5 s of interpreter start-up and imports
before the manifest is written), the sum of the methods' ``unlearn`` seconds, the sum of the
evaluations' seconds, whether step 0's evaluation came from the cache, and the rest (loading,
writing, the summary). One row per method and config, median (min–max) over seeds. Runs that
shared the machine with other work are not comparable: measure on a quiet machine.

``--phases`` sums every run under the roots (complete or not) into a board's cost by phase, in
hours: the ranked and reference methods' requests, the oracle's (``role = "oracle"``: its shared
prior and chain links count in the step that trained them, but only the time of the process that
finished them: one resumed across processes from the shared store undercounts), the evaluations
(cached ones are free) and the robustness probes (each record's own seconds).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path


def _seconds(manifest: dict) -> tuple[float, float, float, bool]:
    wall = (datetime.fromisoformat(manifest["updated"]) - datetime.fromisoformat(manifest["created"])).total_seconds()
    compute = manifest["compute"].values()
    unlearn = sum(c.get("unlearn", {}).get("seconds", 0.0) for c in compute)
    evaluate = sum(c["eval"]["seconds"] for c in compute if "eval" in c and not c["eval"].get("cached"))
    cached = bool(manifest["compute"].get("0", {}).get("eval", {}).get("cached"))
    return wall, unlearn, evaluate, cached


def _manifests(roots: list[Path]) -> Iterator[tuple[Path, Path, dict]]:
    """``(root, manifest path, manifest)`` of every run folder under ``roots`` (caches skipped)."""
    for root in roots:
        for path in sorted(root.rglob("manifest.json")):
            if ".cache" not in path.parts:
                yield root, path, json.loads(path.read_text(encoding="utf-8"))


def phase_hours(roots: list[Path]) -> dict[str, float]:
    """Hours by phase (``methods``, ``oracle``, ``evaluation``, ``probes``) over every run under ``roots``."""
    from culbench import runfolder as rf
    from culbench.catalog import method_role

    hours = dict.fromkeys(("methods", "oracle", "evaluation", "probes"), 0.0)
    for _, path, manifest in _manifests(roots):
        _, unlearn, evaluate, _ = _seconds(manifest)
        oracle = method_role(manifest["identity"]["method"]["name"].split("+")[0]) == "oracle"
        hours["oracle" if oracle else "methods"] += unlearn / 3600
        hours["evaluation"] += evaluate / 3600
        hours["probes"] += sum(r.get("seconds", 0.0) for r in rf.probe_records(path.parent).values()) / 3600
    return hours


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("roots", nargs="+", type=Path)
    parser.add_argument("--phases", action="store_true", help="a whole board's cost by phase, in hours")
    args = parser.parse_args()
    if args.phases:
        hours = phase_hours(args.roots)
        print(" | ".join(f"{k} {v:.2f} h" for k, v in hours.items()) + f" | total {sum(hours.values()):.2f} h")
        return
    rows: dict[str, list[tuple[float, float, float, bool]]] = defaultdict(list)
    for root, path, manifest in _manifests(args.roots):
        if manifest.get("status") == "complete":
            label = str(path.parent.parent.relative_to(root))  # sequence/method[+hash][~mode]/profile
            rows[label].append(_seconds(manifest))
    print(f"{'run (sequence/method/profile)':<48} {'n':>2} {'wall s':>16} {'unlearn s':>10} {'eval s':>8} "
          f"{'other s':>8}  step 0")
    for label, runs in sorted(rows.items()):
        walls = [r[0] for r in runs]
        unlearn, evaluate = (statistics.median(r[i] for r in runs) for i in (1, 2))
        other = statistics.median(r[0] - r[1] - r[2] for r in runs)
        cached = sum(r[3] for r in runs)
        wall = f"{statistics.median(walls):.0f} ({min(walls):.0f}-{max(walls):.0f})"
        print(f"{label:<48} {len(runs):>2} {wall:>16} {unlearn:>10.1f} {evaluate:>8.1f} {other:>8.1f}  "
              f"{cached}/{len(runs)} cached")


if __name__ == "__main__":
    main()
