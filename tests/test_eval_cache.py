"""The evaluation cache: reuses only evaluations of bit-identical weights, and a reused
evaluation is byte-identical to one computed afresh."""

from __future__ import annotations

import json
from pathlib import Path

from culbench import runfolder as rf
from culbench.evaluation.cache import EvalCache
from culbench.runner import run
from culbench.tasks import EvalItem

DFR = ["dfr.iterations=2", "dfr.lr=1e-2"]


def _eval_compute(run_dir: Path) -> dict[str, dict]:
    return json.loads((run_dir / "manifest.json").read_text())["compute"]


def _step_bytes(run_dir: Path, step: int) -> tuple[bytes, dict]:
    folder = rf.step_dir(run_dir, step)
    record = json.loads((folder / "step.json").read_text())
    return (folder / "samples.jsonl").read_bytes(), record["cells"]


def test_step_zero_is_shared_across_seeds_and_methods(tmp_path: Path) -> None:
    first = run("dfr", sequence="mock", profile="smoke", out=tmp_path, threads=2, seed=0, overrides=DFR)
    second = run("dfr", sequence="mock", profile="smoke", out=tmp_path, threads=2, seed=1, overrides=DFR)
    assert "cached" not in _eval_compute(first)["0"]["eval"]
    compute = _eval_compute(second)
    assert compute["0"]["eval"]["cached"] is True
    assert not any(compute[str(k)]["eval"].get("cached") for k in (1, 2))  # the weights changed
    assert _step_bytes(first, 0) == _step_bytes(second, 0)
    stored = [p for p in (tmp_path / ".cache" / "eval").iterdir() if not p.name.startswith(".")]
    assert len(stored) == 1  # only the base model's evaluation is kept


def test_cached_evaluation_equals_a_fresh_one(tmp_path: Path) -> None:
    cached = run("original", sequence="mock", profile="smoke", out=tmp_path / "a", threads=2)
    fresh = run("original", sequence="mock", profile="smoke", out=tmp_path / "b", threads=2, eval_cache=False)
    assert [_eval_compute(cached)[s]["eval"].get("cached") for s in "012"] == [None, True, True]
    assert not any(_eval_compute(fresh)[s]["eval"].get("cached") for s in "012")
    assert not (tmp_path / "b" / ".cache" / "eval").exists()
    for step in (0, 1, 2):
        assert _step_bytes(cached, step) == _step_bytes(fresh, step)


def test_a_damaged_entry_is_recomputed(tmp_path: Path) -> None:
    run("original", sequence="mock", profile="smoke", out=tmp_path, threads=2, seed=0)
    entries = [p for p in (tmp_path / ".cache" / "eval").iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1
    samples = entries[0] / "samples.jsonl"
    samples.write_bytes(samples.read_bytes()[:-20])
    again = run("original", sequence="mock", profile="smoke", out=tmp_path, threads=2, seed=1)
    assert "cached" not in _eval_compute(again)["0"]["eval"]  # the damaged entry was not used
    assert _eval_compute(again)["1"]["eval"]["cached"] is True  # step 1 reuses it (unchanged weights)
    # ... and the recomputed evaluation was stored afresh, with its true hash
    assert json.loads((entries[0] / "entry.json").read_text())["files"]["samples.jsonl"] == rf.sha256_file(samples)


class _Evaluator:
    def __init__(self, tag: str) -> None:
        self.tag = tag

    def fingerprint(self) -> dict[str, str]:
        return {"name": "stub", "tag": self.tag}


def _cache(tmp_path: Path, items: list[EvalItem], tag: str = "a", steps: int = 2) -> EvalCache:
    return EvalCache(tmp_path, items=items, sampler={"steps": steps}, model=object(),
                     backend={"name": "toy"}, device="cpu", evaluators=[_Evaluator(tag)], code=[])


def test_the_key_covers_weights_plan_sampler_and_evaluators(tmp_path: Path) -> None:
    items = [EvalItem("c", 0, "a c", 1), EvalItem("c", 0, "a c", 2)]
    base = _cache(tmp_path, items).key("w")
    assert base == _cache(tmp_path, list(items)).key("w")
    assert base != _cache(tmp_path, items).key("w2")
    assert base != _cache(tmp_path, items[:1]).key("w")
    assert base != _cache(tmp_path, items, tag="b").key("w")
    assert base != _cache(tmp_path, items, steps=3).key("w")
