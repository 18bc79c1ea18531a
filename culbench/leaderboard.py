"""The leaderboard: tables generated from result files, never edited by hand.

``build(paths)`` groups complete runs into rows (``culbench.reporting``), one table per
sequence@version × profile, and renders them as Markdown, CSV, JSON or LaTeX. Rules (see
``docs/leaderboard.md``): sequence versions and profiles are never mixed; a missing value is
shown as missing, never averaged over; every value carries its 95 % interval; ranks are
tie-aware — a row's rank is 1 + the number of rows whose interval lies entirely above (or, for
↓ columns, below) its own; rows from ``leaderboard/results`` (re-run by the maintainers'
pipeline) are *verified*, everything else is *self-reported*.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from culbench.errors import RunError
from culbench.reporting import COLUMNS, Row, fmt, load_rows

RANK_KEY = "headline_h"
FORMATS = ("md", "csv", "json", "latex")
REFERENCE_METHODS = ("original", "retrain")  # rows that show the scale, never compete


@dataclass
class Table:
    sequence: str
    profile: str
    rows: list[Row]
    columns: list[tuple[str, str, int]]
    ranks: list[int | None]  # None = a reference row (listed last, unranked)
    best: dict[str, set[int]]

    @property
    def title(self) -> str:
        return f"{self.sequence} · profile {self.profile}"


def tie_aware_ranks(intervals: Sequence[tuple[float | None, float | None, float | None]], direction: int) -> list[int]:
    """1 + number of rows that are better with non-overlapping intervals; missing values rank last.

    >>> tie_aware_ranks([(0.9, 0.85, 0.95), (0.88, 0.8, 0.9), (0.5, 0.45, 0.55)], +1)
    [1, 1, 3]
    >>> tie_aware_ranks([(0.1, 0.05, 0.15), (None, None, None)], -1)
    [1, 2]
    """
    ranks = []
    for value, low, high in intervals:
        if value is None:
            ranks.append(len(intervals))
            continue
        better = 0
        for other, o_low, o_high in intervals:
            if other is None:
                continue
            if direction > 0 and o_low is not None and high is not None and o_low > high:
                better += 1
            if direction < 0 and o_high is not None and low is not None and o_high < low:
                better += 1
        ranks.append(1 + better)
    return ranks


def is_verified(row: Row) -> bool:
    """All of the row's runs come from ``leaderboard/results`` (the maintainers' pipeline)."""
    def published(source: str) -> bool:
        parts = Path(source).resolve().parts
        return any(parts[i:i + 2] == ("leaderboard", "results") for i in range(len(parts) - 1))

    return bool(row.sources) and all(published(s) for s in row.sources)


def is_reference(row: Row) -> bool:
    """A reference row — the untouched model, the retrain oracle, or any method run with
    ``--mode independent|simultaneous`` — is shown for scale but neither ranked nor marked best."""
    summary = row.summaries[0]
    return summary["method"] in REFERENCE_METHODS or summary.get("mode", "sequential") != "sequential"


def partial_summary(run_dir: Path) -> dict[str, Any]:
    """The summary of an unfinished run over its committed steps, marked ``partial``."""
    from culbench.evaluation.summary import build_summary
    from culbench.runfolder import committed_steps, read_json, step_dir

    manifest = read_json(run_dir / "manifest.json")
    steps = committed_steps(run_dir)
    if not steps:
        raise RunError(f"{run_dir} has no committed step", "rerun its `culbench run` or remove the folder")
    order = [read_json(step_dir(run_dir, k) / "step.json")["concept"] for k in steps[1:]]
    summary = build_summary(run_dir, manifest, order)
    summary["partial"] = [steps[-1], manifest.get("steps_total", steps[-1])]
    return summary


def build(paths: Sequence[Path], allow_partial: bool = False) -> list[Table]:
    """Tables over every complete run found under ``paths``; unfinished runs are refused, or with
    ``allow_partial`` shown at their last committed step, marked, unranked and never best."""
    partial = [m.parent for p in paths if p.is_dir() for m in p.rglob("manifest.json")
               if not (m.parent / "summary.json").exists() and ".cache" not in m.parts]
    if partial and not allow_partial:
        raise RunError(f"{len(partial)} incomplete run(s), e.g. {partial[0]}",
                       "finish them (rerun the same `culbench run`), move them out of the leaderboard folders, "
                       "or pass --allow-partial to show them marked")
    extra = [(d / "summary.json", partial_summary(d)) for d in partial]
    complete = [p for p in paths if p not in partial]
    rows = load_rows(complete, extra)
    for row in rows:
        reached = {len(s.get("forget_order", [])) if s.get("partial") else None for s in row.summaries}
        if row.partial and len(reached) > 1:
            raise RunError(f"the seeds of {row.label} stopped at different steps",
                           "finish them, or pass only runs that reached the same step")
    tuning = [r for r in rows if r.summaries[0].get("split", "eval") != "eval"]
    if tuning:
        raise RunError(f"{tuning[0].sources[0]} was evaluated on the validation prompts (--split val)",
                       "tuning runs are never ranked: move them out of the leaderboard folders")
    tables: list[Table] = []
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.sequence, row.profile), []).append(row)
    for (sequence, profile), members in groups.items():
        columns = [c for c in COLUMNS if any(r.value(c[0])[0] is not None for r in members)]
        rank_dir = next((d for k, _, d in columns if k == RANK_KEY), +1)
        ranked = [r for r in members if not is_reference(r) and not r.partial]
        references = sorted((r for r in members if is_reference(r) or r.partial), key=lambda r: r.label)
        ranked_ranks = tie_aware_ranks([r.value(RANK_KEY) for r in ranked], rank_dir)
        order = sorted(range(len(ranked)), key=lambda i: (ranked_ranks[i], ranked[i].label))
        members = [ranked[i] for i in order] + references
        ranks: list[int | None] = [ranked_ranks[i] for i in order] + [None] * len(references)
        contenders = [i for i, r in enumerate(ranks) if r is not None] or list(range(len(members)))
        best: dict[str, set[int]] = {}
        for key, _, direction in columns:
            values = [members[i].value(key)[0] if i in contenders else None for i in range(len(members))]
            present = [v for v in values if v is not None]
            if present:
                top = max(present) if direction > 0 else min(present)
                best[key] = {i for i, v in enumerate(values) if v == top}
        tables.append(Table(sequence, profile, members, columns, ranks, best))
    return tables


def _rank(table: Table, i: int) -> str:
    """The rank, ``ref`` for a reference row, ``—`` for an unfinished one."""
    rank = table.ranks[i]
    return str(rank) if rank is not None else "—" if table.rows[i].partial else "ref"


def provenance(row: Row) -> str:
    """``verified`` (re-run by the maintainers' pipeline) or ``self-reported``."""
    return "verified" if is_verified(row) else "self-reported"


def _status(row: Row) -> str:
    status = provenance(row)
    if row.partial:
        status += f" · partial {row.partial[0]}/{row.partial[1]}"
    for seed, devices in row.mixed_devices.items():  # its cost is not comparable: not in the compute columns
        status += f" · seed {seed} on {'+'.join(devices)}, not in compute"
    return status


def _cells(table: Table, i: int, bold: tuple[str, str]) -> list[str]:
    row = table.rows[i]
    out = [_rank(table, i), row.label, ",".join(map(str, row.seeds)), _status(row)]
    for key, _, _ in table.columns:
        text = fmt(*row.value(key), key=key)
        out.append(f"{bold[0]}{text}{bold[1]}" if i in table.best.get(key, ()) else text)
    return out


def _header(table: Table) -> list[str]:
    return ["rank", "method", "seeds", "status"] + [f"{label} {'↑' if d > 0 else '↓'}" for _, label, d in table.columns]


def render(tables: Sequence[Table], fmt_name: str) -> str:
    """One text document with every table in ``fmt_name`` (md, csv, json or latex)."""
    if fmt_name == "md":
        parts = []
        for t in tables:
            parts += [f"### {t.title}", "", "| " + " | ".join(_header(t)) + " |", "|" + "---|" * len(_header(t))]
            parts += ["| " + " | ".join(_cells(t, i, ("**", "**"))) + " |" for i in range(len(t.rows))]
            parts += ["", f"Ranked by {RANK_KEY} with tie-aware ranks (overlapping 95 % intervals share a rank); "
                      "bold = best value per column among ranked rows; ± = half the 95 % interval; "
                      "ref = reference row (untouched model, retrain oracle, --mode runs), not ranked.", ""]
        return "\n".join(parts)
    if fmt_name == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["sequence", "profile", "rank", "method", "settings", "seeds", "status", "column", "value",
                         "ci_low", "ci_high"])
        for t in tables:
            for i, row in enumerate(t.rows):
                head = [t.sequence, t.profile, _rank(t, i), row.method, row.settings, " ".join(map(str, row.seeds)),
                        _status(row)]
                for key, _, _ in t.columns:
                    value, low, high = row.value(key)
                    writer.writerow([*head, key, *("" if v is None else f"{v:.6f}" for v in (value, low, high))])
        return buffer.getvalue()
    if fmt_name == "json":
        return json.dumps([_table_json(t) for t in tables], indent=2, sort_keys=True) + "\n"
    if fmt_name == "latex":
        parts = []
        for t in tables:
            header = [h.replace("↑", r"$\uparrow$").replace("↓", r"$\downarrow$") for h in _header(t)]
            parts += [r"\begin{tabular}{" + "l" * len(header) + "}", r"\toprule", " & ".join(header) + r" \\", r"\midrule"]
            for i in range(len(t.rows)):
                cells = [c.replace("±", r"$\pm$").replace("_", r"\_") for c in _cells(t, i, (r"\textbf{", "}"))]
                parts.append(" & ".join(cells) + r" \\")
            parts += [r"\bottomrule", r"\end{tabular}", f"% {t.title}", ""]
        return "\n".join(parts)
    raise RunError(f"unknown format '{fmt_name}'", f"use one of: {', '.join(FORMATS)}, html")


def _table_json(t: Table) -> dict[str, Any]:
    return {"sequence": t.sequence, "profile": t.profile, "rank_by": RANK_KEY,
            "rows": [{"rank": t.ranks[i], "reference": t.ranks[i] is None and not r.partial,
                      "partial": list(r.partial) if r.partial else None, "method": r.method, "settings": r.settings, "label": r.label,
                      "seeds": r.seeds,
                      "status": provenance(r), "mixed_devices": {str(k): v for k, v in r.mixed_devices.items()},
                      "values": {k: dict(zip(("value", "ci_low", "ci_high"), r.value(k), strict=True))
                                 for k, _, _ in t.columns}}
                     for i, r in enumerate(t.rows)]}
