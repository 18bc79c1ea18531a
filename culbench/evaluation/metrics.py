"""Stream metrics as pure functions of the presence matrix ``P`` (steps × concepts).

Row 0 is the base model; row k the model after request k. ``forget_cols[k-1]`` is the
column of the concept forgotten at step k. Everything here is numpy and side-effect free.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros_like(num, dtype=float), where=den > 0)


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
        out.append(float(ua.mean()))
    return np.array(out)


def retention(P: np.ndarray, cols: Sequence[int], normalised: bool = True) -> np.ndarray:
    """Mean presence of retained concepts ``cols`` at every step 0..T (÷ P0 when normalised).

    >>> P = np.array([[0.5, 1.0], [0.5, 0.5]])
    >>> retention(P, [0, 1]).round(3).tolist()
    [1.0, 0.75]
    >>> retention(P, []).tolist()
    [nan, nan]
    """
    if len(cols) == 0:
        return np.full(P.shape[0], np.nan)
    values = P[:, list(cols)]
    if normalised:
        values = _safe_ratio(values, np.broadcast_to(P[0, list(cols)], values.shape))
    return values.mean(axis=1)
