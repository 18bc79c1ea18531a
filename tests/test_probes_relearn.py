"""The relearn probe: a restoration curve per forgotten concept, recorded and resumable, the same on
every rerun; its comparison with the retrain oracle's record."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from culbench import runfolder as rf
from culbench.errors import CulbenchError
from culbench.probes import run_probes
from culbench.probes.relearn import attack_set, find_oracle_record, relative_to_oracle, steps_to
from culbench.tasks import resolve_sequence

TINY = ["relearn.images=4", "relearn.steps=2", "relearn.checkpoints=2", "relearn.judged=2",
        "relearn.batch_size=2"]


@pytest.fixture(scope="module")
def base_run(toy10_smoke_run: Path) -> Path:
    """The shared toy10@2 smoke run of ``original`` (seed 1: order 1; conftest)."""
    return toy10_smoke_run


def test_relearn_records_a_curve_per_concept_resumes_and_repeats(base_run: Path, tmp_path: Path) -> None:
    run_dir = Path(shutil.copytree(base_run, tmp_path / "run"))
    seq = resolve_sequence("toy10")
    [record] = run_probes(run_dir, ["relearn"], [10], overrides=TINY)
    result = record["result"]
    assert list(result["concepts"]) == seq.orders[1] and result["caption_version"] == 2
    for row in result["concepts"].values():
        assert row["steps"] == [0, 1, 2] and len(row["presence"]) == 3
        assert all(0 <= p <= 1 for p in row["presence"]) and 0 <= row["auc"] <= 1
        assert row["reached"] == (row["steps_to_half"] <= 2) and row["n"] == 2
        assert sum(row["prompt_images"]) == 2 and sum(row["prompt_hits"]) == round(row["presence"][-1] * 2)
    assert set(result["summary"]) == {"final_presence", "auc", "steps_to_half", "reached"}
    path = rf.probe_path(run_dir, "relearn", 10)
    stamp = path.stat().st_mtime_ns
    assert run_probes(run_dir, ["relearn"], [10], overrides=TINY)[0] == record  # recorded: skipped
    assert path.stat().st_mtime_ns == stamp
    path.unlink()
    again = run_probes(run_dir, ["relearn"], [10], overrides=TINY)[0]
    assert again["result"] == result  # deterministic: the same curves from scratch


def test_attack_data_shows_the_concept_under_its_name_and_no_other_forgotten_one() -> None:
    seq = resolve_sequence("toy10")
    images, captions = attack_set(seq, "red", 6, seed=3, version=2)
    assert images.shape == (6, 32, 32, 3) and images.dtype.name == "uint8"
    others = set(seq.steps) - {"red"}
    assert all("red" in c.replace(",", " ").split() and not others & set(c.replace(",", " ").split())
               for c in captions)
    again = attack_set(seq, "red", 6, seed=3, version=2)
    assert (again[0] == images).all() and again[1] == captions
    _, zorb = attack_set(seq, "zorb", 3, seed=0, version=2)
    assert all("zorb" in c for c in zorb)


def test_relearn_config_errors_are_one_line(base_run: Path) -> None:
    with pytest.raises(CulbenchError, match=r"relearn.steps=10 is not a multiple of relearn.checkpoints=4.*fix: "
                                            r"--set relearn.steps=8") as err:
        run_probes(base_run, ["relearn"], [0], overrides=["relearn.steps=10", "relearn.checkpoints=4"])
    assert "\n" not in str(err.value)
    with pytest.raises(CulbenchError, match="relearn.judged=0 must be at least 1"):
        run_probes(base_run, ["relearn"], [0], overrides=["relearn.judged=0"])
    with pytest.raises(CulbenchError, match="relearn.lr=0.0 must be positive"):
        run_probes(base_run, ["relearn"], [0], overrides=["relearn.lr=0"])


def _record(curves: dict[str, list[float]], *, lr: float = 5e-4, step: int = 10) -> dict:
    from culbench.probes.relearn import concept_result

    concepts = {c: concept_result(curve, 12, [True, False], ["a", "b"], 2) for c, curve in curves.items()}
    return {"fingerprint": {"probe": "relearn", "version": 1, "config": {"steps": 12, "lr": lr},
                            "judge": {"name": "toyworld"}},
            "step": step, "result": {"concepts": concepts}}


def test_relative_to_oracle_compares_speed_and_area_per_concept() -> None:
    assert steps_to([0.0, 0.5, 1.0, 1.0], [0, 4, 8, 12], 0.5) == 4.0
    method = _record({"red": [0.0, 0.5, 1.0, 1.0], "star": [0.0, 0.0, 0.0, 0.25]})
    oracle = _record({"red": [0.0, 0.0, 0.25, 0.75], "star": [0.0, 0.0, 0.0, 0.0], "moon": [0.0] * 4})
    red = method["result"]["concepts"]["red"]
    assert red["auc"] == 0.6667 and red["steps_to_half"] == 4.0 and red["reached"]
    star = method["result"]["concepts"]["star"]
    assert star["steps_to_half"] == 16.0 and not star["reached"]  # not within 12 steps: one interval past
    out = relative_to_oracle(method, oracle)
    assert out["concepts"]["red"] == {"auc_gap": 0.4584, "steps_ratio": 0.4}  # oracle: 0.2083, 10 steps
    assert out["concepts"]["star"] == {"auc_gap": 0.0417, "steps_ratio": 1.0} and "moon" not in out["concepts"]
    assert out["summary"]["steps_ratio"] == 0.7
    drawn = _record({"red": [0.5, 1.0, 1.0, 1.0], "star": [0.0] * 4})  # the oracle draws red unattacked
    assert relative_to_oracle(method, drawn)["concepts"]["red"]["steps_ratio"] is None
    with pytest.raises(CulbenchError, match="differ in probe version, config, judge or step"):
        relative_to_oracle(method, _record({"red": [0.0] * 4, "star": [0.0] * 4}, lr=1e-3))
    with pytest.raises(CulbenchError, match="the oracle's record lacks star"):
        relative_to_oracle(method, _record({"red": [0.0] * 4}))


def _fake_run(root: Path, method: str, order: list[str], seed: int, record: dict | None) -> Path:
    run_dir = root / "toy10@2" / method / "standard" / f"seed{seed}"
    run_dir.mkdir(parents=True)
    identity = {"method": {"name": method}, "sequence": {"id": "toy10@2"}, "order": order,
                "mode": "sequential", "profile": {"name": "standard"}, "seed": seed}
    (run_dir / rf.MANIFEST).write_text(json.dumps({"schema_version": rf.SCHEMA_VERSION, "identity": identity}))
    if record is not None:
        rf.write_probe(run_dir, "relearn", 10, record)
    return run_dir


def test_find_oracle_record_matches_sequence_order_step_and_config(tmp_path: Path) -> None:
    seq = resolve_sequence("toy10")
    mine = _record({"red": [0.0] * 4})
    run_dir = _fake_run(tmp_path / "methods", "dfr", seq.orders[0], 0, mine)
    oracles = tmp_path / "oracles"
    assert find_oracle_record(run_dir, 10, [oracles, tmp_path / "methods"]) is None
    wanted = _record({"red": [0.25] * 4})
    _fake_run(oracles, "retrain", seq.orders[1], 1, _record({"red": [0.5] * 4}))  # another order
    _fake_run(oracles / "other", "retrain", seq.orders[0], 0, _record({"red": [0.75] * 4}, lr=1e-3))  # config
    _fake_run(oracles / "x", "original", seq.orders[0], 0, _record({"red": [1.0] * 4}))  # not an oracle
    assert find_oracle_record(run_dir, 10, [oracles]) is None
    _fake_run(oracles / "y", "retrain", seq.orders[0], 2, wanted)
    assert find_oracle_record(run_dir, 10, [oracles]) == wanted
    assert find_oracle_record(run_dir, 5, [oracles]) is None
    damaged = rf.probe_path(oracles / "y" / "toy10@2" / "retrain" / "standard" / "seed2", "relearn", 10)
    damaged.write_text("{half")
    assert find_oracle_record(run_dir, 10, [oracles]) is None and damaged.is_file()  # read only


def test_the_board_reads_relearn_area_and_its_gap_to_the_oracle_under_one_results_root(tmp_path: Path) -> None:
    from culbench.leaderboard.probes import probe_scalar

    seq = resolve_sequence("toy10")
    runs = [_fake_run(tmp_path, "dfr", seq.orders[s], s, _record({"red": [0.0, 0.5, 1.0, 1.0], "star": [0.0] * 4}))
            for s in (0, 1)]
    mean, low, high = probe_scalar(runs, [10, 10], "relearn", "auc", replicates=200)
    auc_red = _record({"red": [0.0, 0.5, 1.0, 1.0]})["result"]["concepts"]["red"]["auc"]
    assert mean == pytest.approx(auc_red / 2) and low <= mean <= high
    assert probe_scalar(runs, [10, 10], "relearn", "auc_gap") == (None, None, None)  # no oracle yet
    for s in (0, 1):
        _fake_run(tmp_path, "retrain", seq.orders[s], s, _record({"red": [0.0] * 4, "star": [0.0] * 4}))
    gap = probe_scalar(runs, [10, 10], "relearn", "auc_gap", replicates=200)
    assert gap[0] == pytest.approx(auc_red / 2)  # star: as slow as the oracle; red: faster by its area
