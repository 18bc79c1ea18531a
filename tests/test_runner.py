"""The sequence loop: completes, commits atomically, resumes after SIGKILL with identical numbers."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from culbench import runfolder as rf
from culbench.api import Method
from culbench.catalog import METHODS
from culbench.errors import RunError
from culbench.runner import run
from culbench.validate import validate_run
from conftest import HELPERS


def test_smoke_run_is_complete_and_valid(smoke_run: Path) -> None:
    manifest = json.loads((smoke_run / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["steps_committed"] == [0, 1, 2]
    assert manifest["identity"]["sequence"]["id"] == "mock@1"
    assert manifest["identity"]["method"] == {
        "name": "original", "source": "builtin", "config": {},
        "config_hash": manifest["identity"]["method"]["config_hash"]}
    for step in ("0", "1", "2"):
        assert manifest["compute"][step]["eval"]["seconds"] > 0
        assert manifest["compute"][step]["eval"]["peak_rss_mb"] > 0
    assert validate_run(smoke_run) == []
    lines = (smoke_run / "matrix.csv").read_text().splitlines()
    assert lines[0] == "step,concept,role,presence,n,ci_low,ci_high"
    assert len(lines) == 1 + 3 * 8  # 3 steps x 8 concepts of the mock sequence


def test_original_keeps_the_base_model(smoke_run: Path) -> None:
    """The untouched model must see exactly the same verdicts at every step."""
    summary = json.loads((smoke_run / "summary.json").read_text())
    presence = summary["presence"]
    assert presence[0] == presence[1] == presence[2]
    assert summary["metrics"]["ua_cumulative"] == [0.0, 0.0]
    assert summary["n"][0] == [4] * 8  # smoke: 2 prompts x 2 seeds


def test_rerun_of_complete_run_is_a_no_op(smoke_run: Path) -> None:
    before = (smoke_run / "manifest.json").read_text()
    run("original", sequence="mock", profile="smoke", out=smoke_run.parents[3], threads=2)
    assert (smoke_run / "manifest.json").read_text() == before


def test_resume_after_sigkill_gives_identical_summary(tmp_path: Path) -> None:
    script = str(HELPERS / "killer_run.py")
    marker = tmp_path / "marker"
    killed = subprocess.run([sys.executable, script, str(tmp_path / "a"), str(marker)],
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    run_dir = tmp_path / "a" / "mock@1" / "killer" / "smoke" / "seed0"
    assert rf.committed_steps(run_dir) == [0, 1]
    assert not (run_dir / "summary.json").exists()
    assert validate_run(run_dir) != []  # partial
    assert validate_run(run_dir, require_complete=False) == []

    resumed = subprocess.run([sys.executable, script, str(tmp_path / "a"), str(marker)],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    straight = subprocess.run([sys.executable, script, str(tmp_path / "b"), str(marker)],
                              capture_output=True, text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr[-2000:]
    other = tmp_path / "b" / "mock@1" / "killer" / "smoke" / "seed0"
    resumed_summary, straight_summary = (json.loads((d / "summary.json").read_text()) for d in (run_dir, other))
    # wall times and memory differ between any two runs; every other number must be identical
    assert resumed_summary.pop("compute") and straight_summary.pop("compute")
    assert resumed_summary == straight_summary
    for step in (1, 2):
        a = json.loads((rf.step_dir(run_dir, step) / "step.json").read_text())
        b = json.loads((rf.step_dir(other, step) / "step.json").read_text())
        assert a["model_sha256"] == b["model_sha256"]
    # the killer really changed the model (otherwise the comparison proves nothing)
    s0 = json.loads((rf.step_dir(run_dir, 0) / "step.json").read_text())["model_sha256"]
    s2 = json.loads((rf.step_dir(run_dir, 2) / "step.json").read_text())["model_sha256"]
    assert s0 != s2
    assert validate_run(run_dir) == []


def test_a_step_killed_midway_resumes_from_its_snapshot(tmp_path: Path) -> None:
    """StepContext.save_snapshot: the rerun continues step 2 from its last snapshot (iteration 2,
    not 0), deletes the snapshot on commit, and ends bit-identical to an uninterrupted run."""
    script = str(HELPERS / "snapshot_run.py")
    marker, log = tmp_path / "marker", tmp_path / "log"
    run_dir = tmp_path / "a" / "mock@1" / "looper" / "smoke" / "seed0"
    killed = subprocess.run([sys.executable, script, str(tmp_path / "a"), str(marker), str(log)],
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert rf.committed_steps(run_dir) == [0, 1]
    assert rf.snapshot_path(run_dir, 2).is_file()
    assert not rf.snapshot_path(run_dir, 1).exists()  # deleted when step 1 committed
    log.write_text("")
    resumed = subprocess.run([sys.executable, script, str(tmp_path / "a"), str(marker), str(log)],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert log.read_text().split() == ["2:2", "2:3"]  # resumed mid-step 2 (mock has 2 steps)
    unlearn = json.loads((run_dir / "manifest.json").read_text())["compute"]["2"]["unlearn"]
    assert 0 < unlearn["carried_seconds"] < unlearn["seconds"]  # the killed process's share is counted
    assert "carried_seconds" not in json.loads((run_dir / "manifest.json").read_text())["compute"]["1"]["unlearn"]
    assert not (run_dir / "snapshots").exists() or not any((run_dir / "snapshots").iterdir())
    straight = subprocess.run([sys.executable, script, str(tmp_path / "b"), str(marker), str(tmp_path / "log_b")],
                              capture_output=True, text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr[-2000:]
    other = tmp_path / "b" / "mock@1" / "looper" / "smoke" / "seed0"
    steps = rf.committed_steps(run_dir)
    assert steps == rf.committed_steps(other) == [0, 1, 2]
    for step in steps:
        a, b = (json.loads((rf.step_dir(d, step) / "step.json").read_text())["model_sha256"]
                for d in (run_dir, other))
        assert a == b, step
    assert validate_run(run_dir) == []


def test_a_snapshot_from_other_weights_is_ignored(tmp_path: Path) -> None:
    import torch

    from culbench.runfolder import StepSnapshots

    warned: list[str] = []
    first = StepSnapshots(tmp_path, 3, "aaa", log=lambda m: None, warn=warned.append, elapsed=lambda: 5.0)
    assert first.load() is None and not warned  # nothing saved yet
    first.save({"iteration": torch.tensor(5)})
    again = StepSnapshots(tmp_path, 3, "aaa", log=lambda m: None, warn=warned.append, elapsed=lambda: 2.0)
    assert int(again.load()["iteration"]) == 5 and again.carried == 5.0  # the first process's seconds
    again.save({"iteration": torch.tensor(6)})
    assert first.load() is not None and first.carried == 7.0  # 5 carried + 2 of its own
    other = StepSnapshots(tmp_path, 3, "bbb", log=lambda m: None, warn=warned.append, elapsed=lambda: 0.0)
    assert other.load() is None and "other weights" in warned[-1] and other.carried == 0.0
    rf.snapshot_path(tmp_path, 3).write_bytes(b"not a torch file")
    assert first.load() is None and "unreadable" in warned[-1]


def test_resume_refuses_a_different_config(smoke_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    run("original", sequence="mock", profile="smoke", out=out, threads=2)
    manifest_path = out / "mock@1" / "original" / "smoke" / "seed0" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["identity"]["seed"] = 99
    manifest["status"] = "partial"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(RunError, match="different seed"):
        run("original", sequence="mock", profile="smoke", out=out, threads=2)


def test_validate_detects_tampering(tmp_path: Path) -> None:
    out = tmp_path / "r"
    run_dir = run("original", sequence="mock", profile="smoke", out=out, threads=2)
    samples = rf.step_dir(run_dir, 1) / "samples.jsonl"
    samples.write_text(samples.read_text().replace('"present": true', '"present": false', 1))
    problems = validate_run(run_dir)
    assert any("sha256" in p for p in problems)
    assert any("disagrees with samples.jsonl" in p for p in problems)


def test_overrides_change_the_run_directory(tmp_path: Path) -> None:
    from culbench.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown config key 'original.lr'"):
        run("original", sequence="mock", profile="smoke", out=tmp_path, overrides=["original.lr=1"])


def test_a_damaged_step_is_set_aside_and_redone(tmp_path: Path) -> None:
    run_dir = run("finetune", sequence="mock", profile="smoke", out=tmp_path, threads=1)
    step1 = rf.step_dir(run_dir, 1) / "model.safetensors"
    good = step1.read_bytes()
    step1.write_bytes(b"not a checkpoint")
    assert any("does not match its sha256" in p for p in validate_run(run_dir))
    warned: list[str] = []
    run("finetune", sequence="mock", profile="smoke", out=tmp_path, threads=1, warn=warned.append)
    assert len(warned) == 1 and "step 1: model.safetensors does not match its sha256" in warned[0]
    assert validate_run(run_dir) == []  # redone from step 0's weights, complete again
    assert step1.read_bytes() == good  # deterministic: the same checkpoint as the first time
    kept = next((run_dir / "damaged").iterdir())  # nothing is deleted
    assert sorted(p.name for p in kept.iterdir()) == ["01", "02", "summary.json"]
    assert (kept / "01" / "model.safetensors").read_bytes() == b"not a checkpoint"
    run("finetune", sequence="mock", profile="smoke", out=tmp_path, threads=1, warn=warned.append)
    assert len(warned) == 1  # intact now: a no-op


def test_a_missing_step_file_is_redone(tmp_path: Path) -> None:
    run_dir = run("original", sequence="mock", profile="smoke", out=tmp_path, threads=1)
    (rf.step_dir(run_dir, 2) / "samples.jsonl").unlink()
    warned: list[str] = []
    run("original", sequence="mock", profile="smoke", out=tmp_path, threads=1, warn=warned.append)
    assert "step 2: samples.jsonl is missing" in warned[0] and validate_run(run_dir) == []


def test_independent_mode_starts_every_request_from_the_base(tmp_path: Path) -> None:
    seq_dir = run("finetune", sequence="mock", profile="smoke", out=tmp_path, threads=1)
    ind_dir = run("finetune", sequence="mock", profile="smoke", out=tmp_path, threads=1, mode="independent")
    assert ind_dir.parent.parent.name == "finetune~independent"
    assert validate_run(ind_dir) == []
    step = lambda d, k: json.loads((rf.step_dir(d, k) / "step.json").read_text())  # noqa: E731
    # step 1 is the same edit of the same base model; step 2 differs (different starting point)
    assert step(seq_dir, 1)["model_sha256"] == step(ind_dir, 1)["model_sha256"]
    assert step(seq_dir, 2)["model_sha256"] != step(ind_dir, 2)["model_sha256"]
    assert json.loads((ind_dir / "summary.json").read_text())["mode"] == "independent"


def test_a_step_records_the_switches_that_changed_its_arithmetic(tmp_path: Path, monkeypatch) -> None:
    plain = run("finetune", sequence="mock", profile="smoke", out=tmp_path / "a", threads=1)
    monkeypatch.setenv("CULBENCH_CUDA_GRAPH", "1")  # a no-op on CPU, but recorded as set
    graphed = run("finetune", sequence="mock", profile="smoke", out=tmp_path / "b", threads=1)
    unlearn = lambda d: json.loads((d / "manifest.json").read_text())["compute"]["1"]["unlearn"]  # noqa: E731
    assert "settings" not in unlearn(plain)
    assert unlearn(graphed)["settings"] == {"CULBENCH_CUDA_GRAPH": "1"}


def test_checkpoints_are_deltas_from_the_base(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    run_dir = run("uce", sequence="mock", profile="smoke", out=tmp_path, threads=1)
    stored = load_file(str(rf.step_dir(run_dir, 1) / "model.safetensors"))
    assert stored and all(".attn2.to_k." in k or ".attn2.to_v." in k for k in stored)
    assert validate_run(run_dir) == []


def test_simultaneous_mode_erases_all_concepts_so_far_from_the_base(tmp_path: Path) -> None:
    from culbench.tasks import resolve_sequence

    request = resolve_sequence("toy10@1").request(3, simultaneous=True)
    assert [t.concept.id for t in request.all_targets] == ["zorb", "star", "red"] and request.previous == ()
    assert len(request.forget) == sum(len(t.pairs) for t in request.all_targets)
    assert {"cross", "orange", "kix"} <= {r.concept.id for r in request.related}
    for method in ("uce", "dfr"):
        run_dir = run(method, sequence="mock", profile="smoke", out=tmp_path, threads=1, mode="simultaneous")
        assert run_dir.parent.parent.name == f"{method}~simultaneous" and validate_run(run_dir) == []


def test_derived_files_are_rebuilt_on_rerun(tmp_path: Path) -> None:
    run_dir = run("original", sequence="mock", profile="smoke", out=tmp_path, threads=1)
    matrix = (run_dir / "matrix.csv").read_text()
    (run_dir / "matrix.csv").write_text("step,concept\n")
    (run_dir / "summary.json").write_text("{not json")
    (rf.step_dir(run_dir, 2) / "step.json").write_text("{")  # a corrupt record: the step is redone
    warned: list[str] = []
    run("original", sequence="mock", profile="smoke", out=tmp_path, threads=1, warn=warned.append)
    assert "step 2: step.json is corrupt" in warned[0]
    assert (run_dir / "matrix.csv").read_text() == matrix and validate_run(run_dir) == []
    summary = (run_dir / "summary.json").read_text()  # step 2's compute is new
    (run_dir / "matrix.csv").write_text("step,concept\n")
    (run_dir / "summary.json").unlink()
    run("original", sequence="mock", profile="smoke", out=tmp_path, threads=1, warn=warned.append)
    assert warned[-1] == "rebuilt matrix.csv and summary.json from the step files"
    assert (run_dir / "matrix.csv").read_text() == matrix and (run_dir / "summary.json").read_text() == summary


class _Fresh(Method):
    """Draws a new cross-attention from a seed kept in ctx.state (ignores the weights handed in),
    like retrain; fails at the steps listed in ``_FAIL_AT`` (to stop a run part-way)."""

    @dataclass(frozen=True)
    class Config:
        scale: float = 0.1

    from_scratch = True

    def unlearn(self, model, request, ctx):  # noqa: ANN001, ANN201
        import torch

        if ctx.step in _FAIL_AT:
            raise RuntimeError("stopped here by the test")
        seed = ctx.state.setdefault("seed", ctx.seed)
        fresh, gen = model.clone(), torch.Generator().manual_seed(seed + ctx.step)
        base = ctx.base_model()
        with torch.no_grad():
            for p, b in zip(fresh.parameters("xattn"), base.parameters("xattn"), strict=True):
                p.copy_(b + self.config.scale * torch.randn(p.shape, generator=gen))
        return fresh


class _NotFresh(_Fresh):
    from_scratch = False


_FAIL_AT: set[int] = set()


@pytest.mark.parametrize("cls", [_Fresh, _NotFresh])
def test_a_from_scratch_run_resumes_without_its_weights(tmp_path: Path, cls: type) -> None:
    """A method declaring ``from_scratch`` resumes from a run that kept its step records but not
    its weights (e.g. moved between machines), with the same numbers; any other method redoes the
    steps whose weights are missing."""
    name = f"fresh-test-only-{cls.from_scratch}"
    METHODS.register(name)(cls)
    try:
        whole = run(name, sequence="mock", profile="smoke", out=tmp_path / "a", threads=1)
        _FAIL_AT.add(2)
        with pytest.raises(RuntimeError, match="stopped here"):
            run(name, sequence="mock", profile="smoke", out=tmp_path / "b", threads=1)
        _FAIL_AT.clear()
        part = tmp_path / "b" / whole.relative_to(tmp_path / "a")
        (rf.step_dir(part, 1) / rf.WEIGHTS).unlink()
        warned: list[str] = []
        run(name, sequence="mock", profile="smoke", out=tmp_path / "b", threads=1, warn=warned.append)
        assert validate_run(part) == []  # the weights a from-scratch run may drop are not required
        if cls.from_scratch:
            from culbench.submit import bundle

            (rf.step_dir(part, 2) / rf.WEIGHTS).unlink()
            assert validate_run(part) == []
            with pytest.raises(RunError, match="sample grid needs the final weights"):
                bundle([part], tmp_path / "bundle")
            assert not (tmp_path / "bundle").exists()  # refused before writing anything
            bundle([part], tmp_path / "bundle", grid=False)  # everything the leaderboard reads
    finally:
        METHODS._entries.pop(name, None)
        _FAIL_AT.clear()
    record = lambda d, k: json.loads((rf.step_dir(d, k) / "step.json").read_text())  # noqa: E731
    for k in (1, 2):
        assert record(part, k)["model_sha256"] == record(whole, k)["model_sha256"]
        assert record(part, k)["cells"] == record(whole, k)["cells"]
    if cls.from_scratch:
        assert not warned and not (rf.step_dir(part, 1) / rf.WEIGHTS).exists()
        assert record(part, 2)["drift"]["from_previous"] is None  # step 1's weights were gone
        assert record(part, 2)["drift"]["from_base"] == record(whole, 2)["drift"]["from_base"]
        summary = json.loads((part / "summary.json").read_text())
        assert summary["presence"] == json.loads((whole / "summary.json").read_text())["presence"]
    else:
        assert "step 1: model.safetensors is missing" in warned[0]  # redone from step 0


def test_an_unfinished_records_only_run_is_refused(tmp_path: Path) -> None:
    """The published form keeps no step files: an unfinished one has nothing to resume from."""
    METHODS.register("fresh-test-only")(_Fresh)
    try:
        _FAIL_AT.add(2)
        with pytest.raises(RuntimeError, match="stopped here"):
            run("fresh-test-only", sequence="mock", profile="smoke", out=tmp_path, threads=1)
        _FAIL_AT.clear()
        run_dir = tmp_path / "mock@1" / "fresh-test-only" / "smoke" / "seed0"
        for k in (0, 1):
            for path in rf.step_dir(run_dir, k).iterdir():
                if path.name != "step.json":
                    path.unlink()
        with pytest.raises(RunError, match="keeps only its records"):
            run("fresh-test-only", sequence="mock", profile="smoke", out=tmp_path, threads=1)
    finally:
        METHODS._entries.pop("fresh-test-only", None)
        _FAIL_AT.clear()


def test_seeds_run_the_sequence_orders_and_record_them(tmp_path: Path) -> None:
    """Seed s runs order s mod n: the request order, the identity and the summary say which, and a
    merge of that run rebuilds the same summary from the recorded order."""
    import json
    import shutil

    from culbench.catalog import PACKAGE_DIR
    from culbench.runfolder import read_json
    from culbench.runner import merge_run

    root = tmp_path / "mock"
    shutil.copytree(PACKAGE_DIR / "mocks" / "tasks" / "mock", root)
    sequence = root / "sequence.yaml"
    sequence.write_text(sequence.read_text() + "orders:\n  - [red, star]\n  - [star, red]\n")
    first = run("original", sequence=str(sequence), profile="smoke", seed=0, out=tmp_path / "r", threads=2)
    second = run("original", sequence=str(sequence), profile="smoke", seed=1, out=tmp_path / "r", threads=2)
    assert read_json(first / "manifest.json")["identity"]["order"] == ["red", "star"]
    assert read_json(second / "manifest.json")["identity"]["order"] == ["star", "red"]
    assert [read_json(second / "steps" / f"{k:02d}" / "step.json")["concept"] for k in (1, 2)] == ["star", "red"]
    summary = read_json(second / "summary.json")
    assert summary["forget_order"] == ["star", "red"]
    copy = tmp_path / "copy"
    shutil.copytree(second, copy)
    (copy / "summary.json").unlink()
    merge_run(second, copy)
    assert json.loads((copy / "summary.json").read_text())["forget_order"] == ["star", "red"]
