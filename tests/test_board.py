"""Board specs: a whole leaderboard as data, expanded into checked runs and probe jobs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from culbench.board import board_jobs, load_board
from culbench.errors import CulbenchError

SPEC = """\
sequence: mock
profile: smoke
seeds: [0, 1]
tuning: tuning/mock@1.json
probes: [paraphrase]
rows:
  - method: finetune
  - method: esd
    modes: [sequential, independent]
  - method: original
    tuned: false
"""


def _write(tmp_path: Path, text: str = SPEC) -> Path:
    (tmp_path / "tuning").mkdir(exist_ok=True)
    (tmp_path / "tuning" / "mock@1.json").write_text(json.dumps(
        {"methods": {"finetune": {"budget": 8, "chosen": ["finetune.lr=2e-4"], "record": "x.json"}}}))
    path = tmp_path / "board.yaml"
    path.write_text(text)
    return path


def test_a_board_expands_into_tuned_runs_and_probe_jobs(tmp_path: Path) -> None:
    path = _write(tmp_path)
    jobs = board_jobs(load_board(path), path.parent, out=tmp_path / "res")
    assert [(r.method, r.mode, r.seed) for r in jobs.runs] == [
        ("finetune", "sequential", 0), ("finetune", "sequential", 1),
        ("esd", "sequential", 0), ("esd", "sequential", 1), ("esd", "independent", 0), ("esd", "independent", 1),
        ("original", "sequential", 0), ("original", "sequential", 1)]
    assert jobs.runs[0].overrides == ("finetune.lr=2e-4",) and jobs.runs[2].overrides == ()
    assert jobs.untuned == ["esd"]  # run with its defaults: the index has no pick for it
    assert [(r.method, r.seed, p) for r, p in jobs.probes] == [
        ("finetune", 0, "paraphrase"), ("finetune", 1, "paraphrase"), ("esd", 0, "paraphrase"),
        ("esd", 1, "paraphrase"), ("original", 0, "paraphrase"), ("original", 1, "paraphrase")]


@pytest.mark.parametrize(("text", "message"), [
    (SPEC.replace("seeds:", "sedes:"), r"board.yaml:3: .*unknown key \(did you mean 'seeds'\?\)"),
    (SPEC.replace("method: esd", "method: edd"), "unknown method 'edd'"),
    (SPEC.replace("[sequential, independent]", "[sequential, indep]"), "unknown mode 'indep'"),
    (SPEC.replace("tuning/mock@1.json", "tuning/none.json"), "tuning index .* is unreadable"),
    (SPEC.replace("probes: [paraphrase]", "probes: [paraphrse]"), "unknown probe 'paraphrse'"),
])
def test_a_bad_board_is_one_line_naming_the_fix(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(CulbenchError, match=message):
        board_jobs(load_board(path), path.parent, out=tmp_path / "res")


def test_the_published_board_spec_expands(tmp_path: Path) -> None:
    path = Path(__file__).resolve().parents[1] / "leaderboard" / "boards" / "toy10@2.yaml"
    jobs = board_jobs(load_board(path), path.parent, out=tmp_path)
    methods = {r.method for r in jobs.runs}
    assert {"dfr", "uce", "esd", "original", "retrain"} <= methods
    rows = {(r.method, r.mode) for r in jobs.runs}
    assert all(len([r for r in jobs.runs if (r.method, r.mode) == row]) == 3 for row in rows)  # 3 seeds each


def test_sweep_runs_a_whole_board_and_its_probes(tmp_path: Path) -> None:
    from conftest import run_cli

    spec = SPEC.replace("seeds: [0, 1]", "seeds: [0]").replace("probes: [paraphrase]", "probes: [agreement]")
    spec = spec.replace("    modes: [sequential, independent]\n", "")
    path = _write(tmp_path, spec)
    done = run_cli("sweep", "--board", str(path), "--out", str(tmp_path / "res"), "--threads", "1", timeout=600)
    assert done.returncode == 0, done.stderr
    assert "no tuning pick for esd" in done.stderr  # its runs use the defaults, said once
    assert "agreement: skipped (runs on toyworld; this run is on mock)" in done.stderr
    tuned = tmp_path / "res" / "mock@1"
    assert [p.name for p in sorted(tuned.iterdir()) if not p.name.startswith(".")] == [
        "esd", f"finetune+{_hash('finetune', 'finetune.lr=2e-4')[:8]}", "original"]
    again = run_cli("sweep", "--board", str(path), "--out", str(tmp_path / "res"), "--threads", "1", timeout=600)
    assert again.returncode == 0 and again.stderr.count("already complete") == 3


def _hash(method: str, *overrides: str) -> str:
    from culbench.catalog import METHODS
    from culbench.config import build_config, config_hash, parse_overrides

    return config_hash(build_config(METHODS.get(method).Config, method, parse_overrides(overrides, method)))
