"""``culbench ls``: list methods, sequences, profiles, model backends, judges and probes (no torch import)."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from culbench.cli.console import console, duration, styled
from culbench.spec import DEFAULT_OUT

EXAMPLES = """Examples:

  culbench ls methods

  culbench ls methods dfr        # its docstring, --set keys with defaults, trained groups

  culbench ls sequences

  culbench ls runs results/     # every run: status, steps done, time spent and left
"""

app = typer.Typer(help="List what is registered.", no_args_is_help=True, epilog=EXAMPLES)


def _table(title: str, rows: list[tuple[str, str, str]]) -> None:
    table = Table(title=title, show_lines=False)
    for column in ("name", "source", "summary"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _registry_rows(registry) -> list[tuple[str, str, str]]:
    """(name, source, summary) per entry; a plugin's summary is its docstring's first line."""
    from culbench.catalog import summary_of

    return [(e.name, e.source, summary_of(e)) for e in registry.entries()]


@app.command("methods", epilog=EXAMPLES)
def methods(
    name: Annotated[str | None, typer.Argument(help="Show this method in full.")] = None,
) -> None:
    """Built-in and plugin methods (entry point group culbench.methods); with NAME, one in full."""
    from culbench.catalog import METHODS, REGULARISERS

    if name is None:
        _table("methods", _registry_rows(METHODS))
        _table("regularisers (add-ons of gradient-trained methods: --method esd+l2sp, --set l2sp.weight=1e4)",
               _registry_rows(REGULARISERS))
        return
    _method_detail(name, METHODS)


def _method_detail(name: str, registry) -> None:
    import inspect

    from culbench.config import describe_config

    cls = registry.get(name)  # unknown names raise with a did-you-mean list
    entry = registry.entry(name)
    where = inspect.getsourcefile(cls) or entry.target
    console.print(styled((name, "bold"), f"  ({entry.source}, {where})"), highlight=False)
    console.print(f"trains: {', '.join(cls.trains)}    backends: "
                  f"{', '.join(cls.backends or ('any',))}", highlight=False)
    table = Table(title=f"config (--set {name}.FIELD=VALUE)", show_lines=False)
    for column in ("field", "type", "default", "note"):
        table.add_column(column)
    for row in describe_config(cls.Config):
        table.add_row(*row)
    console.print(table)
    doc = inspect.getdoc(inspect.getmodule(cls)) or inspect.getdoc(cls) or ""
    console.print(doc, highlight=False, markup=False, soft_wrap=True)


@app.command("sequences", epilog=EXAMPLES)
def sequences(
    paths: Annotated[bool, typer.Option(help="Show file paths instead of summaries.")] = False,
) -> None:
    """Deletion sequences found under the built-in tasks/ and the mocks."""
    from culbench.catalog import SEQUENCES

    rows = [(e.name, "builtin", e.target if paths else e.summary) for e in SEQUENCES.entries()]
    _table("sequences", rows)


PROFILE_ROWS = (  # (label, Profile field, what None means)
    ("prompts per concept", "prompts_per_concept", "all"), ("seeds per prompt", "seeds_per_prompt", "all"),
    ("sampler steps", "sample_steps", "sequence's"), ("max iterations / request", "max_iterations", "no cap"),
    ("max samples / request", "max_samples", "no cap"), ("images per batch", "batch_size", ""),
    ("bootstrap replicates", "bootstrap", ""), ("FID bootstrap replicates", "fid_bootstrap", ""))


@app.command("profiles", epilog=EXAMPLES)
def profiles() -> None:
    """Evaluation and compute profiles: prompts per concept, seeds per prompt, sampler steps and
    the caps on a method's training per request."""
    from culbench.profiles import PROFILES

    table = Table(title="profiles (culbench run --profile NAME)", show_lines=False)
    table.add_column("")
    for name in PROFILES:
        table.add_column(name, justify="right")
    for label, field, none in PROFILE_ROWS:
        values = [getattr(prof, field) for prof in PROFILES.values()]
        table.add_row(label, *(none if v is None else str(v) for v in values))
    console.print(table)
    for prof in PROFILES.values():
        console.print(f"{prof.name}: {prof.description}", highlight=False, soft_wrap=True)
    console.print("all: every eval prompt or seed of the sequence; sequence's: its sampler's steps",
                  style="dim", highlight=False)


@app.command("models", epilog=EXAMPLES)
def models() -> None:
    """Model backends a sequence can name."""
    from culbench.catalog import MODELS

    _table("model backends", _registry_rows(MODELS))


@app.command("judges", epilog=EXAMPLES)
def judges() -> None:
    """Judges, CLIP scorers and reference image sets a sequence can name."""
    from culbench.catalog import CLIP_SCORERS, FEATURES, JUDGES, REFERENCES

    _table("judges (sequence judge:)", _registry_rows(JUDGES))
    _table("CLIP scorers (sequence eval.clip:)", _registry_rows(CLIP_SCORERS))
    _table("reference image sets for FID (sequence eval.reference:)", _registry_rows(REFERENCES))
    _table("FID feature extractors (run --fid; default: the judge's features)", _registry_rows(FEATURES))


@app.command("probes", epilog=EXAMPLES)
def probes() -> None:
    """Robustness probes `culbench probe` runs on a run's checkpoints."""
    from culbench.catalog import PROBES

    _table("robustness probes (culbench probe --probe)", _registry_rows(PROBES))


def _when(stamp: str, today: str) -> str:
    """``HH:MM`` for today (UTC), else the date."""
    return stamp[11:16] if stamp.startswith(today) else stamp[:10]


@app.command("runs", epilog=EXAMPLES)
def runs(
    root: Annotated[Path, typer.Argument(help="A results directory (what --out was).")] = DEFAULT_OUT,
) -> None:
    """Runs under ROOT: status, steps committed, compute spent and an estimate of the time left."""
    from culbench.errors import ConfigError
    from culbench.runfolder.progress import run_progress

    fix = "pass the --out directory of your runs, e.g. culbench ls runs results"
    if not root.is_dir():
        raise ConfigError(f"{root} is not a directory", fix)
    rows = run_progress(root)
    if not rows:
        raise ConfigError(f"no runs under {root}", fix)
    today = _dt.datetime.now(_dt.timezone.utc).date().isoformat()
    table = Table(title=f"runs under {root}", show_lines=False, box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("run", overflow="fold", min_width=32)
    for column in ("status", "steps", "spent", "left", "updated"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["run"], row["status"], row.get("steps", ""), duration(row.get("seconds")),
                      duration(row.get("seconds_left")), _when(row.get("updated", ""), today))
    console.print(table)
    for row in rows:
        if row.get("note"):
            console.print(f"{row['run']}: {row['note']}", highlight=False)
    spent = sum(row.get("seconds") or 0.0 for row in rows)
    console.print(f"spent in all: {duration(spent)} of recorded compute", highlight=False)
    console.print("spent: the unlearning and evaluation seconds recorded per step in the manifest "
                  "(compute); left: the committed requests' mean time × requests to go; "
                  "updated: UTC (time if today)", style="dim", highlight=False)
