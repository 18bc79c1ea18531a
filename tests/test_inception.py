"""FID on real models: clean-fid's TorchScript Inception, loaded from a file the user supplies.

The real network cannot be downloaded here, so a stand-in TorchScript module with the same
interface (``layers`` maps a normalised (B, 3, 299, 299) batch to (B, 2048, 1, 1)) is saved
under the real file name; the loading, resizing, identity and the runner path are real.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from culbench.errors import CulbenchError
from culbench.evaluation.inception import FILENAME, InceptionFeatures


class _Layers(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(12, 2048)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)
        return torch.tanh(self.proj(pooled)).view(x.shape[0], 2048, 1, 1)


class _FakeInception(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = _Layers()

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return self.layers(x)


def _write_fake(folder: Path) -> Path:
    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    torch.jit.script(_FakeInception()).save(str(folder / FILENAME))
    return folder / FILENAME


def test_features_and_fingerprint(tmp_path: Path) -> None:
    path = _write_fake(tmp_path)
    net = InceptionFeatures(path=str(path), batch_size=3)
    images = torch.rand(5, 3, 32, 32)
    feats = net.features(images)
    assert feats.shape == (5, 2048) and torch.isfinite(feats).all()
    assert torch.allclose(feats[:2], net.features(images[:2]), atol=1e-4)  # batching does not change rows
    assert len(net.fingerprint()["sha256"]) == 64


def test_missing_or_corrupt_weights_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(CulbenchError, match="not found") as info:
        InceptionFeatures(path=str(tmp_path / "none.pt"))
    assert "--fid-option path=" in info.value.fix
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / FILENAME).write_bytes(b"not a network")
    with pytest.raises(CulbenchError, match="not a TorchScript"):
        InceptionFeatures(path=str(bad / FILENAME))


@pytest.mark.slow  # ~1 min on 2 cores: FID on 2048-d features needs 2048x2048 matrix square roots
def test_run_with_inception_fid(tmp_path: Path) -> None:
    import json

    from culbench.runner import run

    path = _write_fake(tmp_path / "w")
    run_dir = run("original", sequence="mock", profile="smoke", out=tmp_path / "r", threads=2,
                  fid="inception", fid_options={"path": str(path)})
    found = list(run_dir.rglob("features.npy"))
    assert found and np.load(found[0]).shape[1] == 2048
    summary = json.loads((run_dir / "summary.json").read_text())
    assert any(e.get("name") == "inception" for e in summary["evaluators"])
    assert summary["quality"]["fid_retained_vs_base"][0] == pytest.approx(0.0, abs=1e-6)
