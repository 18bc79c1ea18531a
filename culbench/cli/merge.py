"""``culbench merge``: runs computed on another machine, brought into this results root."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from culbench.cli.console import console

EXAMPLES = """Examples:

  culbench merge /tmp/gpu-records leaderboard/in-progress   # steps a lent GPU machine computed

  culbench merge node17/results results                     # a node's own results root
"""


def merge(
    src: Annotated[Path, typer.Argument(help="A results root from elsewhere (what --out was there).")],
    dst: Annotated[Path, typer.Argument(help="This machine's results root.")],
) -> None:
    """Copy into the runs under DST the committed steps they lack from the same runs under SRC (a
    run at the same path under both; one that DST lacks is copied whole), then bring DST's derived
    files (manifest, matrix, summary) up to date. For results roots that share no disk: with a
    shared one, jobs write into one root and nothing needs merging."""
    from culbench.errors import ConfigError
    from culbench.runfolder import DAMAGED, MANIFEST
    from culbench.runner import merge_run

    runs = [m.parent for m in sorted(src.rglob(MANIFEST)) if not {".cache", DAMAGED} & set(m.relative_to(src).parts)]
    if not runs:
        raise ConfigError(f"no runs under {src}", "pass the results root the runs were computed into (their --out)")
    for run in runs:
        name = run.relative_to(src)
        new = merge_run(run, dst / name)
        console.print(f"{name}: {'steps ' + ', '.join(map(str, new)) if new else 'nothing new'}", highlight=False,
                      soft_wrap=True)
