"""Image quality per step: FID and KID in an evaluator's feature space, CLIP score, reference images.

The evaluation images of every step are observed while they are judged (no second sampling
pass). What is stored, per step:

- ``features.npy`` — the judge's feature vector of every evaluation image (float16, rows in
  the order of ``samples.jsonl``), when the judge has ``features()``;
- a ``clip`` field on each ``samples.jsonl`` line, when the sequence names a CLIP scorer.

FID and KID are then pure functions of stored features (``frechet``, ``kid``), so they can be
recomputed and bootstrapped offline. The real-image reference (e.g. ToyWorld renders of the very scenes the
evaluation prompts describe) is computed once per sequence × evaluator and cached under the
results root, never per method.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from culbench.tasks import EvalItem


class FeatureCollector:
    """Collects ``extractor(images)`` rows for every observed batch."""

    def __init__(self, extractor: Callable[[Any], Any]) -> None:
        self.extractor = extractor
        self.rows: list[np.ndarray] = []

    def observe(self, images: Any, items: Sequence[EvalItem]) -> None:
        self.rows.append(self.extractor(images).detach().float().cpu().numpy())

    def array(self) -> np.ndarray:
        return np.concatenate(self.rows).astype(np.float32) if self.rows else np.zeros((0, 0), np.float32)


class ClipCollector:
    """CLIP score of every observed image against its own prompt."""

    def __init__(self, scorer: Any) -> None:
        self.scorer = scorer
        self.scores: list[float] = []

    def observe(self, images: Any, items: Sequence[EvalItem]) -> None:
        self.scores.extend(float(s) for s in self.scorer.score(images, [i.prompt for i in items]))


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def load_npy(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False).astype(np.float64)


@dataclass(frozen=True)
class Gaussian:
    """Mean and covariance of a feature set (rows = images); the covariance's square root is
    computed once, on first use, so one reference fit serves many comparisons."""

    mean: np.ndarray
    cov: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> Gaussian:
        x = np.asarray(x, np.float64)
        return cls(x.mean(0), np.cov(x, rowvar=False))

    @cached_property
    def sqrt_cov(self) -> np.ndarray:
        w, v = np.linalg.eigh(self.cov)
        return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_gaussians(a: Gaussian, b: Gaussian) -> float:
    """||μa − μb||² + tr Σa + tr Σb − 2 tr (Σb^½ Σa Σb^½)^½.

    The trace term equals clean-fid's tr sqrtm(Σa Σb) (the two matrices are similar), but comes
    from the eigenvalues of a symmetric matrix: exact for singular covariances and several times
    faster than a general matrix square root, which matters for the bootstrap intervals.
    """
    inner = b.sqrt_cov @ a.cov @ b.sqrt_cov
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0.0, None)).sum()
    diff = a.mean - b.mean
    return max(0.0, float(diff @ diff + np.trace(a.cov) + np.trace(b.cov) - 2.0 * trace_sqrt))


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussian fits of two feature sets (rows = images).

    >>> x = np.random.default_rng(0).normal(size=(500, 8))
    >>> round(frechet(x, x), 6)
    0.0
    >>> frechet(x, x + 1.0) > 7.9   # a mean shift of 1 in 8 dimensions
    True
    """
    return frechet_gaussians(Gaussian.fit(a), Gaussian.fit(b))


def kid(a: np.ndarray, b: np.ndarray, *, paired: bool = True, subsets: int = 100, seed: int = 0) -> float:
    """Kernel Inception Distance between two feature sets (rows = images), in the features given:
    an unbiased estimate of MMD²(a, b) under torchmetrics' polynomial kernel
    k(x, y) = (xᵀy / d + 1)³ (d = feature size; Bińkowski et al. 2018).

    ``paired`` (row i of ``a`` and of ``b`` come from the same prompt and seed, as a step's
    images and step 0's or the reference's are): MMD²_u = Σ_{i≠j} [k(aᵢ,aⱼ) + k(bᵢ,bⱼ) −
    k(aᵢ,bⱼ) − k(aⱼ,bᵢ)] / (m(m−1)) over the whole sets, which leaves out the matched pairs
    k(aᵢ,bᵢ): they are not independent draws, and with them a set against itself scores
    −2/m·(mean k(x,x) − mean k(x,y)) instead of 0. Otherwise torchmetrics'
    ``KernelInceptionDistance`` itself (identity feature extractor, ``subset_size`` = the
    smaller set; one subset = both whole sets when their sizes agree, else ``subsets`` subsets
    drawn with torch seeded by ``seed``). Unbiased, so it can be slightly negative.

    >>> x = np.random.default_rng(0).normal(size=(30, 8))
    >>> kid(x, x)
    0.0
    >>> kid(x, x + 1.0) > 0.5   # a mean shift of 1 in 8 dimensions
    True
    """
    import torch
    from torchmetrics.image.kid import KernelInceptionDistance, poly_kernel

    a_t, b_t = torch.as_tensor(np.asarray(a, np.float64)), torch.as_tensor(np.asarray(b, np.float64))
    if paired:
        m = len(a_t)
        if m != len(b_t) or m < 2:
            raise ValueError(f"paired KID needs two sets of the same size ≥ 2, got {m} and {len(b_t)}")
        off = [poly_kernel(x, y) for x, y in ((a_t, a_t), (b_t, b_t), (a_t, b_t))]
        sums = [k.sum() - k.diagonal().sum() for k in off]
        return float((sums[0] + sums[1] - 2 * sums[2]) / (m * (m - 1)))
    metric = KernelInceptionDistance(feature=torch.nn.Identity(), subset_size=min(len(a_t), len(b_t)),
                                     subsets=1 if len(a_t) == len(b_t) else subsets)
    metric.update(b_t, real=True)
    metric.update(a_t, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, _ = metric.compute()
    return float(mean)


def reference_features(
    reference: Any, judge: Any, items: Sequence[EvalItem], *, sequence_hash: str, cache_root: Path,
) -> np.ndarray:
    """Judge features of the reference's real images for ``items``, cached by content.

    The cache key covers the sequence's content hash, the items (prompts and seeds), and the
    fingerprints of the reference and the judge, so a stale cache cannot be picked up.
    """
    key = hashlib.sha256(json.dumps({
        "sequence": sequence_hash,
        "items": [[i.concept, i.prompt, i.seed] for i in items],
        "reference": reference.fingerprint(),
        "judge": judge.fingerprint(),
    }, sort_keys=True).encode()).hexdigest()[:20]
    path = cache_root / f"{key}.npy"
    if path.is_file():
        try:
            return load_npy(path)
        except (ValueError, OSError):
            path.unlink()  # corrupt cache entry: recompute below
    rows = []
    for start in range(0, len(items), 256):
        chunk = items[start : start + 256]
        rows.append(judge.features(reference.images([i.prompt for i in chunk], [i.seed for i in chunk]))
                    .float().cpu().numpy())
    features = np.concatenate(rows).astype(np.float32)
    cache_root.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(npy_bytes(features))
    os.replace(tmp, path)
    return features.astype(np.float64)
