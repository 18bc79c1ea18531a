"""The ``local`` launcher: every run in this process, one after another, with progress bars (or
a progress line a minute off a terminal); a failing run stops the sweep with its one-line error."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from culbench.spec import RunSpec


def run_local(specs: list[RunSpec], console: Console) -> list[Path]:
    """Run (or resume, or skip when complete) each of ``specs`` in turn; their run folders."""
    from culbench.cli.progress import open_progress
    from culbench.runfolder import variant_label
    from culbench.runner import Hooks, run_spec

    run_dirs = []
    for i, spec in enumerate(specs, 1):
        label = variant_label(spec.method, spec.mode)
        console.print(f"[{i}/{len(specs)}] {label} seed {spec.seed} {' '.join(spec.overrides)}", highlight=False)
        with open_progress(console) as (progress, log):  # bars, or a line a minute in a log file
            run_dirs.append(run_spec(spec, Hooks(progress, lambda msg, log=log: log(f"  {msg}"))))
    return run_dirs
