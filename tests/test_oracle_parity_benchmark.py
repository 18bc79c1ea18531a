"""``benchmarks/oracle_parity.py``: an oracle run's steps against the base model, read from the
step records of a run with gaps, the base model's step 0 taken from another run when it lacks one."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from culbench import runfolder as rf
from culbench.runner import run
from culbench.tasks import resolve_sequence

ROOT = Path(__file__).resolve().parent.parent


def _parity():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location("oracle_parity", ROOT / "benchmarks" / "oracle_parity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.parity_rows


def test_parity_reads_the_forgotten_and_kept_concepts_of_each_step(tmp_path: Path) -> None:
    parity_rows = _parity()
    run_dir = run("original", sequence="mock", profile="smoke", out=tmp_path / "a", threads=1)
    order = resolve_sequence("mock").steps
    rows = parity_rows(run_dir, 0.0)  # `original` forgets nothing: every concept as the base draws it
    assert [r[0] for r in rows] == list(range(1, len(order) + 1)) and all(r[3] == "yes" for r in rows)
    first = rf.read_step(run_dir, 1)["cells"]
    assert rows[0][1] == first[order[0]]["presence"]  # the step-1 concept, still drawn
    gap = tmp_path / "gap"  # steps 0 and 1 missing, as a `--step K` oracle run leaves them
    shutil.copytree(run_dir, gap)
    for k in (0, 1):
        shutil.rmtree(gap / "steps" / f"{k:02d}")
    with pytest.raises(SystemExit, match="pass --base"):
        parity_rows(gap, 0.9)
    assert [r[0] for r in parity_rows(gap, 0.0, base_run=run_dir)] == list(range(2, len(order) + 1))
    record = rf.read_step(gap, 2)  # a kept concept drawn less than the base model draws it: no parity
    kept = next(c for c in record["cells"] if c not in order[:2])
    record["cells"][kept].update(presence=0.0, ci_high=0.2)
    rf.write_json(gap / "steps" / "02" / "step.json", record)
    step2 = parity_rows(gap, 0.5, base_run=run_dir)[0]
    assert step2[0] == 2 and step2[3] == "no" and step2[2][0].startswith(f"{kept} 0.000")
    assert parity_rows(gap, 0.15, base_run=run_dir)[0][3] == "within noise"  # its interval reaches 0.15
