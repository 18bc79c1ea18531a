"""The single-file HTML leaderboard: per table a headline view that fits a laptop screen (every
other column behind a toggle), reference rows styled apart, sample image grids, and the plots
(trade-off, curves, a presence heat-map per row). Images are inlined as base64 PNG: no server,
no external assets, no network."""

from __future__ import annotations

import base64
import html
import tempfile
from collections.abc import Sequence
from pathlib import Path

from culbench.leaderboard.formats import cells, header, provenance, status
from culbench.leaderboard.tables import MIN_SEEDS, RANK_KEY, Table, is_reference, too_few_seeds

# The headline view's columns besides rank, method and seeds: per slot, the first alternative the
# table has a value for (retention: the held-out concepts H scores, else the given ones).
HEADLINE_VIEW: tuple[tuple[tuple[str, ...], ...], ...] = (
    (("ua_cumulative",),),
    (("retention_related_held_out", "retention_general_held_out"), ("retention_related", "retention_general")),
    (("probe_attack",), ("probe_paraphrase",), ("probe_relearn_auc",)),  # robustness
    (("headline_h",),),
    (("gap_retrain",),),
    (("unlearn_seconds_median",),),  # cost
)

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5rem;color:#1b1b1b;background:#fff}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}h3{font-size:1rem;margin:1.2rem 0 .3rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
th,td{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:right;white-space:nowrap}
table.board th{cursor:pointer;background:#f3f4f6;position:sticky;top:0;white-space:normal;min-width:3.5rem}
table.board th:hover{background:#e5e7eb}
table.board td:nth-child(2),table.board td:nth-child(4),table.board th:nth-child(2),
table.board th:nth-child(4){text-align:left}
table.board td:nth-child(2){white-space:normal;min-width:7rem;max-width:16rem}
table.board:not(.all) .x{display:none}table.board.all small.st{display:none}
small.st{display:block;color:#6b7280;font-size:.72rem}
tr.verified td:nth-child(4){color:#166534}tr.self-reported td:nth-child(4){color:#92400e}
tr.ref td{background:#f5f5f4;color:#57534e}tr.ref td:nth-child(2){font-style:italic}
tr.oracle td{background:#fefce8}tr.unranked td:first-child{color:#9ca3af}
b{color:#1d4ed8}img{max-width:100%;border:1px solid #eee;margin:.5rem 0}
button.toggle{font-size:.8rem;padding:.2rem .6rem;cursor:pointer}
table.samples img{margin:0;border:0;image-rendering:pixelated;display:block}
table.samples td,table.samples th{text-align:left;vertical-align:middle}
table.samples td.ref{background:#f5f5f4;font-style:italic}table.samples td.oracle{background:#fefce8}
table.samples td.base{font-weight:600}table.samples td.none{color:#6b7280;font-size:.8rem}
span.key{display:inline-block;width:.9rem;height:.9rem;vertical-align:middle;border:1px solid #ccc}
div.wide{overflow-x:auto}p.note{color:#555;font-size:.85rem;max-width:60rem}
details{margin:.6rem 0}summary{cursor:pointer}
"""

_SCRIPT = r"""
document.querySelectorAll('table.board').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, col) {
    th.addEventListener('sort', function () {
      var body = table.tBodies[0], rows = Array.from(body.rows);
      var asc = th.dataset.order !== 'asc'; th.dataset.order = asc ? 'asc' : 'desc';
      var key = function (r) { var c = r.cells[col], t = (c.firstChild ? c.firstChild.textContent : '').trim();
        var n = parseFloat(t); return isNaN(n) ? ((t === 'ref' || t === '\u2014') ? Infinity : t) : n; };
      rows.sort(function (a, b) { var x = key(a), y = key(b);
        if (x === y) return 0; return ((x < y) ? -1 : 1) * (asc ? 1 : -1); });
      rows.forEach(function (r) { body.appendChild(r); });
    });
    th.addEventListener('click', function () { th.dispatchEvent(new Event('sort')); });
  });
});
// the headline view / all columns; #all in the address opens every table with all columns
document.querySelectorAll('button.toggle').forEach(function (button) {
  var table = document.getElementById(button.dataset.board);
  var show = function (all) { table.classList.toggle('all', all);
    button.textContent = all ? 'Headline columns only' : button.dataset.label; };
  button.addEventListener('click', function () { show(!table.classList.contains('all')); });
  if (/(^#|[#,&])all\b/.test(location.hash)) show(true);
});
// #sort=N (ascending) or #sort=N,desc sorts every table by column N on load (bookmarkable)
var m = location.hash.match(/sort=(\d+)(,desc)?/);
if (m) document.querySelectorAll('table.board').forEach(function (table) {
  var th = table.querySelectorAll('th')[parseInt(m[1], 10)];
  if (th) { th.dispatchEvent(new Event('sort')); if (m[2]) th.dispatchEvent(new Event('sort')); }
});
"""


def png_data(path: Path) -> str:
    """``path`` (a PNG) as a ``data:`` URI."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def headline_keys(table: Table) -> set[str]:
    """The metric columns of ``table`` its headline view shows (``HEADLINE_VIEW``)."""
    present = {m.key for m in table.columns}
    keys: set[str] = set()
    for alternatives in HEADLINE_VIEW:
        keys |= present & set(next((a for a in alternatives if present & set(a)), ()))
    return keys


def render_html(tables: Sequence[Table], *, plots: bool = True, samples: bool = True, cache: Path | None = None,
                title: str = "culbench leaderboard") -> str:
    """The whole page as one string. ``samples`` draws each table's sample grid from its runs'
    final weights, caching the cell PNGs in ``cache`` (default: a folder removed afterwards)."""
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<meta name='viewport' content='width=device-width, initial-scale=1'>",
             f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
             "<p class='note'>Generated by <code>culbench leaderboard build --format html</code> from result "
             f"files; never edited by hand. Ranked by {RANK_KEY}, tie-aware: rows whose 95 % intervals overlap "
             f"share a rank; a row ranks only with at least {MIN_SEEDS} seeds (— marks a row with fewer, or an "
             "unfinished one); <i>ref</i> rows (the untouched model, the retrain oracle, <code>--mode</code> runs) "
             "show the scale and are not ranked. Bold: best value per column among ranked rows. "
             "± is half the 95 % interval (a cluster bootstrap over "
             "seeds and evaluation prompts; <i>legacy intervals</i>: runs recorded without per-prompt hits, "
             "t-interval over seeds). Each table opens on its headline columns (UA, the retention H scores, "
             "robustness, H, the gap to the retrain oracle, cost, where the rows have them); its button shows "
             "the others. Click a header to sort.</p>"]
    with tempfile.TemporaryDirectory() as tmp:
        for n, table in enumerate(tables):
            parts += _table_html(table, n)
            if samples:
                parts += _samples_html(table, cache or Path(tmp) / "samples")
            if plots:
                parts += _plots_html(table, Path(tmp) / f"t{n}")
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts) + "\n"


def _row_class(table: Table, i: int) -> str:
    """A board row's classes: provenance, then ``ref``/``oracle`` (reference rows),
    ``unranked`` (too few seeds) and ``partial`` (unfinished)."""
    row = table.rows[i]
    marks = [provenance(row)]
    if is_reference(row):
        marks += ["ref", "oracle"] if row.role == "oracle" else ["ref"]
    elif too_few_seeds(row):
        marks.append("unranked")
    return " ".join(marks + ["partial"] * bool(row.partial))


def _table_html(table: Table, n: int) -> list[str]:
    shown = headline_keys(table)
    hidden = [m.key not in shown for m in table.columns]  # behind the toggle, the status column too
    flags = [False, False, False, True, *hidden]
    mark = [" class='x'" if f else "" for f in flags]
    label = f"Show all {len(flags)} columns"
    kinds = {kind for i in range(len(table.rows)) for kind in _row_class(table, i).split()}
    keys = [f"<span class='key' style='background:{colour}'></span> {text}" for kind, colour, text in
            (("ref", "#f5f5f4", "reference row (not ranked)"), ("oracle", "#fefce8", "retrain oracle"))
            if kind in kinds]
    parts = [f"<h2>{html.escape(table.title)}</h2>",
             f"<p><button type='button' class='toggle' data-board='board-{n}' data-label='{label}'>{label}</button> "
             + " ".join(keys) + "</p>",
             f"<div class='wide'><table class='board' id='board-{n}'><thead><tr>"]
    names = ["rank", "method", "seeds", "status", *(m.key for m in table.columns)]
    parts += [f"<th{c} title='{k}'>{html.escape(h)}</th>" for c, k, h in zip(mark, names, header(table), strict=True)]
    parts.append("</tr></thead><tbody>")
    for i in range(len(table.rows)):
        texts = [html.escape(c).replace("**", "") for c in cells(table, i, ("**", "**"))]
        best = [False] * 4 + [i in table.best.get(m.key, ()) for m in table.columns]
        texts = [f"<b>{c}</b>" if b else c for c, b in zip(texts, best, strict=True)]
        texts[1] += f"<small class='st'>{html.escape(status(table.rows[i]))}</small>"
        parts.append(f"<tr class='{_row_class(table, i)}'>"
                     + "".join(f"<td{c}>{t}</td>" for c, t in zip(mark, texts, strict=True)) + "</tr>")
    parts.append("</tbody></table></div>")
    return parts


def _samples_html(table: Table, cache: Path) -> list[str]:
    """The table's sample grid (``culbench.leaderboard.samples``): a row per model, a column per concept."""
    from culbench.leaderboard.samples import sample_grid

    grid = sample_grid(table.rows, cache)
    parts = ["<h3>Samples at the last step</h3>"]
    if isinstance(grid, str):
        return [*parts, f"<p class='note'>{html.escape(grid)}</p>"]
    parts.append(f"<p class='note'>{html.escape(grid.how)}</p><table class='samples'><thead><tr><th>model</th>")
    parts += [f"<th>{html.escape(c)}<br><small>{html.escape(caption)}</small></th>" for c, caption in grid.concepts]
    parts.append("</tr></thead><tbody>")
    for row in grid.rows:
        kind = {"reference": "ref", "oracle": "oracle", "base": "base"}.get(row.kind, "")
        head = f"<td class='{kind}'>{html.escape(row.label)}</td>" if kind else f"<td>{html.escape(row.label)}</td>"
        if row.note:
            body = f"<td class='none' colspan='{len(grid.concepts)}'>{html.escape(row.note)}</td>"
        else:
            body = "".join(f"<td><img alt='{html.escape(row.label)}: {html.escape(c)}' src='{png_data(row.cells[c])}'>"
                           "</td>" for c, _ in grid.concepts)
        parts.append(f"<tr>{head}{body}</tr>")  # no class on these rows: `<tr class=` marks board rows
    parts.append("</tbody></table>")
    return parts


def _plots_html(table: Table, stem: Path) -> list[str]:
    from culbench.leaderboard import plots as figures

    n = stem.name
    parts = ["<h3>Trade-off and curves</h3>"]
    pngs = (figures.tradeoff(table.rows, stem.with_name(f"{n}-tradeoff.png")),
            figures.curves(table.rows, stem.with_name(f"{n}-curves.png")),
            figures.restoration(table.rows, stem.with_name(f"{n}-restoration.png")))  # None: no relearn records
    parts += [f"<img alt='{png.stem}' src='{png_data(png)}'>" for png in pngs if png is not None]
    # the step × concept presence matrix of every row, references and unfinished rows included
    parts.append(f"<details><summary>Presence heat-maps (step × concept, first seed of each of the "
                 f"{len(table.rows)} rows)</summary>")
    for i, row in enumerate(table.rows):
        png = figures.heatmap(row, stem.with_name(f"{n}-r{i}-presence.png"))
        parts.append(f"<img alt='{html.escape(row.label)} presence' src='{png_data(png)}'>")
    parts.append("</details>")
    return parts
