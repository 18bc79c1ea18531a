"""``culbench new-method`` and ``culbench submit``: the method submission flow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from culbench.cli.console import console

EXAMPLES = """Examples:

  culbench new-method my_method                 # writes ./culbench-my-method (a pip-installable plugin)

  culbench submit results/toy10@1/my_method/standard/seed0 results/toy10@1/my_method/standard/seed1 \\
      results/toy10@1/my_method/standard/seed2 --out leaderboard/submissions/my_method
"""


def new_method(
    name: Annotated[str, typer.Argument(help="Method name (lowercase, digits, _).")],
    out: Annotated[Path, typer.Option(help="Parent folder of the new package.")] = Path("."),
) -> None:
    """Scaffold a plugin package: a working method with its Config and docstring template,
    the entry point, and a test that runs the contract suite."""
    from culbench.scaffold import scaffold

    root = scaffold(name, out)
    console.print(f"wrote {root}\nnext:  pip install -e {root}  &&  culbench check-method {name}",
                  highlight=False, soft_wrap=True)


def submit(
    runs: Annotated[list[Path], typer.Argument(help="Complete run directories of one method configuration (one per seed).")],
    out: Annotated[Path, typer.Option(help="Empty folder for the bundle, e.g. leaderboard/submissions/NAME.")],
    grid: Annotated[bool, typer.Option(help="Include a sample grid (base vs final model).")] = True,
) -> None:
    """Validate runs (complete, hashes, one config, pinned evaluators) and write a bundle
    for a pull request into leaderboard/submissions/."""
    from culbench.submit import bundle

    folder = bundle(runs, out, grid=grid)
    console.print(f"wrote {folder} — open a pull request adding it to leaderboard/submissions/ "
                  f"and tick the checklist in {folder / 'SUBMISSION.md'}", highlight=False, soft_wrap=True)
