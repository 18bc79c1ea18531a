"""Steps computed alone (``run(steps=...)``, ``culbench run --step``): a from-scratch method's
steps, each from the base model, in any order or in parallel processes, give the run an
uninterrupted one gives."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import run_cli

from culbench import runfolder as rf
from culbench.api import Method
from culbench.catalog import METHODS
from culbench.errors import CulbenchError, RunError
from culbench.runfolder.progress import run_progress
from culbench.runner import run
from culbench.validate import validate_run


class _Stateless(Method):
    """Draws a new cross-attention from the run seed and step (ignores the weights handed in)."""

    @dataclass(frozen=True)
    class Config:
        scale: float = 0.1

    from_scratch = True
    keep_state = False

    def unlearn(self, model, request, ctx):  # noqa: ANN001, ANN201
        import torch

        if self.keep_state:
            ctx.state["seed"] = ctx.run_seed
        fresh, gen = ctx.base_model(), torch.Generator().manual_seed(ctx.run_seed * 100 + ctx.step)
        base = ctx.base_model()
        with torch.no_grad():
            for p, b in zip(fresh.parameters("xattn"), base.parameters("xattn"), strict=True):
                p.copy_(b + self.config.scale * torch.randn(p.shape, generator=gen))
        return fresh


class _Stateful(_Stateless):
    keep_state = True


class _Sequential(_Stateless):
    from_scratch = False


@pytest.fixture
def method():  # noqa: ANN201
    names = {"alone-test-only": _Stateless, "alone-stateful-test-only": _Stateful,
             "alone-sequential-test-only": _Sequential}
    for name, cls in names.items():
        METHODS.register(name)(cls)
    yield "alone-test-only"
    for name in names:
        METHODS._entries.pop(name, None)


def _record(run_dir: Path, k: int) -> dict:
    return json.loads((rf.step_dir(run_dir, k) / "step.json").read_text())


def test_steps_computed_alone_give_the_whole_run(tmp_path: Path, method: str) -> None:
    kw = {"sequence": "mock", "profile": "smoke", "threads": 1, "seed": 3}
    whole = run(method, out=tmp_path / "a", **kw)
    last = json.loads((whole / "manifest.json").read_text())["steps_total"]
    part = run(method, out=tmp_path / "b", steps=[last], **kw)  # ahead of a gap: not counted yet
    manifest = json.loads((part / "manifest.json").read_text())
    assert manifest["steps_committed"] == [] and manifest["status"] == "partial"
    assert str(last) in manifest["compute"] and not (part / "summary.json").exists()
    run(method, out=tmp_path / "b", steps=[0, last], **kw)  # step `last` is not computed again
    manifest = json.loads((part / "manifest.json").read_text())
    assert manifest["steps_committed"] == [0] and set(manifest["compute"]) == {"0", str(last)}
    assert f"steps {last} computed ahead" in run_progress(tmp_path / "b")[0]["note"]
    manifest["device"] = "gpu-box"  # as if the run had been started on another machine
    rf.write_json(part / "manifest.json", manifest)
    logs: list[str] = []
    run(method, out=tmp_path / "b", log=logs.append, **kw)  # a whole run takes the step computed alone
    assert f"step {last}: computed alone earlier, taken as committed" in logs
    manifest = json.loads((part / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["steps_committed"] == list(range(last + 1))
    assert validate_run(part) == []
    for k in range(last + 1):
        assert _record(part, k)["model_sha256"] == _record(whole, k)["model_sha256"]
        assert _record(part, k)["cells"] == _record(whole, k)["cells"]
    assert _record(part, last)["drift"]["from_previous"] is None  # computed from the base alone
    assert (json.loads((part / "summary.json").read_text())["presence"]
            == json.loads((whole / "summary.json").read_text())["presence"])
    assert (part / "matrix.csv").read_text() == (whole / "matrix.csv").read_text()
    compute = json.loads((part / "manifest.json").read_text())["compute"]
    assert compute["1"]["unlearn"]["device"] == "cpu" and "device" not in compute["0"]["eval"]  # 0: "gpu-box"'s
    assert json.loads((part / "summary.json").read_text())["compute"]["devices"] == ["cpu", "gpu-box"]
    assert "devices" not in json.loads((whole / "summary.json").read_text())["compute"]  # one device: not named


def test_steps_alone_refuse_methods_whose_steps_depend(tmp_path: Path, method: str) -> None:
    kw = {"sequence": "mock", "profile": "smoke", "threads": 1, "out": tmp_path}
    with pytest.raises(CulbenchError, match="trains from scratch"):
        run("alone-sequential-test-only", steps=[1], **kw)
    with pytest.raises(CulbenchError, match="not a step of this sequence"):
        run(method, steps=[99], **kw)
    with pytest.raises(RunError, match="keeps state between steps"):
        run("alone-stateful-test-only", steps=[1], **kw)
    from culbench.contract import run_contract

    checks = {c.name: c for c in run_contract("alone-stateful-test-only")}
    assert checks["from_scratch"].ok and "keeps seed in ctx.state, so its steps run in order" in checks["from_scratch"].detail
    done = run_cli("run", "--method", "uce", "--sequence", "mock", "--profile", "smoke",
                   "--out", str(tmp_path), "--step", "1")
    assert done.returncode != 0 and "trains from scratch" in done.stderr and "fix:" in done.stderr


@pytest.mark.slow
def test_retrain_steps_in_parallel_processes_fill_one_run(tmp_path: Path) -> None:
    """Two ``culbench run --step`` processes at once on one run folder (the file lock)."""
    args = [sys.executable, "-m", "culbench", "run", "--method", "retrain", "--profile", "smoke",
            "--out", str(tmp_path), "--threads", "1", "--quiet"]
    procs = [subprocess.Popen([*args, *flags], stderr=subprocess.PIPE, text=True)
             for flags in (["--step", "0", "--step", "2"], ["--step", "1"])]
    for proc in procs:
        assert proc.wait(timeout=900) == 0, proc.stderr.read() if proc.stderr else ""
    run_dir = next(tmp_path.rglob("manifest.json")).parent
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["steps_committed"] == [0, 1, 2] and set(manifest["compute"]) == {"0", "1", "2"}
    rows = (run_dir / "matrix.csv").read_text().splitlines()[1:]
    assert {row.split(",")[0] for row in rows} == {"0", "1", "2"}


def test_steps_computed_on_another_machine_merge_into_the_run(tmp_path: Path, method: str) -> None:
    """``merge_steps``: a copy of the run that computed other steps (a GPU machine's) fills the gaps."""
    from culbench.runner import merge_run as merge_steps

    kw = {"sequence": "mock", "profile": "smoke", "threads": 1}
    whole = run(method, out=tmp_path / "a", **kw)
    last = json.loads((whole / "manifest.json").read_text())["steps_total"]
    here = run(method, out=tmp_path / "b", steps=[0, 1], **kw)
    there = run(method, out=tmp_path / "c", steps=list(range(1, last + 1)), **kw)
    manifest = json.loads((there / "manifest.json").read_text())
    rf.write_json(there / "manifest.json", {**manifest, "device": "gpu-box"})
    assert merge_steps(there, here) == list(range(2, last + 1))  # step 1 was here already
    assert merge_steps(there, here) == []
    merged = json.loads((here / "manifest.json").read_text())
    assert merged["status"] == "complete" and merged["compute"]["2"]["unlearn"]["device"] == "gpu-box"
    assert "device" not in merged["compute"]["1"]["unlearn"]
    assert validate_run(here) == [] and (here / "matrix.csv").read_text() == (whole / "matrix.csv").read_text()
    assert merge_steps(there, tmp_path / "d") == list(range(1, last + 1))  # no run there yet: a copy
    other = run(method, out=tmp_path / "e", steps=[0], **{**kw, "seed": 4})
    with pytest.raises(RunError, match="different runs"):
        merge_steps(other, here)
