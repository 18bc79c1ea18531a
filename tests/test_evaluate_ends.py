"""``evaluate="ends"``: every step computed, only steps 0 and T evaluated, the same final numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from culbench import runfolder as rf
from culbench.errors import CulbenchError
from culbench.runner import run
from culbench.validate import validate_run


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("ends")
    every = run("finetune", sequence="mock", profile="smoke", out=out, threads=1, split="val")
    ends = run("finetune", sequence="mock", profile="smoke", out=out, threads=1, split="val", evaluate="ends")
    return every, ends


def test_an_ends_run_is_labelled_and_keeps_every_step(pair: tuple[Path, Path]) -> None:
    every, ends = pair
    assert ends.parents[1].name == every.parents[1].name + "~ends"
    manifest = rf.read_manifest(ends)
    assert manifest["identity"]["evaluate"] == "ends" and "evaluate" not in rf.read_manifest(every)["identity"]
    steps = rf.committed_steps(ends)
    assert steps == rf.committed_steps(every) and manifest["status"] == "complete"
    for k in steps:
        mine, theirs = rf.read_step(ends, k), rf.read_step(every, k)
        assert mine["model_sha256"] == theirs["model_sha256"] and mine["drift"] == theirs["drift"]
        if k in (0, steps[-1]):
            assert mine["cells"] == theirs["cells"] and "evaluated" not in mine
        else:
            assert mine["cells"] == {} and mine["evaluated"] is False
            assert not (rf.step_dir(ends, k) / rf.SAMPLES).exists()


def test_an_ends_run_gives_the_same_final_numbers(pair: tuple[Path, Path]) -> None:
    every, ends = pair
    full = json.loads((every / rf.SUMMARY).read_text())
    short = json.loads((ends / rf.SUMMARY).read_text())
    assert short["metrics"]["headline_h"] == full["metrics"]["headline_h"]
    assert short["metrics"]["ua_cumulative"][-1] == full["metrics"]["ua_cumulative"][-1]
    assert short["presence"][-1] == full["presence"][-1] and short["presence"][0] == full["presence"][0]
    assert all(v is None for row in short["presence"][1:-1] for v in row)
    assert all(v is None for v in short["metrics"]["ua_cumulative"][:-1])
    for name, values in short["quality"].items():
        if not name.startswith("drift_"):
            assert values[0] == full["quality"][name][0] and values[-1] == full["quality"][name][-1], name
            assert values[1:-1] == [None] * (len(values) - 2), name
    assert validate_run(ends) == []


def test_an_ends_run_resumes_after_a_deleted_step(pair: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil

    _, ends = pair
    copy = tmp_path / "copy"
    shutil.copytree(ends.parents[3], copy)
    moved = copy / ends.relative_to(ends.parents[3])
    summary = json.loads((moved / rf.SUMMARY).read_text())
    for k in rf.committed_steps(moved)[2:]:
        shutil.rmtree(rf.step_dir(moved, k))
    (moved / rf.SUMMARY).unlink()
    run("finetune", sequence="mock", profile="smoke", out=copy, threads=1, split="val", evaluate="ends")
    again = json.loads((moved / rf.SUMMARY).read_text())
    assert {**again, "compute": None} == {**summary, "compute": None}  # the seconds differ, nothing else


def test_an_unknown_evaluate_value_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(CulbenchError, match="unknown --evaluate 'final'.*all, ends"):
        run("finetune", sequence="mock", profile="smoke", out=tmp_path, evaluate="final")
