"""``culbench tune``: the same tuning budget for every method, on validation prompts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from culbench.cli.console import console, err_console
from culbench.spec import DEFAULT_PROFILE, RunSpec

EXAMPLES = """Examples:

  culbench tune --method dfr                       # 8 configurations on toy10's validation split

  culbench tune --method uce --sequence toy10 --out tuning --threads 2
"""


def tune(
    method: Annotated[str, typer.Option(help="The method to tune (its class declares tune_grid).")],
    sequence: Annotated[str, typer.Option(help="Sequence (default: toy10).")] = "",
    profile: Annotated[str, typer.Option(help="smoke | standard | standard-6x6 | full (culbench ls profiles).")] = DEFAULT_PROFILE,
    out: Annotated[Path, typer.Option(help="Results root for the tuning runs and tune.json.")] = Path("tuning"),
    budget: Annotated[int, typer.Option(help="Configurations to try (the board's rows all use the default, 8).")] = 0,
    device: Annotated[str, typer.Option(help="torch device.")] = "cpu",
    threads: Annotated[int | None, typer.Option(help="torch CPU threads (default: all cores).")] = None,
    index: Annotated[Path | None, typer.Option(help="Also note the budget in INDEX/<sequence>.json, where "
                                                     "the leaderboard reads it (e.g. leaderboard/tuning).")] = None,
) -> None:
    """Try the method's defaults and budget - 1 points of its declared grid on the validation split
    (seed 0; completed runs are skipped, interrupted ones resume), pick by the declared rule, and
    record what was tried in OUT/<sequence>/<method>/tune.json. The rule reads the final step's H,
    so each run evaluates only steps 0 and T (--evaluate ends)."""
    from culbench import tuning
    from culbench.catalog import METHODS
    from culbench.cli.progress import open_progress
    from culbench.cli.sweep import settings_table
    from culbench.leaderboard import final_value
    from culbench.runner import DEFAULT_SEQUENCE, Hooks, run_spec

    size = budget or tuning.BUDGET
    tries = tuning.candidates(method, METHODS.get(method), size)
    specs = [_evaluated_where_begun(RunSpec(method, sequence=sequence or DEFAULT_SEQUENCE, seed=0, profile=profile,
                                            out=out, overrides=o, device=device, threads=threads, split="val",
                                            evaluate="ends")) for o in tries]
    resolved = [spec.resolve() for spec in specs]  # every option checked before anything runs
    dirs, scores = {}, []
    for i, spec in enumerate(specs, 1):
        err_console.print(f"[{i}/{len(specs)}] {method} {' '.join(spec.overrides) or '(defaults)'}", highlight=False)
        with open_progress(err_console) as (progress, log):
            run_dir = run_spec(spec, Hooks(progress, lambda msg, log=log: log(f"  {msg}")))
        dirs[(method, spec.overrides)] = [run_dir]
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
        scores.append(final_value(summary, "headline_h")[0])
    chosen = tuning.pick(scores)
    seq = resolved[0].seq
    path = tuning.record(out / seq.id / method, {
        "method": method, "sequence": seq.id, "profile": profile, "seed": 0, "split": "val",
        "order": list(seq.steps), "candidates": [
            {"overrides": list(o), "headline_h": s, "run": str(d[0])}
            for o, s, d in zip(tries, scores, dirs.values(), strict=True)],
        "chosen": chosen})
    if index is not None:
        tuning.note_budget(index, seq.id, method, len(tries), path)
    for line in settings_table(dirs):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    console.print(f"chosen: {' '.join(tries[chosen]) or '(defaults)'}  (rule: {tuning.RULE}); wrote {path}",
                  highlight=False, soft_wrap=True)


def _evaluated_where_begun(spec: RunSpec) -> RunSpec:
    """``spec``, or the same run evaluating every step when such a run was begun already (its final
    step's evaluation is the same as an ``ends`` run's, so finishing it loses nothing)."""
    import dataclasses

    from culbench.runfolder import MANIFEST

    every = dataclasses.replace(spec, evaluate="all")
    return every if (every.resolve().run_dir / MANIFEST).exists() else spec
