"""Progress off a terminal (nohup, SLURM, CI logs): timed plain lines instead of silent bars."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import run_cli
from culbench.cli.progress import LineProgress, interval_from_env


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_lines_are_timed_and_name_every_open_bar() -> None:
    clock, lines = _Clock(), []
    bars = LineProgress(lines.append, every=60, clock=clock)
    outer = bars.add(3, "dfr on toy10")
    inner = bars.add(100, "dfr: iterations")
    clock.now += 30
    inner(10)
    assert lines == []  # under a minute since the start: nothing yet
    clock.now += 30
    inner(10)  # 20 done in 30 s since the first advance (10 in 30 s): 80 left at 3 s each
    assert lines == ["[00:01:00] dfr on toy10 0/3 | dfr: iterations 20/100 20% ~4m left"]
    clock.now += 10
    inner(80)  # finished inner bars close silently between lines
    outer(1)
    assert len(lines) == 1
    clock.now += 3600
    outer(2)  # the outermost bar finishing prints whatever the time
    assert lines[-1] == "[01:01:10] dfr on toy10 3/3 100%"


def test_a_resumed_bar_estimates_from_the_work_done_since_the_jump() -> None:
    clock, lines = _Clock(), []
    bars = LineProgress(lines.append, every=60, clock=clock)
    train = bars.add(10_000, "retrain: UNet without zorb")
    train(9_000)  # a snapshot's steps, counted at once: not this process's rate
    clock.now += 100
    train(200)  # 200 steps in 100 s: 800 left take 400 s
    assert lines == ["[00:01:40] retrain: UNet without zorb 9200/10000 92% ~7m left"]


@pytest.mark.parametrize("value", ["0", "-5", "soon"])
def test_a_bad_interval_is_refused_with_the_fix(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    from culbench.errors import ConfigError

    monkeypatch.setenv("CULBENCH_PROGRESS_EVERY", value)
    with pytest.raises(ConfigError, match="CULBENCH_PROGRESS_EVERY") as caught:
        interval_from_env()
    assert "300" in caught.value.fix


def test_a_logged_run_prints_progress_lines(tmp_path: Path) -> None:
    """`culbench run` with stderr in a file (not a terminal) writes progress lines to it."""
    done = run_cli("run", "--method", "original", "--sequence", "mock", "--profile", "smoke",
                   "--out", str(tmp_path), env={"CULBENCH_PROGRESS_EVERY": "0.001"})
    assert done.returncode == 0, done.stderr
    progress = [line for line in done.stderr.splitlines() if re.match(r"\[\d\d:\d\d:\d\d\] original on mock@1 ", line)]
    assert progress, done.stderr
    assert progress[-1].startswith("[") and " 3/3 100%" in progress[-1], progress[-1]
    assert any(" | " in line and "%" in line for line in progress), progress  # inner bars are named too

    bad = run_cli("run", "--method", "original", "--sequence", "mock", "--profile", "smoke",
                  "--out", str(tmp_path / "bad"), env={"CULBENCH_PROGRESS_EVERY": "soon"})
    assert bad.returncode != 0 and "CULBENCH_PROGRESS_EVERY='soon'" in bad.stderr and "fix:" in bad.stderr
    assert not (tmp_path / "bad").exists()  # refused before anything was written
