"""``culbench sweep --launcher ray | slurm``: a sweep's jobs through a Ray cluster started for it
and through submitit (its local executor standing in for SLURM). One job is killed mid-step; the
sweep names it and exits non-zero, and the same command run again resumes it and ends with the
results of a local run. The test methods (``tests/helpers/launch_plugin.py``) are installed as a
plugin, so that the engines' worker processes find them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from conftest import HELPERS, REPO

from culbench import runfolder as rf
from culbench.catalog import METHODS
from culbench.errors import CulbenchError
from culbench.launch import Options, open_engine
from culbench.launch.base import Job, plan, run_job
from culbench.runner import run
from culbench.spec import RunSpec

MOCK = {"sequence": "mock", "profile": "smoke"}
PLUGIN = "plugin culbench-launch-test==0"


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """The test methods installed as a plugin (a ``.dist-info`` folder with their entry points):
    registered here, and in every process started with the environment this returns."""
    root = tmp_path_factory.mktemp("plugin")
    shutil.copy(HELPERS / "launch_plugin.py", root)
    info = root / "culbench_launch_test-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: culbench-launch-test\nVersion: 0\n")
    (info / "entry_points.txt").write_text(
        "[culbench.methods]\nstall = launch_plugin:Stall\nscratch = launch_plugin:Scratch\n")
    sys.path.insert(0, str(root))
    for name in ("stall", "scratch"):
        METHODS.register_lazy(name, f"launch_plugin:{name.title()}", source=PLUGIN)
    path = os.pathsep.join(filter(None, [str(root), str(REPO), os.environ.get("PYTHONPATH")]))
    yield {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    for name in ("stall", "scratch"):
        METHODS.unregister(name)
    sys.path.remove(str(root))
    sys.modules.pop("launch_plugin", None)


@pytest.fixture(scope="module")
def reference(plugin: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sweeps' runs computed here, one after another: a results root to compare with."""
    out = tmp_path_factory.mktemp("reference")
    for seed in (0, 1):
        for method in ("stall", "original"):
            run(method, out=out, seed=seed, threads=1, **MOCK)
        run("scratch", out=out, seed=seed, threads=1, steps=[0, 1, 2], **MOCK)  # as step jobs compute it
    return out


def _same_results(out: Path, reference: Path) -> list[str]:
    """Every run under ``out``: its summary (less its compute) and matrix as the reference's."""
    runs = sorted(p.parent.relative_to(out) for p in out.rglob("summary.json") if ".cache" not in p.parts)
    for name in runs:
        mine, theirs = (json.loads((root / name / "summary.json").read_text()) for root in (out, reference))
        assert mine.pop("compute") and theirs.pop("compute")
        assert mine == theirs, name
        assert (out / name / "matrix.csv").read_text() == (reference / name / "matrix.csv").read_text(), name
    return [str(name) for name in runs]


def _killed_sweep(args: list[str], env: dict[str, str], stalled: Path, run_dir: Path,
                  logs: Path) -> tuple[int, str]:
    """Run ``culbench sweep ARGS``; once stall's seed-0 job waits in step 1 (its run folder has
    step 0 committed), SIGKILL the process its status record names. The exit code and stderr."""
    with (logs / "out").open("w") as out, (logs / "err").open("w") as err:
        sweep = subprocess.Popen([sys.executable, "-m", "culbench", "sweep", *args], env=env, stdout=out, stderr=err)
        try:
            deadline = time.monotonic() + 240
            while not (stalled.exists() and stalled.read_text()):
                assert sweep.poll() is None and time.monotonic() < deadline, (logs / "err").read_text()
                time.sleep(0.2)
            status = json.loads((run_dir.parents[3] / ".launch" / "mock-1.stall.smoke.seed0.json").read_text())
            assert status["pid"] == int(stalled.read_text()) and status["command"][:2] == ["culbench", "run"]
            assert rf.committed_steps(run_dir) == [0]  # mid-step 1
            os.kill(status["pid"], signal.SIGKILL)
            sweep.wait(timeout=240)
        finally:
            if sweep.poll() is None:
                sweep.kill()
                sweep.wait()
    return sweep.returncode, (logs / "err").read_text()


