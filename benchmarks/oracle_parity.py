"""Parity of an oracle run with the base model: at each committed step, every concept not yet
forgotten should be drawn about as the base model (step 0) draws it, and every forgotten one not at all.

    python benchmarks/oracle_parity.py RUN_DIR [RUN_DIR ...] [--floor 0.90] [--base BASE_RUN_DIR]

Per step it prints the largest presence among the concepts forgotten by then, every kept concept
under ``--floor`` (with the base model's presence beside it) and a verdict: ``yes`` when no kept
concept is under the floor (or under the base model's own presence, where that is lower);
``within noise`` when each one under it has a 95 % interval (the step record's, over its images)
that reaches it; ``no`` otherwise. Works on
runs with gaps (``culbench run --step K``); the base model's presence comes from the run's own step
0 or, where that was never computed, from ``--base`` (any run of the same sequence, profile and seed:
step 0 is the same evaluation for every method). Reads the step records only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from culbench import runfolder as rf
from culbench.tasks import resolve_sequence


def parity_rows(run_dir: Path, floor: float, base_run: Path | None = None) -> list[tuple[int, float, list[str], str]]:
    """``(step, max forgotten presence, kept concepts under the floor, verdict)`` per committed step."""
    identity = rf.read_manifest(run_dir)["identity"]
    order = identity.get("order") or resolve_sequence(identity["sequence"]["id"]).steps  # one-order sequences
    steps = [k for k in range(1, len(order) + 1) if rf.computed(run_dir, k)]
    base_run = run_dir if rf.computed(run_dir, 0) else base_run
    if base_run is None or not rf.computed(base_run, 0):
        raise SystemExit(f"{run_dir}: no step 0 (the base model) to compare with; "
                         "pass --base with a run of the same sequence, profile and seed")
    base = {c: cell["presence"] for c, cell in rf.read_step(base_run, 0)["cells"].items()}
    rows = []
    for k in steps:
        cells = rf.read_step(run_dir, k)["cells"]
        gone = set(order[:k])
        forgotten = max((cells[c]["presence"] for c in gone if c in cells), default=0.0)
        under = [c for c in sorted(cells) if c not in gone and cells[c]["presence"] < min(floor, base[c])]
        short = [f"{c} {cells[c]['presence']:.3f} (base {base[c]:.3f})" for c in under]
        noise = all(cells[c]["ci_high"] >= min(floor, base[c]) for c in under)
        rows.append((k, forgotten, short, "yes" if not under else "within noise" if noise else "no"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--floor", type=float, default=0.90, help="presence a kept concept must reach (default 0.90)")
    parser.add_argument("--base", type=Path, help="a run whose step 0 is the base model evaluation (default: RUN_DIR)")
    args = parser.parse_args()
    for run_dir in args.runs:
        print(f"{run_dir}\n| step | forgotten: max presence | kept concepts under {args.floor:.2f} | parity |")
        print("|---|---|---|---|")
        for k, forgotten, short, ok in parity_rows(run_dir, args.floor, args.base):
            print(f"| {k} | {forgotten:.3f} | {', '.join(short) or '—'} | {ok} |")


if __name__ == "__main__":
    main()
