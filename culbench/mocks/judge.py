"""A deterministic stand-in judge: each concept is a fixed random projection of the image."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import torch

from culbench.api import Concept
from culbench.evaluation.judge import Judge, JudgeOutput


class MockJudge(Judge):
    """``present = <downsampled image − 0.5, w_c> > 0`` with ``w_c`` seeded by the concept id.

    Stable across processes and platforms (crc32, CPU generator), so it exercises the whole
    evaluation path; it knows nothing about what images show.
    """

    name = "mock"

    def __init__(self, *, device: str = "cpu", resolution: int = 4, **_: Any) -> None:
        self.resolution = resolution

    def fingerprint(self) -> dict[str, Any]:
        return {"name": self.name, "impl": f"{__name__}.MockJudge", "resolution": self.resolution}

    def _weights(self, concept_id: str) -> torch.Tensor:
        gen = torch.Generator().manual_seed(zlib.crc32(concept_id.encode()))
        return torch.randn(3 * self.resolution**2, generator=gen)

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The downsampled image as a feature vector (so FID runs in tests)."""
        return torch.nn.functional.adaptive_avg_pool2d(images.float().cpu(), self.resolution).flatten(1)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, concepts: Sequence[Concept]) -> JudgeOutput:
        small = torch.nn.functional.adaptive_avg_pool2d(images.float().cpu(), self.resolution)
        flat = (small - 0.5).flatten(1)
        scores = [float(flat[i] @ self._weights(c.id)) for i, c in enumerate(concepts)]
        return JudgeOutput(
            present=[s > 0 for s in scores], score=scores, detail=[{} for _ in scores]
        )
