"""``culbench validate``: check a run folder's schema, hashes and completeness; ``culbench migrate``:
upgrade run folders written by an earlier culbench."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from culbench.cli.console import console
from culbench.errors import RunError

EXAMPLES = """Examples:

  culbench validate results/toy10@1/original/smoke/seed0

  culbench validate --allow-partial results/toy10@1/original/smoke/seed0
"""

MIGRATE_EXAMPLES = """Examples:

  culbench migrate results                      # every run folder below results/

  culbench migrate leaderboard/results/toy10@1/dfr/standard/seed0
"""


def validate(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (holds manifest.json).")],
    allow_partial: Annotated[bool, typer.Option(help="Accept a run that has not finished.")] = False,
) -> None:
    """Check schema, file hashes, per-cell image counts, matrix and summary of a run."""
    from culbench.runfolder import records_only
    from culbench.validate import validate_run

    problems = validate_run(run_dir, require_complete=not allow_partial)
    if problems:
        fix = "rerun the same `culbench run` command: it redoes damaged steps (kept in damaged/) and rebuilds derived files"
        if any("summary.json differs" in p for p in problems):
            fix = f"delete {run_dir / 'summary.json'} and {fix[0].lower()}{fix[1:]}"
        raise RunError(f"{run_dir} is invalid: {'; '.join(problems)}", fix)
    note = (" (records only — weights, per-image records and features are not kept, so file hashes and the "
            "summary's intervals were not recomputed)") if records_only(run_dir) else ""
    console.print(f"ok  {run_dir}{note}", highlight=False, soft_wrap=True)


def migrate(
    paths: Annotated[list[Path], typer.Argument(help="Run folders, or folders holding run folders.")],
) -> None:
    """Upgrade run folders written by an earlier culbench to this one's layout (numbers unchanged)."""
    from culbench.runfolder.migrate import migrate as upgrade
    from culbench.runfolder.migrate import run_folders

    for root in paths:
        if not root.is_dir():
            raise RunError(f"{root} is not a folder", "give a run folder or a results root")
        for run_dir in run_folders(root):
            old = upgrade(run_dir)
            note = f"schema {old} -> {_schema()}" if old is not None else "current"
            console.print(f"{note:>16}  {run_dir}", highlight=False, soft_wrap=True)


def _schema() -> int:
    from culbench.runfolder import SCHEMA_VERSION

    return SCHEMA_VERSION
