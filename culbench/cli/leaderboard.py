"""``culbench leaderboard``: build the comparative tables from result files."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from culbench.cli.console import console

EXAMPLES = """Examples:

  culbench leaderboard build                                   # leaderboard/results + leaderboard/submissions

  culbench leaderboard build results/ --format html --out board.html

  culbench leaderboard build results/ --format latex

  culbench leaderboard build results/ --allow-partial           # include unfinished runs, marked

  culbench leaderboard export results/ --out export/             # parquet dataset (presence, runs)
"""

app = typer.Typer(help="Comparative leaderboard tables from result files.", no_args_is_help=True)
DEFAULT_SOURCES = (Path("leaderboard/results"), Path("leaderboard/submissions"))


@app.command("build", epilog=EXAMPLES)
def build(
    runs: Annotated[list[Path] | None, typer.Argument(help="Results roots or run directories (default: leaderboard/results and leaderboard/submissions).")] = None,
    format_: Annotated[str, typer.Option("--format", help="md | csv | json | latex | html.")] = "md",
    out: Annotated[Path | None, typer.Option(help="Write here instead of printing.")] = None,
    plots: Annotated[bool, typer.Option(help="Inline the plots (html only).")] = True,
    samples: Annotated[bool, typer.Option(help="Draw sample image grids from the runs' final weights "
                                               "(html only; cached in <out>.samples/ beside --out).")] = True,
    allow_partial: Annotated[bool, typer.Option(help="Show unfinished runs at their last committed step, marked 'partial k/N', unranked.")] = False,
) -> None:
    """One table per sequence@version × profile: mean ± 95 % interval per method, tie-aware ranks,
    best value per column marked, verified vs self-reported."""
    from culbench.errors import CulbenchError
    from culbench.leaderboard import FORMATS, build as build_tables, render, render_html

    if format_ not in (*FORMATS, "html"):
        raise CulbenchError(f"unknown format '{format_}'", f"use one of: {', '.join(FORMATS)}, html")
    sources = list(runs or [p for p in DEFAULT_SOURCES if p.exists()])
    if not sources:
        raise CulbenchError("no result folders given and no leaderboard/results here",
                            "pass results roots, e.g. `culbench leaderboard build results/`")
    tables = build_tables(sources, allow_partial=allow_partial)
    if format_ == "html":
        cache = out.with_name(f"{out.stem}.samples") if out is not None else None  # rebuilding draws only what is new
        text = render_html(tables, plots=plots, samples=samples, cache=cache)
    else:
        text = render(tables, format_)
    if out is None:  # byte for byte what --out writes (and what `publish` commits)
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {out} ({len(tables)} table(s))", highlight=False)


@app.command("publish")
def publish(
    root: Annotated[Path, typer.Option(help="Repository root (holds leaderboard/ and README.md).")] = Path("."),
    check: Annotated[bool, typer.Option(help="Change nothing; exit 1 if a committed table is stale.")] = False,
    html: Annotated[bool, typer.Option(help="Also regenerate leaderboard/index.html.")] = True,
) -> None:
    """Regenerate the committed leaderboard (leaderboard/leaderboard.{md,csv,json,tex}, index.html
    and the README's headline table) from leaderboard/results and leaderboard/submissions."""
    from culbench.errors import CulbenchError
    from culbench.leaderboard.publish import publish as write_all, stale

    if check:
        outdated = stale(root)
        if outdated:
            raise CulbenchError(f"stale leaderboard files: {', '.join(outdated)}",
                                "run `culbench leaderboard publish` and commit the result")
        console.print("leaderboard files are up to date", highlight=False)
        return
    for path in write_all(root, html=html):
        console.print(f"wrote {path}", highlight=False)


@app.command("export", epilog=EXAMPLES)
def export(
    roots: Annotated[list[Path] | None, typer.Argument(help="Results roots or run directories (default: leaderboard/results).")] = None,
    out: Annotated[Path, typer.Option(help="Folder to write presence.parquet, runs.parquet and README.md into.")] = Path("export"),
) -> None:
    """Write the results as a Hugging Face–style parquet dataset: presence.parquet (run × step ×
    concept), runs.parquet (one row per run, final-step metrics) and a dataset card."""
    from culbench.errors import CulbenchError
    from culbench.leaderboard.export import export as write_dataset

    sources = list(roots or [p for p in DEFAULT_SOURCES[:1] if p.exists()])
    if not sources:
        raise CulbenchError("no result folders given and no leaderboard/results here",
                            "pass results roots, e.g. `culbench leaderboard export results/ --out export/`")
    for path in write_dataset(sources, out):
        console.print(f"wrote {path}", highlight=False)
