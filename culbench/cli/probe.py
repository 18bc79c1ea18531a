"""``culbench probe``: robustness probes on a run's checkpoints (does a forgotten concept come back?)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from culbench.cli.console import console, err_console

EXAMPLES = """Examples:

  culbench probe results/toy10@2/dfr/standard/seed0                   # every probe, final step

  culbench probe results/toy10@2 --probe paraphrase --step 5 --step 10  # every run under a root

  culbench probe RUN --probe paraphrase --set paraphrase.prompts=12
"""


def run_folders(paths: list[Path]) -> list[Path]:
    """Run folders named, or found under results roots (``manifest.json``), in a stable order."""
    from culbench.errors import RunError

    found: list[Path] = []
    for path in paths:
        if (path / "manifest.json").is_file():
            found.append(path)
        elif path.is_dir():
            found += sorted(p.parent for p in path.rglob("manifest.json") if "damaged" not in p.parts)
        else:
            raise RunError(f"{path} is neither a run folder nor a results root", "pass an existing folder")
    if not found:
        raise RunError(f"no run folders under {', '.join(map(str, paths))}", "pass a run folder or results root")
    return found


def probe(
    runs: Annotated[list[Path], typer.Argument(help="Run folders, or results roots to search for them.")],
    probe_: Annotated[list[str] | None, typer.Option("--probe", help="Probe to run (repeatable; default: "
                                                                     "all, see `culbench ls probes`).")] = None,
    step: Annotated[list[int] | None, typer.Option("--step", help="Checkpoint (repeatable; default: "
                                                                  "the final step).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Probe config PROBE.key=value.")] = None,
    judge_option: Annotated[list[str] | None, typer.Option(help="Judge option KEY=VALUE the run was made "
                                                                 "with (`culbench run --judge-option`).")] = None,
    device: Annotated[str, typer.Option(help="torch device.")] = "cpu",
    threads: Annotated[int | None, typer.Option(help="torch CPU threads (default: all cores).")] = None,
) -> None:
    """Run robustness probes on checkpoints of runs and record them in each run folder
    (probes/<probe>/KK.json); probes already recorded for the same checkpoint and settings are
    skipped, so rerunning after an interruption finishes the rest."""
    import os

    import torch

    from culbench.catalog import PROBES
    from culbench.cli.progress import open_progress
    from culbench.cli.run import _model_options
    from culbench.probes import build_probe, run_probes

    names = list(probe_ or PROBES.names())
    for name in names:
        build_probe(name, set_ or ())  # unknown probes and keys fail before any work
    torch.set_num_threads(threads or max(1, os.cpu_count() or 1))
    for run_dir in run_folders(runs):
        err_console.print(f"{run_dir}", highlight=False)
        with open_progress(err_console) as (progress, log):
            records = run_probes(run_dir, names, list(step or [None]), overrides=set_ or (), device=device,
                                 judge_options=_model_options(None, judge_option), applicable_only=not probe_,
                                 progress=progress, log=lambda m, log=log: log(f"  {m}"))
        for record in records:
            name = record["fingerprint"]["probe"]
            summary = ", ".join(f"{k} {v}" for k, v in record["result"].get("summary", {}).items())
            console.print(f"  {name} step {record['step']}: {summary} ({record['seconds']} s)",
                          highlight=False, soft_wrap=True)