def _check_kill_and_resume(args: list[str], env: dict[str, str], out: Path, reference: Path, tmp: Path) -> str:
    """The killed sweep fails naming the job and the command that resumes it; that command
    finishes every run with the local runs' results. The second sweep's stderr."""
    env = {**env, "CULBENCH_TEST_STALL": str(tmp / "stalled")}
    stall0 = out / "mock@1" / "stall" / "smoke" / "seed0"
    code, err = _killed_sweep(args, env, tmp / "stalled", stall0, tmp)
    assert code == 1, err
    assert "stall seed 0: failed after" in err and "1 of " in err and " jobs failed (stall seed 0: " in err, err
    assert f"rerun the same command to resume: culbench sweep {' '.join(args[:2])}" in err, err
    assert not (stall0 / "summary.json").exists() and (stall0.with_name("seed1") / "summary.json").exists()
    again = subprocess.run([sys.executable, "-m", "culbench", "sweep", *args], env=env, capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "stall seed 1" not in again.stderr  # complete: not submitted again
    log = (out / ".launch" / "mock-1.stall.smoke.seed0.log").read_text().split("stall seed 0 on ")
    assert len(log) == 3 and "step 1/2" in log[1] and "stall on mock@1 2/2" in log[2]  # resumed: 2 steps to do
    assert len(_same_results(out, reference)) == 4
    return again.stderr


def _leftovers(marker: str) -> list[psutil.Process]:
    """Processes still running whose command line names ``marker`` (none should be)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if marker in " ".join(proc.info["cmdline"] or []) and proc.pid != os.getpid():
            found.append(proc)
    return found


def _assert_none_left(marker: str) -> None:
    deadline = time.monotonic() + 20
    while (left := _leftovers(marker)) and time.monotonic() < deadline:
        time.sleep(0.5)
    for proc in left:  # ours: started by this test
        proc.kill()
    assert not left, [p.info["cmdline"] for p in left]


def test_ray_sweep_resumes_a_killed_job_and_fans_out_steps(plugin: dict[str, str], reference: Path,
                                                         tmp_path: Path) -> None:
    """A Ray cluster started by the sweep (2 CPUs here): stall × 2 seeds as whole runs, scratch
    × 2 seeds as one job per step; the killed job's worker is not retried (``--retries 0``)."""
    out = tmp_path / "res"
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's unix socket paths
    args = ["--methods", "stall,scratch", "--seeds", "0,1", "--sequence", "mock", "--profile", "smoke",
            "--out", str(out), "--launcher", "ray", "--retries", "0"]
    try:
        err = _check_kill_and_resume(args, {**plugin, "RAY_TMPDIR": ray_tmp}, out, reference, tmp_path)
        assert "1 jobs on a Ray cluster on this machine" in err, err  # only the killed job was left
        logs = sorted(p.name for p in (out / ".launch").glob("*.scratch.*.log"))
        assert logs == [f"mock-1.scratch.smoke.seed{s}.step{k:02d}.log" for s in (0, 1) for k in (0, 1, 2)]
        manifest = json.loads((out / "mock@1" / "scratch" / "smoke" / "seed0" / "manifest.json").read_text())
        assert manifest["status"] == "complete" and set(manifest["compute"]) == {"0", "1", "2"}
    finally:
        _assert_none_left(ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_slurm_sweep_through_submitit_resumes_a_killed_job(plugin: dict[str, str], reference: Path,
                                                           tmp_path: Path) -> None:
    """submitit's local executor in SLURM's place: one process per job, its log path printed."""
    out = tmp_path / "res"
    args = ["--methods", "stall,original", "--seeds", "0,1", "--sequence", "mock", "--profile", "smoke",
            "--out", str(out), "--launcher", "slurm", "--slurm-cluster", "local"]
    try:
        err = _check_kill_and_resume(args, plugin, out, reference, tmp_path)
        assert "stall seed 0: job " in err and f", log {out / '.launch' / 'slurm'}" in err, err
    finally:
        _assert_none_left(str(out))


def test_plan_has_a_job_per_run_or_per_step_and_skips_what_is_done(plugin: dict[str, str], reference: Path,
                                                                   tmp_path: Path) -> None:
    specs = [RunSpec(m, seed=s, out=tmp_path, **MOCK) for m in ("stall", "scratch") for s in (0, 1)]
    names = [job.name for job in plan(specs, step_jobs=True)]
    assert names[:2] == ["mock-1.stall.smoke.seed0", "mock-1.stall.smoke.seed1"]
    assert names[2:] == [f"mock-1.scratch.smoke.seed{s}.step{k:02d}" for s in (0, 1) for k in (0, 1, 2)]
    assert len(plan(specs, step_jobs=False)) == 4
    run("scratch", out=tmp_path, seed=0, threads=1, steps=[1], **MOCK)
    assert [j.step for j in plan(specs, step_jobs=True) if j.spec.seed == 0 and j.step is not None] == [0, 2]
    done = [RunSpec(m, seed=s, out=reference, **MOCK) for m in ("stall", "scratch") for s in (0, 1)]
    assert plan(done, step_jobs=True) == []
    job = plan([RunSpec("stall", seed=1, out=tmp_path, **MOCK)], step_jobs=True)[0]
    assert job.label == "stall seed 1" and job.spec.out.is_absolute()


def test_a_failing_job_returns_its_one_line_error(plugin: dict[str, str], tmp_path: Path) -> None:
    job = plan([RunSpec("stall", seed=0, out=tmp_path, threads=1, **MOCK)], step_jobs=True)[0]
    job.run_dir.mkdir(parents=True)
    (job.run_dir / "manifest.json").write_text("{not json")
    result = run_job(job)
    assert "error" in result and "fix:" in result["error"] and "\n" not in result["error"]
    status = json.loads(job.status_path.read_text())
    assert status["error"] == result["error"] and status["ended"] >= status["started"]
    assert f"error: {result['error']}" in job.log_path.read_text()


def test_a_missing_engine_names_the_extra_that_installs_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setitem(sys.modules, "submitit", None)
    for launcher in ("ray", "slurm"):
        with pytest.raises(CulbenchError, match=rf"pip install 'culbench\[{launcher}\]'"):
            open_engine(Options(launcher), tmp_path)


def test_merge_copies_the_steps_a_results_root_lacks(plugin: dict[str, str], tmp_path: Path) -> None:
    from conftest import run_cli

    there, here = tmp_path / "there", tmp_path / "here"
    run("scratch", out=there, seed=0, threads=1, steps=[1, 2], **MOCK)
    run("scratch", out=here, seed=0, threads=1, steps=[0], **MOCK)
    done = run_cli("merge", str(there), str(here), env={"PYTHONPATH": plugin["PYTHONPATH"]})
    assert done.returncode == 0, done.stderr
    assert "mock@1/scratch/smoke/seed0: steps 1, 2" in done.stdout
    assert (here / "mock@1" / "scratch" / "smoke" / "seed0" / "summary.json").is_file()
    empty = run_cli("merge", str(tmp_path / "none"), str(here))
    assert empty.returncode != 0 and "no runs under" in empty.stderr and "fix:" in empty.stderr


def test_the_job_view_off_a_terminal_says_each_change_once(tmp_path: Path) -> None:
    from rich.console import Console

    from culbench.launch.base import Engine
    from culbench.launch.track import Tracker
    from culbench.launch.view import View

    class Fake(Engine):
        def __init__(self) -> None:
            self.ended: dict[int, dict] = {}

        def poll(self) -> dict[int, dict]:
            ended, self.ended = self.ended, {}
            return ended

    jobs = [Job(RunSpec(m, out=tmp_path, **MOCK), tmp_path / "mock@1" / m / "smoke" / "seed0", tmp_path, 2)
            for m in ("uce", "dfr")]
    engine, lines = Fake(), []
    console = Console(file=None, force_terminal=False, width=200)
    console.print = lambda text, **kw: lines.append(str(text))  # type: ignore[method-assign]
    tracker = Tracker(jobs, engine)
    jobs[0].status_path.parent.mkdir()
    with View(console, every=3600) as view:
        view.show(tracker)
        rf.write_json(jobs[0].status_path, {"host": "node7", "pid": 1, "started": time.time()})
        view.show(tracker)
        view.show(tracker)
        engine.ended = {0: {"run_dir": "x"}, 1: {"error": "it broke; fix: mend it"}}
        tracker.poll()
        view.show(tracker)
    said = [line.partition("] ")[2] for line in lines]
    assert said[0] == "uce seed 0: running on node7" and said[1].startswith("uce seed 0: done in")
    assert said[2] == "dfr seed 0: failed after 0s: it broke; fix: mend it"
    assert said[3] == "1 done, 1 failed of 2 jobs; 0s elapsed" and len(said) == 4
    assert tracker.failures() == [(jobs[1], "it broke; fix: mend it")]
