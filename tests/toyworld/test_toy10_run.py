"""The embedded default: `original` on toy10 with the shipped model and judge."""

from __future__ import annotations

import json
from pathlib import Path

from culbench.runner import DEFAULT_SEQUENCE, run
from culbench.toyworld import assets
from culbench.validate import validate_run


def test_default_sequence_is_toy10() -> None:
    assert DEFAULT_SEQUENCE == "toy10"


def test_shipped_assets_pass_their_checksums() -> None:
    sums = assets.expected_sums()
    assert {"judge.safetensors", "vae.safetensors", "unet.safetensors",
            "text_encoder.safetensors", "clip.safetensors", "toyworld.json"} <= set(sums)
    for name in sums:
        assets.asset_path(name)  # raises on mismatch


def test_original_on_toy10_smoke(tmp_path: Path) -> None:
    run_dir = run("original", sequence="toy10", profile="smoke", out=tmp_path, threads=2)
    assert validate_run(run_dir) == []
    manifest = json.loads((run_dir / "manifest.json").read_text())
    judge = manifest["identity"]["evaluators"][0]
    assert judge["name"] == "toyworld"
    assert judge["weights_sha256"] == assets.sha256(assets.asset_path("judge.safetensors"))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert len(summary["presence"]) == 11 and len(summary["concepts"]) == 38
    assert all(row == summary["presence"][0] for row in summary["presence"])
    quality = summary["quality"]
    # `original` never changes the model: identical images at every step, so FID to the base
    # samples is 0, drift is 0 and CLIP scores repeat; the real-image FID is positive.
    assert quality["fid_retained_vs_base"] == [0.0] * 11
    assert quality["drift_from_base"] == [0.0] * 11
    assert len(set(quality["clip_retained"])) == 1 and quality["clip_forgotten"][0] is None
    assert all(v > 0 for v in quality["fid_retained_vs_real"])
    assert {e["name"] for e in manifest["identity"]["evaluators"]} == {
        "toyworld", "toyworld-clip", "toyworld-renders"}
    assert (run_dir / "reference.npy").is_file()
    assert any((tmp_path / ".cache" / "reference").iterdir())  # computed once, cached
