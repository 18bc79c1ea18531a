"""Stream metrics as pure functions of the presence matrix ``P`` (steps × concepts).

Row 0 is the base model; row k the model after request k. ``forget_cols[k-1]`` is the
column of the concept forgotten at step k. Everything here is numpy and side-effect free.

Normalised forms divide by the base presence ``P[0, c]``; a concept the base model never
shows (``P[0, c] = 0``) has no normalised value (NaN) and is left out of means over concepts
instead of counting as perfectly forgotten or lost.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.full(np.shape(num), np.nan), where=den > 0)


def _nanmean(values: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """Mean ignoring NaN; NaN (without a warning) where every value is NaN."""
    values = np.asarray(values, dtype=float)
    count = (~np.isnan(values)).sum(axis=axis)
    total = np.nansum(values, axis=axis)
    return np.divide(total, count, out=np.full(np.shape(total), np.nan), where=count > 0) \
        if np.ndim(total) else (float(total / count) if count else float("nan"))


def new_target_ua(P: np.ndarray, forget_cols: Sequence[int], normalised: bool = True) -> np.ndarray:
    """UA of the concept forgotten at each step k = 1..T: ``1 − P[k, c_k] (/ P[0, c_k])``.

    >>> P = np.array([[0.8, 1.0], [0.2, 1.0], [0.4, 0.5]])
    >>> new_target_ua(P, [0, 1]).round(3).tolist()
    [0.75, 0.5]
    >>> new_target_ua(P, [0, 1], normalised=False).round(3).tolist()
    [0.8, 0.5]
    """
    steps = np.arange(1, len(forget_cols) + 1)
    now = P[steps, list(forget_cols)]
    if not normalised:
        return 1.0 - now
    return 1.0 - np.clip(_safe_ratio(now, P[0, list(forget_cols)]), 0.0, None)


def cumulative_ua(P: np.ndarray, forget_cols: Sequence[int], normalised: bool = True) -> np.ndarray:
    """Mean UA over every concept forgotten so far, at each step k = 1..T.

    >>> P = np.array([[0.8, 1.0], [0.2, 1.0], [0.4, 0.5]])
    >>> cumulative_ua(P, [0, 1]).round(3).tolist()
    [0.75, 0.5]
    """
    out = []
    for k in range(1, len(forget_cols) + 1):
        cols = list(forget_cols[:k])
        now = P[k, cols]
        ua = 1.0 - (np.clip(_safe_ratio(now, P[0, cols]), 0.0, None) if normalised else now)
        out.append(float(_nanmean(ua)))
    return np.array(out)


def retention(P: np.ndarray, cols: Sequence[int], normalised: bool = True) -> np.ndarray:
    """Mean presence of retained concepts ``cols`` at every step 0..T (÷ P0 when normalised).

    >>> P = np.array([[0.5, 1.0], [0.5, 0.5]])
    >>> retention(P, [0, 1]).round(3).tolist()
    [1.0, 0.75]
    >>> retention(P, []).tolist()
    [nan, nan]
    >>> retention(np.array([[0.0, 1.0], [0.5, 0.5]]), [0, 1]).tolist()  # P0 = 0: left out
    [1.0, 0.5]
    """
    if len(cols) == 0:
        return np.full(P.shape[0], np.nan)
    values = P[:, list(cols)]
    if normalised:
        values = _safe_ratio(values, np.broadcast_to(P[0, list(cols)], values.shape))
    return _nanmean(values, axis=1)


def re_emergence(P: np.ndarray, forget_cols: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Rebound of each earlier-forgotten concept: worst ``max_{k>j} P[k,c_j] − P[j,c_j]`` and
    final ``P[T,c_j] − P[j,c_j]``, for the concepts forgotten at steps j = 1..T−1.

    Positive values mean a concept erased at step j came back later.

    >>> P = np.array([[1.0, 1.0, 1.0], [0.1, 1.0, 1.0], [0.4, 0.0, 1.0], [0.2, 0.1, 0.0]])
    >>> worst, final = re_emergence(P, [0, 1, 2])
    >>> worst.round(3).tolist(), final.round(3).tolist()
    ([0.3, 0.1], [0.1, 0.1])
    """
    T = len(forget_cols)
    worst, final = [], []
    for j in range(1, T):
        col = forget_cols[j - 1]
        later = P[j + 1 : T + 1, col]
        worst.append(float(later.max() - P[j, col]))
        final.append(float(P[T, col] - P[j, col]))
    return np.array(worst), np.array(final)


def collateral_damage(P: np.ndarray, cols: Sequence[int]) -> np.ndarray:
    """Cumulative collateral damage ``mean_c (P[0,c] − P[k,c])`` over retained ``cols``, k = 0..T.

    >>> P = np.array([[0.9, 0.5], [0.8, 0.5], [0.5, 0.3]])
    >>> collateral_damage(P, [0, 1]).round(3).tolist()
    [0.0, 0.05, 0.3]
    """
    if len(cols) == 0:
        return np.full(P.shape[0], np.nan)
    values = P[:, list(cols)]
    return (values[0] - values).mean(axis=1)


def retention_forgetting(P: np.ndarray, cols: Sequence[int]) -> np.ndarray:
    """Retention-side forgetting ``mean_c (max_{l<k} P[l,c] − P[k,c])`` at k = 1..T (GEM/RWalk).

    >>> P = np.array([[0.9], [1.0], [0.6]])
    >>> retention_forgetting(P, [0]).round(3).tolist()
    [-0.1, 0.4]
    """
    if len(cols) == 0:
        return np.full(P.shape[0] - 1, np.nan)
    values = P[:, list(cols)]
    return np.array([(values[:k].max(axis=0) - values[k]).mean() for k in range(1, len(values))])


def area_under(curve: np.ndarray) -> float:
    """Normalised area under a per-step curve (trapezoid over k/K, so a constant c gives c).

    >>> area_under(np.array([1.0, 1.0, 1.0]))
    1.0
    >>> area_under(np.array([0.0, 1.0]))
    0.5
    """
    curve = np.asarray(curve, dtype=float)
    if len(curve) < 2:
        return float(curve[0]) if len(curve) else float("nan")
    return float(((curve[1:] + curve[:-1]) / 2).mean())


def harmonic(ua: float, retention: float) -> float:
    """Headline ``2·UA·RA/(UA+RA)``; always report it next to its two components.

    >>> harmonic(0.9, 0.6)
    0.72
    >>> harmonic(0.0, 0.0)
    0.0
    """
    return 0.0 if ua + retention == 0 else round(2 * ua * retention / (ua + retention), 10)
