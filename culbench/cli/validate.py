"""``culbench validate``: check a run directory's schema, hashes and completeness."""

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


def validate(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (holds manifest.json).")],
    allow_partial: Annotated[bool, typer.Option(help="Accept a run that has not finished.")] = False,
) -> None:
    """Check schema, file hashes, per-cell image counts, matrix and summary of a run."""
    from culbench.results import records_only
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
