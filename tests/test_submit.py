"""The submission flow: new-method → check-method → run → submit → leaderboard."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import run_cli


def test_bundle_from_a_finished_run(dfr_mock_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    done = run_cli("submit", str(dfr_mock_run), "--out", str(out))
    assert done.returncode == 0, done.stderr
    text = (out / "SUBMISSION.md").read_text()
    assert "- [ ] Hyperparameters were chosen on validation prompts only" in text
    assert (out / "samples.png").stat().st_size > 1000
    run = next(out.rglob("summary.json")).parent
    assert (run / "steps" / "02" / "samples.jsonl").is_file()
    assert not list(out.rglob("model.safetensors"))  # weights are not part of a bundle
    board = run_cli("leaderboard", "build", str(out))
    assert board.returncode == 0 and "| dfr[iterations=4 lr=0.01] | 0 | self-reported · unranked: 1 seed of 3 |" in board.stdout


def test_submit_refuses_mixed_configurations(smoke_run: Path, dfr_mock_run: Path, tmp_path: Path) -> None:
    done = run_cli("submit", str(smoke_run), str(dfr_mock_run), "--out", str(tmp_path / "b"))
    assert done.returncode != 0 and "differ" in done.stderr and "fix:" in done.stderr


def test_new_method_plugin_end_to_end(tmp_path: Path) -> None:
    made = run_cli("new-method", "my_plugin", "--out", str(tmp_path))
    assert made.returncode == 0, made.stderr
    site = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "install", "--no-deps",
                          "--no-build-isolation", "--target", str(site), str(tmp_path / "culbench-my-plugin")],
                         capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr[-2000:]
    env = {"PYTHONPATH": str(site)}
    checked = run_cli("check-method", "my_plugin", env=env)
    assert checked.returncode == 0 and "FAIL" not in checked.stdout, checked.stdout + checked.stderr
    ran = run_cli("run", "--method", "my_plugin", "--sequence", "mock", "--profile", "smoke", "--quiet",
                  "--out", str(tmp_path / "results"), env=env)
    assert ran.returncode == 0, ran.stderr
    run_dir = tmp_path / "results" / "mock@1" / "my_plugin" / "smoke" / "seed0"
    sub = run_cli("submit", str(run_dir), "--out", str(tmp_path / "submission"), "--no-grid", env=env)
    assert sub.returncode == 0, sub.stderr
    board = run_cli("leaderboard", "build", str(tmp_path / "submission"), env=env)
    assert board.returncode == 0 and "| my_plugin | 0 | self-reported · unranked: 1 seed of 3 |" in board.stdout
