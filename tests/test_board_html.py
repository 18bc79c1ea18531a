"""The HTML board as people read it: the headline view at laptop width, sample image grids
(cached, skipped with a note for records-only runs), reference rows styled apart."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from conftest import chromium, run_cli

from culbench.leaderboard import build, render_html

# appended to a copy of the board: what the browser laid out, written where --dump-dom shows it
PROBE = """<script>window.addEventListener('load', function () {
  var box = function (el) { var r = el.getBoundingClientRect(); return [r.left, r.right, r.width]; };
  var heads = Array.from(document.querySelectorAll('table.board th'));
  var find = function (text) { return heads.find(function (th) { return th.textContent.trim() === text; }); };
  var images = Array.from(document.querySelectorAll('table.samples img'));
  document.body.setAttribute('data-layout', JSON.stringify({
    width: document.documentElement.clientWidth, h: box(find('H \\u2191')), status: box(find('status')),
    grid: box(document.querySelector('table.samples')), images: images.length,
    drawn: images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length}));
});</script></body>"""


def _layout(flags: list[str], page: Path, fragment: str = "") -> dict:
    dom = subprocess.run([*flags, "--window-size=1280,900", "--dump-dom", f"file://{page}{fragment}"],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    start = dom.stdout.index("data-layout=\"") + len("data-layout=\"")
    return json.loads(dom.stdout[start : dom.stdout.index("\"", start)].replace("&quot;", "\""))


def test_headline_view_fits_1280px_with_h_visible_and_a_sample_grid(smoke_run: Path, dfr_mock_run: Path,
                                                                     tmp_path: Path) -> None:
    flags = chromium()
    out = tmp_path / "board.html"
    done = run_cli("leaderboard", "build", str(smoke_run), str(dfr_mock_run), "--format", "html", "--out", str(out))
    assert done.returncode == 0, done.stderr
    page = tmp_path / "probed.html"
    page.write_text(out.read_text().replace("</body>", PROBE), encoding="utf-8")
    layout = _layout(flags, page)
    left, right, width = layout["h"]
    assert width > 0 and left >= 0 and right <= layout["width"] <= 1280, layout  # H is on screen
    assert layout["status"][2] == 0, layout  # the status column waits behind the toggle
    assert layout["images"] == 12 and layout["drawn"] == 12, layout  # base, dfr, original × 4 concepts
    assert 0 < layout["grid"][1] <= layout["width"], layout
    assert _layout(flags, page, "#all")["status"][2] > 0  # #all (or the button) shows every column


def test_sample_cells_are_cached_and_records_only_runs_get_a_note(smoke_run: Path, dfr_mock_run: Path,
                                                                   tmp_path: Path) -> None:
    tables = build([smoke_run, dfr_mock_run])
    cache = tmp_path / "cells"
    page = render_html(tables, plots=False, cache=cache)
    cells = {p: p.stat().st_mtime_ns for p in cache.rglob("*.png")}
    # base and dfr's last step; `original` never changes, so its cells are the base model's
    assert len(cells) == 8 and page.count("<table class='samples'>") == 1
    assert page.count("src='data:image/png;base64,") == 12
    assert render_html(tables, plots=False, cache=cache) == page  # drawn once, read back after
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*.png")} == cells
    assert "<table class='samples'>" not in render_html(tables, plots=False, samples=False)
    bare = tmp_path / "records" / "dfr"
    shutil.copytree(dfr_mock_run, bare)
    for weights in bare.rglob("model.safetensors"):  # as published: records only
        weights.unlink()
    page = render_html(build([smoke_run, bare]), plots=False, cache=cache)
    assert "no weights kept (records-only run): not drawn" in page and page.count("data:image/png") == 8
    alone = render_html(build([bare]), plots=False, cache=tmp_path / "unused")
    assert "No sample images" in alone and not (tmp_path / "unused").exists()


def test_reference_rows_are_styled_apart_and_headline_keys_follow_the_table(smoke_run: Path,
                                                                          dfr_mock_run: Path) -> None:
    from culbench.leaderboard.html import headline_keys

    tables = build([smoke_run, dfr_mock_run])
    page = render_html(tables, plots=False, samples=False)
    assert "<tr class='self-reported ref'>" in page and "<tr class='self-reported unranked'>" in page
    # mock@1 holds nothing out: the headline shows the given retention H scores
    assert headline_keys(tables[0]) == {"ua_cumulative", "retention_related", "retention_general", "headline_h",
                                        "unlearn_seconds_median"}
