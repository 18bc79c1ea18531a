"""Image quality per step: FID in an evaluator's feature space, CLIP score, reference images.

The evaluation images of every step are observed while they are judged (no second sampling
pass). What is stored, per step:

- ``features.npy`` — the judge's feature vector of every evaluation image (float16, rows in
  the order of ``samples.jsonl``), when the judge has ``features()``;
- a ``clip`` field on each ``samples.jsonl`` line, when the sequence names a CLIP scorer.

FID is then a pure function of stored features (``frechet``), so it can be recomputed and
bootstrapped offline. The real-image reference (e.g. ToyWorld renders of the very scenes the
evaluation prompts describe) is computed once per sequence × evaluator and cached under the
results root, never per method.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable, Sequence
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


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussian fits of two feature sets (rows = images).

    >>> x = np.random.default_rng(0).normal(size=(500, 8))
    >>> round(frechet(x, x), 6)
    0.0
    >>> frechet(x, x + 1.0) > 7.9   # a mean shift of 1 in 8 dimensions
    True
    """
    import warnings

    from cleanfid.fid import frechet_distance

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    with warnings.catch_warnings():  # clean-fid passes scipy's deprecated sqrtm(disp=...)
        warnings.simplefilter("ignore", DeprecationWarning)
        value = frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    return max(0.0, float(np.real(value)))


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
