"""`culbench leaderboard export`: the parquet dataset loads with `datasets` and its numbers are
the run folder's own (presence = matrix.csv, final-step metrics = summary.json)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def exported(smoke_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from culbench.leaderboard.export import export

    out = tmp_path_factory.mktemp("export")
    export([smoke_run.parents[3]], out)  # the results root: out/<sequence>/<method>/<profile>/seed<k>
    return out


def _load(out: Path, name: str) -> list[dict]:
    import datasets

    data = datasets.load_dataset("parquet", data_files={name: str(out / f"{name}.parquet")},
                                 cache_dir=str(out / ".hf-cache"))
    return list(data[name])


def test_presence_round_trips_matrix_csv(smoke_run: Path, exported: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    rows = _load(exported, "presence")
    with (smoke_run / "matrix.csv").open(newline="") as handle:
        matrix = list(csv.DictReader(handle))
    assert len(rows) == len(matrix) > 0
    summary = json.loads((smoke_run / "summary.json").read_text())
    for row, cell in zip(sorted(rows, key=lambda r: (r["step"], r["concept"])),
                         sorted(matrix, key=lambda c: (int(c["step"]), c["concept"])), strict=True):
        assert (row["step"], row["concept"], row["role"], row["n"]) == (int(cell["step"]), cell["concept"],
                                                                        cell["role"], int(cell["n"]))
        assert (row["presence"], row["ci_low"], row["ci_high"]) == (float(cell["presence"]),
                                                                    float(cell["ci_low"]), float(cell["ci_high"]))
        assert row["method"] == "original" and row["seed"] == summary["seed"]
        assert row["order"] == ",".join(summary["forget_order"])


def test_runs_carry_identity_and_final_metrics(smoke_run: Path, exported: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    (run,) = _load(exported, "runs")
    summary = json.loads((smoke_run / "summary.json").read_text())
    manifest = json.loads((smoke_run / "manifest.json").read_text())
    assert run["run_id"] == manifest["run_id"] and run["status"] == "complete"
    assert run["sequence"] == summary["sequence"] and run["config_hash"] == summary["config_hash"]
    assert run["sequence_content_hash"] == manifest["identity"]["sequence"]["content_hash"]
    metrics = summary["metrics"]
    final = {k: v[-1] if isinstance(v, list) else v for k, v in metrics.items()}
    assert run["headline_h"] == pytest.approx(final["headline_h"]) and final["headline_h"] is not None
    assert run["ua_cumulative"] == pytest.approx(final["ua_cumulative"])
    assert run["fid_retained_vs_base"] == pytest.approx(summary["quality"]["fid_retained_vs_base"][-1])
    assert "configs:" in (exported / "README.md").read_text()


def test_export_without_runs_is_a_one_line_error(tmp_path: Path) -> None:
    from culbench.errors import RunError
    from culbench.leaderboard.export import export

    with pytest.raises(RunError, match="no run folders"):
        export([tmp_path], tmp_path / "out")


def test_task_prompts_export_loads_with_datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    from culbench.leaderboard.export import export_prompts
    from culbench.tasks import resolve_sequence

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    sequence = resolve_sequence("mock")
    path = export_prompts(sequence, tmp_path)
    rows = list(datasets.load_dataset("parquet", data_files={"prompts": str(path)},
                                      cache_dir=str(tmp_path / ".hf-cache"))["prompts"])
    for concept, prompts in sequence.prompts.items():
        mine = [r for r in rows if r["concept"] == concept]
        assert [r["prompt"] for r in mine if r["split"] == "eval"] == list(prompts.eval)
        assert [(r["prompt"], r["mapped"]) for r in mine if r["split"] == "train"] == \
            [(p.prompt, p.mapped) for p in prompts.train]
        assert {r["role"] for r in mine} == {sequence.roles.get(concept, "")}
    assert {r["sequence"] for r in rows} == {sequence.id}
