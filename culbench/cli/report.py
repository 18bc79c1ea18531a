"""``culbench report``: compare finished runs — a table with intervals, plots, a Markdown file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from culbench.cli.console import console

CONSOLE_KEYS = ("ua_cumulative", "retention_related", "retention_general", "re_emergence_max",
                "headline_h", "fid_retained_vs_base", "unlearn_seconds_median")
EXAMPLES = """Examples:

  culbench report results/

  culbench report results/toy10@1/dfr/standard/seed0 results/toy10@1/original/standard/seed0 --out report/
"""


def report(
    runs: Annotated[list[Path], typer.Argument(help="Run directories or results roots (searched for summary.json).")],
    out: Annotated[Path | None, typer.Option(help="Folder for report.md and the PNG plots (default: ./report).")] = None,
    plots: Annotated[bool, typer.Option(help="Write the plots (matplotlib).")] = True,
    samples: Annotated[bool, typer.Option(help="Draw sample image grids from the runs' final weights "
                                               "(cached in <out>/samples/).")] = True,
) -> None:
    """Final-step metrics per method (mean ± 95 % interval) and per-step plots.

    One table per sequence@version × profile; intervals are the two-level cluster bootstrap over
    runs and evaluation prompts (runs recorded without per-prompt hits: bootstrap over images for
    one seed, t-interval over seeds for several). Probe records add robustness columns and judge
    agreement.
    """
    from rich.table import Table

    from culbench.evaluation.metric_info import METRICS
    from culbench.leaderboard import fmt, load_rows
    from culbench.leaderboard.probes import agreement_lines, concept_lines
    from culbench.profiles import caveat

    rows = load_rows(runs)
    out = out or Path("report")
    out.mkdir(parents=True, exist_ok=True)
    groups: dict[tuple[str, str], list] = {}
    for row in rows:
        groups.setdefault((row.sequence, row.profile), []).append(row)
    lines = ["# culbench report", "",
             "Final step; ± is half the 95 % interval (cluster bootstrap over runs and evaluation prompts; "
             "runs recorded without per-prompt hits: t-interval over seeds). ↑ higher is better, ↓ lower.", ""]
    for (sequence, profile), members in groups.items():
        present = [m for m in METRICS if any(r.value(m.key)[0] is not None for r in members)]
        header = ["method", "seeds"] + [m.heading for m in present]
        heading = " · ".join(filter(None, [f"{sequence} · profile {profile}", caveat(profile)]))
        table = Table(title=f"{heading} (all columns: {out / 'report.md'})")
        shown = [i for i, m in enumerate(present) if m.key in CONSOLE_KEYS]
        for name in header[:2] + [header[2 + i] for i in shown]:
            table.add_column(name, justify="left" if name in ("method", "seeds") else "right",
                             overflow="fold")  # never cut a label: two configs may share a prefix
        lines += [f"## {heading}", "", "| " + " | ".join(header) + " |",
                  "|" + "---|" * len(header)]
        for row in members:
            cells = [row.label, ",".join(map(str, row.seeds))] + [fmt(*row.value(m.key), key=m.key) for m in present]
            table.add_row(*cells[:2], *(cells[2 + i] for i in shown))
            lines.append("| " + " | ".join(cells) + " |")
        console.print(table)
        lines.append("")
        lines += agreement_lines(members) + concept_lines(members)
        if samples:
            from culbench.leaderboard.samples import markdown_lines, sample_grid

            lines += ["### Samples at the last step", ""]
            lines += markdown_lines(sample_grid(members, out / "samples"), out)
        if plots:
            lines += _plots(members, out, f"{sequence}-{profile}".replace("@", "v"))
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
    extras = [name for name, wanted in (("plots", plots), ("sample grids", samples)) if wanted]
    console.print(f"wrote {out / 'report.md'}" + (f" and {' and '.join(extras)}" if extras else ""),
                  highlight=False, soft_wrap=True)


def _plots(members: list, out: Path, stem: str) -> list[str]:
    """Write one table's plots into ``out``: trade-off, curves, restoration (with relearn records)
    and every row's presence heat-map; their Markdown image lines."""
    from culbench.leaderboard import plots as figures

    written = [figures.curves(members, out / f"{stem}-curves.png"),
               figures.tradeoff(members, out / f"{stem}-tradeoff.png")]
    written += [p for p in [figures.restoration(members, out / f"{stem}-restoration.png")] if p]
    written += [figures.heatmap(r, out / f"{stem}-{re.sub('[^A-Za-z0-9_.+~-]+', '_', r.label)}-presence.png")
                for r in members]
    return [f"![{p.stem}]({p.name})" for p in written] + [""]
