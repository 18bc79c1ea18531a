"""``culbench tasks``: check task files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from culbench.cli.console import console

EXAMPLES = """Examples:

  culbench tasks validate

  culbench tasks validate tasks/toy10/sequence.yaml

  culbench tasks validate tasks/toy10 --leaks    # every prompt that names a concept forgotten by then

  culbench tasks export toy10@2 --out export/    # prompts as parquet (split,concept,role,prompt,mapped)
"""

app = typer.Typer(help="Work with task files (sequences, concepts, prompts).", no_args_is_help=True)


@app.command("validate", epilog=EXAMPLES)
def validate(
    paths: Annotated[list[Path] | None, typer.Argument(help="sequence.yaml files or folders (default: all built-in).")] = None,
    leaks: Annotated[bool, typer.Option("--leaks", help="List every prompt handed to methods that names a held-out concept or one forgotten by then.")] = False,
) -> None:
    """Load and validate sequences with their concepts and prompts; first error stops with file:line.
    Also counts the prompts handed to methods (forget, mapped, retain, replayed) that name a
    held-out concept or one forgotten by their step, in every deletion order (an error for a
    sequence that declares clean_prompts: true)."""
    from culbench.catalog import SEQUENCES
    from culbench.leaks import find_leaks, given_prompts
    from culbench.tasks import load_sequence

    files = []
    for path in paths or [Path(e.target) for e in SEQUENCES.entries()]:
        files.extend(sorted(path.rglob("sequence.yaml")) if path.is_dir() else [path])
    for file in files:
        sequence = load_sequence(file)
        console.print(
            f"ok  {sequence.id}  {len(sequence.steps)} steps, {len(sequence.orders)} order(s), "
            f"{len(sequence.roles)} evaluated concepts ({len(sequence.held_out_concepts)} held out)  ({file})",
            highlight=False, soft_wrap=True,
        )
        found = find_leaks(sequence)
        if found:
            kinds = sorted({leak.kind for leak in found})
            console.print(f"    {len(found)} prompts handed to methods ({given_prompts(sequence)} per order) name a "
                          f"held-out concept or one forgotten by then ({', '.join(kinds)}), e.g. {found[0].line()}",
                          highlight=False, soft_wrap=True)
        for leak in found if leaks else []:
            console.print(f"    {leak.line()}", highlight=False, markup=False, soft_wrap=True)


@app.command("export", epilog=EXAMPLES)
def export(
    sequence: Annotated[str, typer.Argument(help="Sequence name, name@version or sequence.yaml path.")],
    out: Annotated[Path, typer.Option(help="Folder to write <name>@<version>.prompts.parquet into.")] = Path("export"),
) -> None:
    """Write a sequence's prompts as one parquet file (sequence, split, concept, role, prompt,
    mapped), loadable with datasets.load_dataset("parquet", data_files=...)."""
    from culbench.leaderboard.export import export_prompts
    from culbench.tasks import resolve_sequence

    console.print(f"wrote {export_prompts(resolve_sequence(sequence), out)}", highlight=False)
