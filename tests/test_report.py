"""`culbench report`: tables over seeds and methods, plots, and clear errors."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from conftest import run_cli

from culbench.leaderboard import load_rows


def test_report_table_and_plots(smoke_run: Path, dfr_mock_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    done = run_cli("report", str(smoke_run), str(dfr_mock_run), "--out", str(out))
    assert done.returncode == 0, done.stderr
    text = (out / "report.md").read_text()
    table = text.split("\n### ")[0]  # the metrics table, before the sample grid's section
    rows = [line for line in table.splitlines() if line.startswith("| ") and "method" not in line]
    assert [r.split(" | ")[0] for r in rows] == ["| dfr[iterations=4 lr=0.01]", "| original"]
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) == 4 and all((out / p).stat().st_size > 5_000 for p in pngs)
    assert done.stderr == ""  # no library warnings in what people read
    # the sample grid: base, dfr and original × 4 concepts, each cell a PNG under out/samples
    cells = re.findall(r"!\[[^]]*\]\((samples/[^)]+\.png)\)", text)
    assert "### Samples at the last step" in text and len(cells) == 12 and all((out / c).is_file() for c in cells)
    # `original` must show UA 0 and retention 1 (the model never changes)
    original = load_rows([smoke_run])[0]
    assert original.value("ua_cumulative")[0] == 0.0
    assert original.value("retention_general")[0] == 1.0


def test_report_groups_seeds_and_refuses_duplicates(smoke_run: Path, tmp_path: Path) -> None:
    twin = tmp_path / "twin"
    shutil.copytree(smoke_run, twin)
    done = run_cli("report", str(smoke_run), str(twin), "--out", str(tmp_path / "r"), "--no-plots")
    assert done.returncode != 0 and "appears twice" in done.stderr and "fix:" in done.stderr


def test_report_on_empty_folder_is_a_one_line_error(tmp_path: Path) -> None:
    done = run_cli("report", str(tmp_path))
    assert done.returncode != 0 and "no complete runs" in done.stderr and "fix:" in done.stderr
