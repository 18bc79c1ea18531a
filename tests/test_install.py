"""Packaging: methods/ and tasks/ ship in a non-editable install; plugins install via pip."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import HELPERS, REPO, run_cli

IGNORE = shutil.ignore_patterns(".venv", ".git", "results", "build", "dist", "*.egg-info",
                                "__pycache__", ".pytest_cache")


def _pip(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.fixture(scope="module")
def wheel_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """culbench built as a wheel and installed (non-editable) into a fresh target folder."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "src"
    shutil.copytree(REPO, source, ignore=IGNORE)
    _pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(root / "dist"), str(source))
    site = root / "site"
    wheel = next((root / "dist").glob("culbench-*.whl"))
    _pip("install", "--no-deps", "--target", str(site), str(wheel))
    return site


def test_wheel_ships_methods_and_tasks(wheel_site: Path, tmp_path: Path) -> None:
    assert (wheel_site / "culbench" / "methods" / "original.py").is_file()
    assert (wheel_site / "culbench" / "mocks" / "tasks" / "mock" / "sequence.yaml").is_file()
    env = {"PYTHONPATH": str(wheel_site)}
    where = subprocess.run(
        [sys.executable, "-c", "import culbench, culbench.methods.original as m; "
         "print(culbench.__file__); print(m.__file__)"],
        capture_output=True, text=True, env={**os.environ, **env}, cwd=tmp_path)
    assert all(line.startswith(str(wheel_site)) for line in where.stdout.split()), where
    listed = run_cli("ls", "methods", env=env, cwd=tmp_path)
    assert listed.returncode == 0 and "original" in listed.stdout
    done = run_cli("run", "--method", "original", "--profile", "smoke", "--quiet",
                   "--out", str(tmp_path / "out"), env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (wheel_site / "culbench" / "toyworld" / "assets" / "unet.safetensors").is_file()
    assert (wheel_site / "culbench" / "toyworld" / "assets" / "v2" / "unet.safetensors").is_file()
    shipped = REPO / "culbench" / "published"  # shared artefacts computed once (the oracle's prior)
    assert all((wheel_site / f.relative_to(REPO)).is_file() for f in shipped.rglob("*") if f.is_file())
    run_dir = tmp_path / "out" / "toy10@2" / "original" / "smoke" / "seed0"
    checked = run_cli("validate", str(run_dir), env=env, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    archived = run_cli("tasks", "validate", str(wheel_site / "culbench" / "tasks" / "archive" / "toy10@1"),
                       env=env, cwd=tmp_path)  # the superseded version ships too
    assert archived.returncode == 0 and "toy10@1" in archived.stdout, archived.stderr


def test_plugin_through_entry_point(tmp_path: Path) -> None:
    source = tmp_path / "plugin"
    shutil.copytree(HELPERS / "plugin_pkg", source, ignore=IGNORE)
    site = tmp_path / "site"
    _pip("install", "--no-deps", "--no-build-isolation", "--target", str(site), str(source))
    env = {"PYTHONPATH": str(site)}
    listed = run_cli("ls", "methods", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "demo_plugin" in listed.stdout and "culbench-demo-plugin==0.3.0" in listed.stdout
    done = run_cli("run", "--method", "demo_plugin", "--profile", "smoke", "--quiet",
                   "--set", "demo_plugin.strength=2", "--out", str(tmp_path / "out"), env=env)
    assert done.returncode == 0, done.stderr
    manifest = next((tmp_path / "out").rglob("manifest.json")).read_text()
    assert '"source": "plugin culbench-demo-plugin==0.3.0"' in manifest
    assert '"strength": 2.0' in manifest
