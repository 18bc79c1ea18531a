"""Text renderings of leaderboard tables: Markdown, CSV, JSON and LaTeX, and the cell format
(``0.912 ±0.031``) every table and report shares."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from culbench.errors import RunError
from culbench.evaluation.metric_info import METRIC_INFO
from culbench.leaderboard.rows import Row
from culbench.leaderboard.tables import (
    MIN_SEEDS,
    RANK_KEY,
    Table,
    is_reference,
    is_verified,
    too_few_seeds,
)

FORMATS = ("md", "csv", "json", "latex")


def fmt(value: float | None, low: float | None, high: float | None, digits: int = 3,
        key: str | None = None) -> str:
    """``0.912 ±0.031`` (half the interval width), ``—`` when missing; ``key`` picks the
    metric's precision from ``METRIC_INFO``.

    >>> fmt(0.9, 0.85, 0.97), fmt(None, None, None), fmt(1.0, 1.0, 1.0)
    ('0.900 ±0.060', '—', '1.000')
    >>> fmt(1383.37, 1375.3, 1391.4, key="peak_rss_mb"), fmt(8.408, 7.75, 9.07, key="fid_retained_vs_base")
    ('1383 ±8', '8.4 ±0.7')
    """
    digits = METRIC_INFO[key].digits if key in METRIC_INFO else digits
    if value is None:
        return "—"
    if low is None or high is None or high - low < 10 ** -digits:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} ±{(high - low) / 2:.{digits}f}"


def rank_cell(table: Table, i: int) -> str:
    """The rank, ``ref`` for a reference row, ``—`` for an unfinished one or one with too few seeds."""
    rank, row = table.ranks[i], table.rows[i]
    return str(rank) if rank is not None else "ref" if is_reference(row) and not row.partial else "—"


def provenance(row: Row) -> str:
    """``verified`` (re-run by the maintainers' pipeline) or ``self-reported``."""
    return "verified" if is_verified(row) else "self-reported"


def tuning_budget(sequence: str, method: str) -> int | None:
    """How many validation configurations ``method`` tried before its defaults on ``sequence``
    were fixed: ``leaderboard/tuning/<sequence>.json`` (written from ``culbench tune`` records),
    or None when not recorded."""
    import json

    from culbench.catalog import PACKAGE_DIR

    path = PACKAGE_DIR.parent / "leaderboard" / "tuning" / f"{sequence}.json"
    if not path.is_file():
        return None
    entry = json.loads(path.read_text(encoding="utf-8")).get("methods", {}).get(method)
    return int(entry["budget"]) if entry else None


def status(row: Row) -> str:
    """``provenance`` with the row's marks: partial progress, too few seeds to rank, intervals
    from runs without per-prompt hits, its tuning budget, seeds left out of the compute columns."""
    text = provenance(row)
    if row.partial:
        text += f" · partial {row.partial[0]}/{row.partial[1]}"
    elif too_few_seeds(row) and not is_reference(row):
        text += f" · unranked: {len(row.seeds)} seed{'s' * (len(row.seeds) != 1)} of {MIN_SEEDS}"
    if row.legacy_intervals:
        text += " · legacy intervals"
    budget = tuning_budget(row.sequence, row.method)
    if budget is not None and row.role == "ranked":
        text += f" · tuned {budget}"
    for seed, devices in row.mixed_devices.items():  # its cost is not comparable: not in the compute columns
        text += f" · seed {seed} on {'+'.join(devices)}, not in compute"
    return text


def cells(table: Table, i: int, bold: tuple[str, str]) -> list[str]:
    """Row ``i`` of ``table`` as text cells, a best value wrapped in ``bold`` (opening, closing)."""
    row = table.rows[i]
    out = [rank_cell(table, i), row.label, ",".join(map(str, row.seeds)), status(row)]
    for metric in table.columns:
        text = fmt(*row.value(metric.key), key=metric.key)
        out.append(f"{bold[0]}{text}{bold[1]}" if i in table.best.get(metric.key, ()) else text)
    return out


def header(table: Table) -> list[str]:
    """Column headings of ``table``: rank, method, seeds, status, then each metric with its arrow."""
    return ["rank", "method", "seeds", "status"] + [m.heading for m in table.columns]


def render(tables: Sequence[Table], fmt_name: str) -> str:
    """One text document with every table in ``fmt_name`` (md, csv, json or latex)."""
    writers = {"md": _markdown, "csv": _csv, "json": _json, "latex": _latex}
    if fmt_name not in writers:
        raise RunError(f"unknown format '{fmt_name}'", f"use one of: {', '.join(FORMATS)}, html")
    return writers[fmt_name](tables)


def _markdown(tables: Sequence[Table]) -> str:
    parts = []
    for t in tables:
        parts += [f"### {t.title}", "", "| " + " | ".join(header(t)) + " |", "|" + "---|" * len(header(t))]
        parts += ["| " + " | ".join(cells(t, i, ("**", "**"))) + " |" for i in range(len(t.rows))]
        parts += ["", f"Ranked by {RANK_KEY} with tie-aware ranks (overlapping 95 % intervals share a rank); "
                  f"a row ranks only with ≥ {MIN_SEEDS} seeds (— = unranked: fewer seeds, or unfinished); "
                  "bold = best value per column among ranked rows; ± = half the 95 % interval "
                  "(cluster bootstrap over seeds and evaluation prompts; legacy intervals: runs recorded "
                  "without per-prompt hits, t-interval over seeds); "
                  "ref = reference row (untouched model, retrain oracle, --mode runs), not ranked.", ""]
    return "\n".join(parts)


def _csv(tables: Sequence[Table]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["sequence", "profile", "rank", "method", "settings", "seeds", "status", "column", "value",
                     "ci_low", "ci_high"])
    for t in tables:
        for i, row in enumerate(t.rows):
            head = [t.sequence, t.profile, rank_cell(t, i), row.method, row.settings, " ".join(map(str, row.seeds)),
                    status(row)]
            for metric in t.columns:
                value, low, high = row.value(metric.key)
                writer.writerow([*head, metric.key, *("" if v is None else f"{v:.6f}" for v in (value, low, high))])
    return buffer.getvalue()


def _json(tables: Sequence[Table]) -> str:
    return json.dumps([_table_json(t) for t in tables], indent=2, sort_keys=True) + "\n"


def _latex(tables: Sequence[Table]) -> str:
    parts = []
    for t in tables:
        heads = [h.replace("↑", r"$\uparrow$").replace("↓", r"$\downarrow$") for h in header(t)]
        parts += [r"\begin{tabular}{" + "l" * len(heads) + "}", r"\toprule", " & ".join(heads) + r" \\", r"\midrule"]
        for i in range(len(t.rows)):
            texts = [c.replace("±", r"$\pm$").replace("_", r"\_") for c in cells(t, i, (r"\textbf{", "}"))]
            parts.append(" & ".join(texts) + r" \\")
        parts += [r"\bottomrule", r"\end{tabular}", f"% {t.title}", ""]
    return "\n".join(parts)


def _table_json(t: Table) -> dict[str, Any]:
    from culbench.profiles import caveat

    note = {"note": caveat(t.profile)} if caveat(t.profile) else {}  # smoke tables: plumbing numbers
    return {"sequence": t.sequence, "profile": t.profile, "rank_by": RANK_KEY, **note,
            "rows": [{"rank": t.ranks[i], "reference": is_reference(r) and not r.partial,
                      "too_few_seeds": too_few_seeds(r), "legacy_intervals": r.legacy_intervals,
                      "partial": list(r.partial) if r.partial else None, "method": r.method, "settings": r.settings, "label": r.label,
                      "seeds": r.seeds,
                      "status": provenance(r), "mixed_devices": {str(k): v for k, v in r.mixed_devices.items()},
                      "values": {k: dict(zip(("value", "ci_low", "ci_high"), r.value(k), strict=True))
                                 for k in (m.key for m in t.columns)}}
                     for i, r in enumerate(t.rows)]}
