"""``benchmarks/sd_cost.py`` at tiny size on CPU: the script the GPU table comes from keeps running,
and its record holds every figure the table needs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_sd_cost_benchmark_runs_at_tiny_size(tmp_path: Path) -> None:
    out = tmp_path / "sd_cost.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "sd_cost.py"), "--size", "tiny", "--threads", "1",
         "--methods", "uce,esd", "--variant", "esd:iterations=2", "--iterations-scale", "0.002",
         "--profiles", "smoke", "--eval-prompts", "1", "--agreement-images", "2", "--switch", "attention=classic", "--out", str(out)],
        capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(out.read_text())
    rows = {r["method"]: r for r in record["requests"]}
    assert list(rows) == ["uce", "esd", "esd:iterations=2"]
    assert rows["esd"]["settings"]["iterations"] == 1000 and rows["esd"]["settings"]["lr"] == 1e-5  # SD_DEFAULTS
    assert set(rows["esd"]["extrapolated_from"]) == {"2", "4"}  # 1000 × 0.002 iterations, and twice that
    assert "extrapolated_from" not in rows["uce"] and all(r["seconds"] > 0 for r in rows.values())
    (smoke,) = record["evaluations"]
    assert smoke["profile"] == "smoke" and smoke["seconds"] > 0 and smoke["dry_run_seconds"] > 0
    assert smoke["images"] == 4 * smoke["images_measured"] > 0  # smoke: 2 prompts x 2 seeds; measured 1 x 1
    assert set(record["board_hours_standard"]) == set()  # no standard profile measured, no board figure
    agreement = record["agreement"]
    assert agreement["images"] == 2 and 0 <= agreement["judge_agreement"] <= 1 and agreement["loss_rel_diff_max"] >= 0
    assert record["switches"] == {"attention": "classic"}
    assert "| esd:iterations=2 (extrapolated) |" in done.stdout and "--dry-run estimate" in done.stdout
