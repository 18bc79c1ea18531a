"""Inception-v3 pool features for FID on real models (clean-fid's TorchScript network).

clean-fid (github.com/GaParmar/clean-fid) computes FID from the 2048-d pool features of the
TensorFlow Inception-v3 ported to TorchScript (``inception-2015-12-05.pt``). culbench never
downloads it: pass the file (``--fid-option path=FILE``), or keep it where clean-fid caches it
(``/tmp/inception-2015-12-05.pt``) or in ``~/.cache/culbench/``.

Deviation: clean-fid resizes with PIL's bicubic filter on uint8 images; culbench resizes the
float images on the device (``torch`` bicubic with antialiasing) to avoid a CPU round trip per
batch, then quantises to 0..255 as clean-fid's input expects. Values are therefore close to, not
identical with, clean-fid's "clean" mode; compare FIDs only within culbench.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from culbench.errors import CulbenchError

FILENAME = "inception-2015-12-05.pt"
SEARCH = (Path("/tmp") / FILENAME, Path.home() / ".cache" / "culbench" / FILENAME)


def find_weights(path: str | None) -> Path:
    candidates = [Path(path)] if path else [Path(p) for p in filter(None, [os.environ.get("CULBENCH_INCEPTION")])] + list(SEARCH)
    for candidate in candidates:
        if candidate.is_dir():
            candidate = candidate / FILENAME
        if candidate.is_file():
            return candidate
    raise CulbenchError(
        f"Inception weights for FID ({FILENAME}) not found in {', '.join(map(str, candidates))}",
        "download the file once (clean-fid's URL, see docs/sd.md) and pass --fid-option path=FILE, "
        "or run without --fid inception")


class InceptionFeatures:
    """``features(images (B,3,H,W) in [0,1]) -> (B, 2048)``, clean-fid's Inception pool3."""

    def __init__(self, *, device: str = "cpu", path: str | None = None, batch_size: int = 64, **_: Any) -> None:
        from cleanfid.inception_torchscript import InceptionV3W

        weights = find_weights(path)
        try:
            self.net = InceptionV3W(str(weights.parent), download=False, resize_inside=False).to(device).eval()
        except (RuntimeError, ValueError) as exc:
            raise CulbenchError(f"{weights} is not a TorchScript Inception network ({type(exc).__name__})",
                                "download inception-2015-12-05.pt again; the file is corrupt") from None
        self.device, self.batch_size = device, batch_size
        self.sha256 = hashlib.sha256(weights.read_bytes()).hexdigest()

    def fingerprint(self) -> dict[str, Any]:
        return {"name": "inception", "impl": f"{__name__}.InceptionFeatures", "sha256": self.sha256,
                "resize": "torch bicubic antialias 299"}

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        out = []
        for start in range(0, images.shape[0], self.batch_size):
            x = images[start:start + self.batch_size].to(self.device).float().clamp(0, 1)
            x = torch.nn.functional.interpolate(x, size=(299, 299), mode="bicubic", antialias=True, align_corners=False)
            out.append(self.net((x.clamp(0, 1) * 255).round()).float().cpu())
        return torch.cat(out)
