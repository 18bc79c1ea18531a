"""KID beside FID: the paired unbiased estimate is 0 for a set against itself, grows with a
shift, agrees with torchmetrics, and summary.json's values recompute from the stored features."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torchmetrics.image.kid import KernelInceptionDistance, poly_kernel

from culbench.evaluation.quality import kid


def _paired_mmd(a: np.ndarray, b: np.ndarray) -> float:
    """MMD²_u with torchmetrics' kernel, matched pairs (i, i) left out, written out in full."""
    x, y = torch.as_tensor(a), torch.as_tensor(b)
    m = len(x)
    total = 0.0
    for i in range(m):
        for j in range(m):
            if i != j:
                total += float(poly_kernel(x[i:i + 1], x[j:j + 1]) + poly_kernel(y[i:i + 1], y[j:j + 1])
                               - poly_kernel(x[i:i + 1], y[j:j + 1]) - poly_kernel(x[j:j + 1], y[i:i + 1]))
    return total / (m * (m - 1))


def test_kid_of_a_set_against_itself_is_zero_and_a_shift_raises_it() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 16))
    assert kid(x, x) == pytest.approx(0.0, abs=1e-12)
    assert kid(x, x + 0.5) > 0
    assert kid(x, x + 1.0) > kid(x, x + 0.5)
    assert kid(x, x + 0.3) == pytest.approx(_paired_mmd(x, x + 0.3), rel=1e-9)


def test_unpaired_kid_is_torchmetrics_kernel_inception_distance() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(30, 8)), rng.normal(size=(30, 8)) + 0.4
    metric = KernelInceptionDistance(feature=torch.nn.Identity(), subset_size=30, subsets=1)
    metric.update(torch.as_tensor(b), real=True)
    metric.update(torch.as_tensor(a), real=False)
    assert kid(a, b, paired=False) == pytest.approx(float(metric.compute()[0]), rel=1e-9)
    assert np.isfinite(kid(a, b[:20], paired=False))  # unequal sizes: subsets of the smaller size
    with pytest.raises(ValueError):
        kid(a, b[:20])


def test_summary_kid_recomputes_from_stored_features(dfr_mock_run: Path) -> None:
    summary = json.loads((dfr_mock_run / "summary.json").read_text())
    quality = summary["quality"]
    steps = sorted((dfr_mock_run / "steps").iterdir())
    records = [json.loads(line) for line in (steps[0] / "samples.jsonl").read_text().splitlines()]
    retained = np.array([summary["roles"][r["concept"]] != "forget" for r in records])
    feats = [np.load(s / "features.npy").astype(np.float64)[retained] for s in steps]
    assert quality["kid_retained_vs_base"][0] == 0.0
    assert any(v != 0 for v in quality["kid_retained_vs_base"][1:])  # dfr changed the images
    for k, f in enumerate(feats):
        assert quality["kid_retained_vs_base"][k] == pytest.approx(_paired_mmd(f, feats[0]), abs=1e-7)
    if (dfr_mock_run / "reference.npy").is_file():
        real = np.load(dfr_mock_run / "reference.npy").astype(np.float64)[retained]
        assert quality["kid_retained_vs_real"][-1] == pytest.approx(_paired_mmd(feats[-1], real), abs=1e-7)


def test_a_summary_written_before_kid_still_validates(smoke_run: Path, tmp_path: Path) -> None:
    """Runs made before KID existed keep validating; a changed number in them still fails."""
    import shutil

    from culbench.validate import validate_run

    run_dir = Path(shutil.copytree(smoke_run, tmp_path / "run"))
    path = run_dir / "summary.json"
    summary = json.loads(path.read_text())
    assert "kid_retained_vs_base" in summary["quality"]
    for key in ("kid_retained_vs_base", "kid_retained_vs_real"):
        summary["quality"].pop(key, None)
    path.write_text(json.dumps(summary))
    assert validate_run(run_dir) == []
    summary["quality"]["fid_retained_vs_base"][-1] += 1.0
    path.write_text(json.dumps(summary))
    assert validate_run(run_dir) == ["summary.json differs from what the step files give"]
