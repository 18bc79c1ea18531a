"""``merged-*`` reference modes: step k is the merge of requests 1..k each served from the base."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from culbench import runfolder as rf
from culbench.catalog import MODELS
from culbench.errors import CulbenchError
from culbench.merging import merge, task_vector
from culbench.runner import run
from culbench.validate import validate_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("merge")
    return {mode: run("finetune", sequence="mock", profile="smoke", out=out, threads=1, mode=mode)
            for mode in ("independent", "merged-ta", "merged-ties")}


def _weights(run_dir: Path, step: int, base: dict[str, torch.Tensor], name: str = rf.WEIGHTS) -> dict:
    return rf.load_weights(rf.step_dir(run_dir, step) / name, base)


def test_each_step_is_the_merge_of_the_independent_checkpoints(runs: dict[str, Path]) -> None:
    base = MODELS.get("mock")(device="cpu").state_dict()
    independent, ta, ties = runs["independent"], runs["merged-ta"], runs["merged-ties"]
    steps = rf.committed_steps(ta)[1:]
    vectors = [task_vector(_weights(independent, k, base), base) for k in steps]
    for k in steps:
        # the request served alone is the independent run's step, bit for bit
        assert torch.equal(torch.cat([v.flatten() for v in task_vector(_weights(ta, k, base, rf.TASK_VECTOR),
                                                                        base).values()]),
                           torch.cat([v.flatten() for v in vectors[k - 1].values()]))
        for run_dir, how in ((ta, "ta"), (ties, "ties")):
            expected = merge(how, base, vectors[:k])
            got = _weights(run_dir, k, base)
            assert all(torch.equal(got[key], expected[key]) for key in base), (how, k)
    assert ta.parents[1].name == "finetune~merged-ta" and validate_run(ta) == []
    assert rf.read_manifest(ties)["identity"]["mode"] == "merged-ties"


def test_a_merged_run_resumes_to_the_same_summary(runs: dict[str, Path], tmp_path: Path) -> None:
    src = runs["merged-ties"]
    shutil.copytree(src.parents[3], tmp_path / "copy")
    moved = tmp_path / "copy" / src.relative_to(src.parents[3])
    for k in rf.committed_steps(moved)[2:]:
        shutil.rmtree(rf.step_dir(moved, k))
    (moved / rf.SUMMARY).unlink()
    run("finetune", sequence="mock", profile="smoke", out=tmp_path / "copy", threads=1, mode="merged-ties")
    fresh, old = (json.loads((d / rf.SUMMARY).read_text()) for d in (moved, src))
    assert {**fresh, "compute": None} == {**old, "compute": None}
    assert [rf.read_step(moved, k)["model_sha256"] for k in rf.committed_steps(moved)] == \
        [rf.read_step(src, k)["model_sha256"] for k in rf.committed_steps(src)]


def test_an_unknown_mode_lists_the_merges(tmp_path: Path) -> None:
    with pytest.raises(CulbenchError, match="unknown mode 'merged-avg'.*merged-uniform, merged-ta, merged-ties"):
        run("finetune", sequence="mock", profile="smoke", out=tmp_path, mode="merged-avg")
