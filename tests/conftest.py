"""Shared fixtures: everything offline, on CPU, with the shipped mocks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
HELPERS = Path(__file__).resolve().parent / "helpers"


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """Run ``python -m culbench ARGS`` in a subprocess, as a user would."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "culbench", *args], capture_output=True,
                          text=True, env=full_env, cwd=cwd, timeout=timeout)


def chromium() -> list[str]:
    """The headless Chromium command line (flags included); skips the test where it is not
    installed, fails it on CI (``.ci/run`` installs it)."""
    import shutil

    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing: .ci/run installs it (apt-get install chromium)")
        pytest.skip("chromium not installed here (CI installs it)")
    return [found, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One complete `original` smoke run on the mock sequence, shared by read-only tests."""
    from culbench.runner import run

    out = tmp_path_factory.mktemp("smoke")
    return run("original", sequence="mock", profile="smoke", out=out, threads=2)


@pytest.fixture(scope="session")
def toy10_smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete toy10@2 smoke run of ``original`` (seed 1: order 1), shared by the probe tests;
    a test that writes into a run copies it first."""
    from culbench.runner import run

    out = tmp_path_factory.mktemp("toy10-smoke")
    return run("original", sequence="toy10", profile="smoke", out=out, threads=1, seed=1)


@pytest.fixture(scope="session")
def dfr_mock_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete `dfr` smoke run on the mock sequence: the model really changes."""
    from culbench.runner import run

    out = tmp_path_factory.mktemp("dfr-smoke")
    return run("dfr", sequence="mock", profile="smoke", out=out, threads=2,
               overrides=["dfr.iterations=4", "dfr.lr=1e-2"])
