"""``culbench tasks``: check task files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from culbench.cli.console import console

EXAMPLES = """Examples:

  culbench tasks validate

  culbench tasks validate tasks/toy10/sequence.yaml
"""

app = typer.Typer(help="Work with task files (sequences, concepts, prompts).", no_args_is_help=True)


@app.command("validate", epilog=EXAMPLES)
def validate(
    paths: Annotated[list[Path] | None, typer.Argument(help="sequence.yaml files or folders (default: all built-in).")] = None,
) -> None:
    """Load and validate sequences with their concepts and prompts; first error stops with file:line."""
    from culbench.catalog import SEQUENCES
    from culbench.tasks import load_sequence

    files = []
    for path in paths or [Path(e.target) for e in SEQUENCES.entries()]:
        files.extend(sorted(path.rglob("sequence.yaml")) if path.is_dir() else [path])
    for file in files:
        sequence = load_sequence(file)
        console.print(
            f"ok  {sequence.id}  {len(sequence.steps)} steps, {len(sequence.roles)} evaluated "
            f"concepts  ({file})", highlight=False, soft_wrap=True,
        )
