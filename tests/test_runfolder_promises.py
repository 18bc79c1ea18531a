"""The run folder's promise: killed or damaged at any point, a rerun gives the same result or a
one-line error naming the fix.

A kill is simulated by raising :class:`Killed` (a ``BaseException`` nothing in culbench catches)
just before the N-th ``os.replace`` of a run, for every N: every file culbench writes (step
directories, manifest, matrix, summary, eval cache, snapshots) lands through ``os.replace``, so
the points between two writes are every state a SIGKILL can leave behind.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from culbench import runfolder as rf
from culbench.errors import CulbenchError
from culbench.runner import run
from culbench.validate import validate_run

RUN = {"sequence": "mock", "profile": "smoke", "threads": 1}


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after the kill point runs."""


def _writes(monkeypatch: pytest.MonkeyPatch, kill_at: int | None) -> Callable[[], int]:
    """Count ``os.replace`` calls; raise :class:`Killed` before call number ``kill_at``."""
    real, calls = os.replace, [0]

    def replace(src: object, dst: object) -> None:
        calls[0] += 1
        if calls[0] == kill_at:
            raise Killed
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    return lambda: calls[0]


def _records(run_dir: Path) -> Iterator[tuple[str, bytes]]:
    """Every file of the run that must come out the same: step records and files, the matrix."""
    for path in sorted((run_dir / "steps").rglob("*")):
        if path.is_file():
            yield str(path.relative_to(run_dir)), path.read_bytes()
    yield "matrix.csv", (run_dir / "matrix.csv").read_bytes()


def _summary(run_dir: Path) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    summary.pop("compute")  # seconds differ from run to run
    return summary


@pytest.mark.parametrize("method", ["finetune", "sa"])
def test_killed_before_any_write_a_rerun_gives_the_same_run(tmp_path: Path, method: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        count = _writes(patch, None)
        whole = run(method, out=tmp_path / "whole", **RUN)
        total = count()
    assert total > 10
    expected, summary = list(_records(whole)), _summary(whole)
    for n in range(1, total + 1):
        out = tmp_path / f"kill{n}"
        with monkeypatch.context() as patch, pytest.raises(Killed):
            _writes(patch, n)
            run(method, out=out, **RUN)
        run_dir = run(method, out=out, **RUN)
        assert validate_run(run_dir) == [], f"killed before write {n}"
        assert list(_records(run_dir)) == expected, f"killed before write {n}"
        assert _summary(run_dir) == summary, f"killed before write {n}"


def test_a_deleted_step_is_redone_with_the_steps_after_it(tmp_path: Path) -> None:
    run_dir = run("finetune", out=tmp_path, **RUN)
    expected = list(_records(run_dir))
    shutil.rmtree(rf.step_dir(run_dir, 1))
    warned: list[str] = []
    run("finetune", out=tmp_path, warn=warned.append, **RUN)
    assert "step 1 is missing" in warned[0]
    assert validate_run(run_dir) == [] and list(_records(run_dir)) == expected


def test_a_deleted_last_step_is_redone(tmp_path: Path) -> None:
    run_dir = run("finetune", out=tmp_path, **RUN)
    expected = list(_records(run_dir))
    shutil.rmtree(rf.step_dir(run_dir, 2))
    run("finetune", out=tmp_path, **RUN)
    assert validate_run(run_dir) == [] and list(_records(run_dir)) == expected


def test_a_damaged_samples_file_is_reported_not_crashed_on(tmp_path: Path) -> None:
    run_dir = run("original", out=tmp_path, **RUN)
    (rf.step_dir(run_dir, 1) / "samples.jsonl").write_bytes(b"\xff{not json\n")
    problems = validate_run(run_dir)
    assert "step 1: samples.jsonl does not match its sha256" in problems
    assert "step 1: samples.jsonl is unreadable" in problems


@pytest.mark.parametrize("options, message", [
    ({"seed": -1}, "bad seed -1"),
    ({"overrides": ["finetune.lr=nan"]}, "must be a finite number"),
    ({"threads": 0}, "bad --threads 0"),
])
def test_bad_numbers_fail_before_anything_runs(tmp_path: Path, options: dict, message: str) -> None:
    with pytest.raises(CulbenchError, match=message):
        run("finetune", out=tmp_path, **{**RUN, **options})
    assert not any(tmp_path.iterdir())


def test_an_out_that_is_a_file_fails_before_anything_runs(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(CulbenchError, match="is a file, not a folder"):
        run("original", out=tmp_path / "file" / "below", **RUN)


def test_an_edited_step_record_is_detected_and_redone(tmp_path: Path) -> None:
    run_dir = run("finetune", out=tmp_path, **RUN)
    expected = list(_records(run_dir))
    path = rf.step_dir(run_dir, 1) / "step.json"
    record = json.loads(path.read_text())
    next(iter(record["cells"].values()))["presence"] = 0.123
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    assert "step 1: step.json was edited (it does not match its record_sha256)" in validate_run(run_dir)
    warned: list[str] = []
    run("finetune", out=tmp_path, warn=warned.append, **RUN)
    assert "step 1: step.json was edited" in warned[0]
    assert validate_run(run_dir) == [] and list(_records(run_dir)) == expected


def _as_schema_1(run_dir: Path) -> None:
    for path in (run_dir / "steps").glob("*/step.json"):
        record = json.loads(path.read_text())
        del record["record_sha256"]
        rf.write_json(path, {**record, "schema_version": 1})
    for name in ("manifest.json", "summary.json"):
        rf.write_json(run_dir / name, {**json.loads((run_dir / name).read_text()), "schema_version": 1})


def test_a_schema_1_run_is_refused_until_migrated(tmp_path: Path) -> None:
    from culbench.errors import RunError
    from culbench.runfolder.migrate import migrate

    run_dir = run("original", out=tmp_path, **RUN)
    expected, summary = list(_records(run_dir)), _summary(run_dir)
    _as_schema_1(run_dir)
    with pytest.raises(RunError, match="culbench migrate"):
        run("original", out=tmp_path, **RUN)
    assert "culbench migrate" in validate_run(run_dir)[0]
    assert migrate(run_dir) == 1 and migrate(run_dir) is None
    assert list(_records(run_dir)) == expected and _summary(run_dir) == summary
    assert validate_run(run_dir) == []


def test_an_unknown_option_of_the_python_call_names_the_close_one(tmp_path: Path) -> None:
    with pytest.raises(CulbenchError, match="unknown option 'profle' \\(did you mean 'profile'\\?\\)"):
        run("original", out=tmp_path, sequence="mock", profle="smoke")


def test_a_corrupt_manifest_names_the_fix_that_keeps_the_steps(tmp_path: Path) -> None:
    from culbench.errors import RunError

    run_dir = run("finetune", out=tmp_path, **RUN)
    expected = list(_records(run_dir))
    (run_dir / "manifest.json").write_text("{not json")
    with pytest.raises(RunError, match="move .*manifest.json away and rerun"):
        run("finetune", out=tmp_path, **RUN)
    (run_dir / "manifest.json").unlink()
    run("finetune", out=tmp_path, **RUN)
    assert validate_run(run_dir) == [] and list(_records(run_dir)) == expected
