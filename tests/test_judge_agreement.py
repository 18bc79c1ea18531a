"""`culbench judges agree`: a run's final-step images regenerated from its weights, judged twice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import run_cli

from culbench.errors import RunError
from culbench.evaluation.agreement import agreement_rows, cohen_kappa
from culbench.evaluation.judge_agreement import judge_pairs


def test_the_regenerated_final_step_gets_the_verdicts_the_run_stored(dfr_mock_run: Path) -> None:
    result = judge_pairs(dfr_mock_run, per_concept=3, second="mock")
    final = json.loads((dfr_mock_run / "manifest.json").read_text())["steps_total"]
    assert result["step"] == final > 0 and result["method"] == "dfr"
    assert result["stored_match"] == 1.0  # same weights, prompts, seeds, sampler: same images
    concepts = {p["concept"] for p in result["pairs"]}
    assert len(result["pairs"]) == 3 * len(concepts)
    overall = agreement_rows(result["pairs"])[-1]
    assert overall["kind"] == "all" and overall["agreement"] == 1.0  # a judge agrees with itself


def test_the_base_model_is_step_0_and_a_run_without_weights_names_the_fix(dfr_mock_run: Path,
                                                                           tmp_path: Path) -> None:
    assert judge_pairs(dfr_mock_run, step=0, per_concept=1, second="mock")["stored_match"] == 1.0
    copy = shutil.copytree(dfr_mock_run, tmp_path / "published")
    final = json.loads((copy / "manifest.json").read_text())["steps_total"]
    (copy / "steps" / f"{final:02d}" / "model.safetensors").unlink()
    with pytest.raises(RunError, match=f"keeps no weights for step {final}.*--step 0"):
        judge_pairs(copy, per_concept=1, second="mock")
    with pytest.raises(RunError, match="not a run folder"):
        judge_pairs(tmp_path, second="mock")


def test_the_cli_writes_kappa_per_kind_and_per_method(dfr_mock_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "agree.md"
    done = run_cli("judges", "agree", str(dfr_mock_run), "--per-concept", "2", "--second", "mock",
                   "--out", str(out))
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert "method dfr (pooled over its runs)" in text and "| all |" in text and "κ" in text
    assert out.with_suffix(".json").is_file()
    bad = run_cli("judges", "agree", str(dfr_mock_run), "--second-option", "oops")
    assert bad.returncode == 2 and "KEY=VALUE" in bad.stderr


def test_kappa_is_chance_corrected() -> None:
    # 80 % raw agreement is below the 82 % that two raters who say "yes" 90 % of the time reach
    # by chance alone: κ < 0
    a = [True] * 9 + [False]
    b = [True] * 8 + [False, True]
    assert abs(cohen_kappa(a, b) - (0.8 - 0.82) / (1 - 0.82)) < 1e-12
