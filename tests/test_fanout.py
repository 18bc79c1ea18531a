"""``tools/fanout.py``: parallel ``--step`` jobs, and the deadline triage that stops the jobs
that cannot finish so the others do (run against a fake culbench: seconds, no training)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _fanout(tmp_path: Path, *flags: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "fanout.py"), "--out", str(tmp_path / "res"),
         "--culbench", f"{sys.executable} {ROOT / 'tests' / 'helpers' / 'fake_culbench.py'}",
         "--triage-every", "1", *flags], capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout


def test_jobs_run_in_parallel_and_all_finish(tmp_path: Path) -> None:
    rc, out = _fanout(tmp_path, "--seeds", "0", "1", "--steps", "0", "2", "--workers", "4")
    assert rc == 0 and out.count(": rc 0 after") == 4, out
    assert sorted(p.name for p in (tmp_path / "fanout-logs").iterdir()) == [
        "seed0-step00.log", "seed0-step02.log", "seed1-step00.log", "seed1-step02.log"]


def test_the_deadline_stops_early_what_cannot_finish(tmp_path: Path) -> None:
    """Steps 2 (200 training steps, 2 s) and 30 (3,000: 30 s) with 8 s left: step 30 is stopped
    once its rate is known, long before the deadline; step 2 commits; step 40 is never started."""
    rc, out = _fanout(tmp_path, "--seeds", "0", "--steps", "2", "30", "40", "--workers", "2", "--deadline", "55")
    assert "seed 0 step 2: rc 0" in out, out
    assert "seed 0 step 30: stopped early" in out and "will not fit before the deadline" in out, out
    assert "seed 0 step 40: rc" not in out and "not started (none could finish in time)" in out, out
    assert rc == 0  # nothing failed: what could not finish was not run
