"""The command line as a user meets it: one-line errors, no tracebacks, non-zero exits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_unknown_method_suggests_the_close_name(tmp_path: Path) -> None:
    line = _one_line_error(run_cli("run", "--method", "orignal", "--out", str(tmp_path)))
    assert "unknown method 'orignal' (did you mean: original)" in line
    assert "fix:" in line
    assert not any(tmp_path.iterdir())  # nothing was written


def test_malformed_sequence_file_names_file_and_key(tmp_path: Path) -> None:
    import shutil

    from culbench.catalog import PACKAGE_DIR

    root = tmp_path / "seq"
    shutil.copytree(PACKAGE_DIR / "mocks" / "tasks" / "mock", root)
    path = root / "sequence.yaml"
    path.write_text(path.read_text().replace("seeds: [0, 1, 2, 3]", "seeds: []"))
    line = _one_line_error(run_cli("run", "--method", "original", "--sequence", str(path),
                                   "--out", str(tmp_path / "out")))
    assert f"{path}:18: eval.seeds:" in line
    line = _one_line_error(run_cli("tasks", "validate", str(path)))
    assert f"{path}:18: eval.seeds:" in line


def test_bad_override_and_profile(tmp_path: Path) -> None:
    line = _one_line_error(run_cli("run", "--method", "original", "--set", "original.lr=1",
                                   "--out", str(tmp_path)))
    assert "unknown config key 'original.lr'" in line
    line = _one_line_error(run_cli("run", "--method", "original", "--profile", "tiny",
                                   "--out", str(tmp_path)))
    assert "unknown profile 'tiny'" in line


def test_usage_errors_are_one_line() -> None:
    line = _one_line_error(run_cli("run", "--methd", "original"))
    assert line.startswith("error: No such option") and "internal error" not in line
    assert "fix: see `culbench run --help`" in line
    line = _one_line_error(run_cli("methods"))
    assert line.startswith("error: No such command 'methods'"), line
    assert line.endswith("fix: see `culbench --help`"), line
    line = _one_line_error(run_cli("leaderboard", "biuld"))
    assert line.endswith("fix: see `culbench leaderboard --help`"), line


def test_validate_missing_dir(tmp_path: Path) -> None:
    line = _one_line_error(run_cli("validate", str(tmp_path / "nope")))
    assert "does not exist" in line


def test_ls_imports_no_torch() -> None:
    code = ("import sys; from culbench.cli import main\n"
            "try:\n    main(['ls', 'methods'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'ls imported torch'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "original" in done.stdout


def test_ls_methods_name_shows_config_keys_and_docstring() -> None:
    done = run_cli("ls", "methods", "esd")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "--set esd.FIELD=VALUE" in out and "negative_guidance" in out and "xattn | noxattn" in out
    assert "η (SD CompVis: 1" in out  # the field's source comment
    assert "Gandikota" in out  # the docstring with its citation
    line = _one_line_error(run_cli("ls", "methods", "edx"))
    assert "did you mean: esd" in line


def test_ls_runs_shows_progress_and_time_left(smoke_run: Path, tmp_path: Path) -> None:
    import json
    import shutil

    from culbench import runfolder as rf

    root = tmp_path / "results"
    partial = root / "mock@1" / "original" / "smoke" / "seed1"
    shutil.copytree(smoke_run, root / "mock@1" / "original" / "smoke" / "seed0")
    shutil.copytree(smoke_run, partial)
    manifest = json.loads((partial / "manifest.json").read_text())
    manifest.update(status="partial", steps_committed=[0, 1], steps_total=2,
                    compute={"0": {"eval": {"seconds": 10.0}}, "1": {"unlearn": {"seconds": 3590.0},
                                                                  "eval": {"seconds": 10.0}}})
    (partial / "manifest.json").write_text(json.dumps(manifest))
    rf.snapshot_path(partial, 2).parent.mkdir()
    rf.snapshot_path(partial, 2).write_bytes(b"x")
    (root / "mock@1" / "broken" / "smoke" / "seed0").mkdir(parents=True)
    (root / "mock@1" / "broken" / "smoke" / "seed0" / "manifest.json").write_text("{")
    done = run_cli("ls", "runs", str(root))
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line.split() for line in done.stdout.splitlines() if line.strip().startswith("mock@1/")}
    assert rows["mock@1/original/smoke/seed0"][1:3] == ["complete", "3/3"]
    assert rows["mock@1/original/smoke/seed1"][1:5] == ["partial", "2/3", "1h00m", "1h00m"]  # 1 request left
    assert "mock@1/original/smoke/seed1: step 2 in progress, snapshot saved 0 min ago" in done.stdout
    assert rows["mock@1/broken/smoke/seed0"][1] == "unreadable"
    assert "mock@1/broken/smoke/seed0: " in done.stdout and "is corrupt" in done.stdout
    assert "spent in all: 1h" in done.stdout  # the recorded compute of every run, summed
    line = _one_line_error(run_cli("ls", "runs", str(tmp_path / "empty")))
    assert "is not a directory" in line and "culbench ls runs results" in line


def test_tasks_validate_and_ls_sequences() -> None:
    done = run_cli("tasks", "validate")
    assert done.returncode == 0, done.stderr
    assert "ok  mock@1" in done.stdout
    assert "mock" in run_cli("ls", "sequences").stdout


def test_help_ends_with_examples() -> None:
    done = run_cli("run", "--help")
    assert done.returncode == 0
    assert "culbench run --method dfr" in done.stdout


def test_dry_run_prints_the_plan_and_runs_nothing(tmp_path: Path) -> None:
    done = run_cli("run", "--method", "dfr", "--sequence", "mock", "--profile", "smoke", "--dry-run",
                   "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "2 requests:" in done.stdout and "ms/image" in done.stdout and "3 checkpoints x 32 images" in done.stdout
    assert not any(tmp_path.iterdir())


def test_doctor_passes_here_and_names_a_corrupt_asset(monkeypatch) -> None:  # noqa: ANN001
    from culbench.cli import doctor
    from culbench.toyworld import assets

    done = run_cli("doctor")
    assert done.returncode == 0, done.stderr
    assert "ToyWorld weights" in done.stdout and "methods" in done.stdout
    real = assets.expected_sums()
    monkeypatch.setattr(assets, "expected_sums", lambda folder=assets.ASSETS_DIR: {k: "0" * 64 for k in real})
    bad = {f.check: f for f in doctor.findings()}["ToyWorld weights"]
    assert not bad.ok and "sha256" in bad.detail and "fix:" in bad.detail


@pytest.mark.parametrize(("device", "says"), [("tpu", "unknown device 'tpu'"), ("cuda:x", "unknown device"),
                                               ("cuda:99", "cuda:99 requested but")])
def test_bad_device_is_a_one_line_error(device: str, says: str) -> None:
    line = _one_line_error(run_cli("run", "--method", "uce", "--device", device, "--dry-run"))
    assert says in line and "fix:" in line


@pytest.mark.parametrize("option", [("--mode", "parallel"), ("--split", "test"), ("--judge", "nope"), ("--fid", "nope")])
def test_dry_run_checks_what_the_run_checks(option: tuple[str, str]) -> None:
    line = _one_line_error(run_cli("run", "--method", "uce", "--dry-run", *option))
    assert option[1] in line and "fix:" in line
