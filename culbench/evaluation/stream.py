"""All stream metrics of a run at once, and their bootstrap confidence intervals.

``stream_metrics`` maps a presence matrix to every metric of ``culbench.evaluation.metrics``
(normalised ÷ P0 and raw). ``bootstrap`` resamples each concept's evaluation images
(prompt × seed pairs) with replacement — the same draw at every step, since step k and step 0
see identical noise for identical (prompt, seed) — recomputes the metrics on each replicate
and returns percentile 95 % intervals.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from culbench.evaluation import metrics
from culbench.tasks import GENERAL_ROLES

Value = np.ndarray | float


def role_columns(concepts: Sequence[str], roles: Mapping[str, str]) -> dict[str, list[int]]:
    """Column indices per retain group: related, general (all far roles), in/cross-domain."""
    def cols(wanted: Sequence[str]) -> list[int]:
        return [i for i, c in enumerate(concepts) if roles[c] in wanted]

    return {"related": cols(("related",)), "general": cols(GENERAL_ROLES),
            "in_domain": cols(("in_domain",)), "cross_domain": cols(("cross_domain",)),
            "related_held_out": cols(("related_held_out",)), "general_held_out": cols(("general_held_out",))}


def stream_metrics(P: np.ndarray, concepts: Sequence[str], roles: Mapping[str, str],
                   forget_order: Sequence[str]) -> dict[str, Value]:
    """Every stream metric of presence matrix ``P`` (rows = steps 0..T, columns = concepts).

    Per-step lists start at step 1 for UA and re-emergence (one value per earlier-forgotten
    concept), at step 0 for retention and collateral damage, at step 1 for
    retention-side forgetting. ``headline_h`` is the harmonic mean of final cumulative UA and
    the mean of final related and general retention of the *held-out* concepts (scored, never
    given to the method) when the sequence has any, else of the given ones;
    ``headline_h_given`` always uses the given ones. Report H with both of its parts.

    >>> P = np.array([[1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 0.9, 1.0], [0.2, 0.0, 0.8, 1.0]])
    >>> roles = {"a": "forget", "b": "forget", "r": "related", "g": "in_domain"}
    >>> m = stream_metrics(P, ["a", "b", "r", "g"], roles, ["a", "b"])
    >>> m["ua_cumulative"].round(3).tolist(), m["retention_related"].round(3).tolist()
    ([1.0, 0.9], [1.0, 0.9, 0.8])
    >>> m["re_emergence_worst"].tolist(), round(m["headline_h"], 4)
    ([0.2], 0.9)
    >>> held = {**roles, "g": "general_held_out"}
    >>> round(stream_metrics(P, ["a", "b", "r", "g"], held, ["a", "b"])["headline_h"], 4)
    0.9474
    """
    col = {c: i for i, c in enumerate(concepts)}
    forget = [col[c] for c in forget_order[: P.shape[0] - 1]]
    groups = role_columns(concepts, roles)
    retained = groups["related"] + groups["general"] + groups["related_held_out"] + groups["general_held_out"]
    out: dict[str, Value] = {}
    for suffix, norm in (("", True), ("_raw", False)):
        out[f"ua_new{suffix}"] = metrics.new_target_ua(P, forget, normalised=norm)
        out[f"ua_cumulative{suffix}"] = metrics.cumulative_ua(P, forget, normalised=norm)
        for group, cols in groups.items():
            out[f"retention_{group}{suffix}"] = metrics.retention(P, cols, normalised=norm)
    out["collateral_damage"] = metrics.collateral_damage(P, retained)
    out["retention_forgetting"] = metrics.retention_forgetting(P, retained)
    worst, final = metrics.re_emergence(P, forget)
    out["re_emergence_worst"], out["re_emergence_final"] = worst, final
    out["re_emergence_max"] = float(worst.max()) if len(worst) else float("nan")
    for name in ("ua_cumulative", "retention_related", "retention_general",
                 "retention_related_held_out", "retention_general_held_out"):
        out[f"auc_{name}"] = metrics.area_under(out[name])
    ua_final = float(out["ua_cumulative"][-1]) if len(forget) else float("nan")
    out["headline_h_given"] = _headline(out, groups, ua_final, ("related", "general"))
    held = ("related_held_out", "general_held_out")
    out["headline_h"] = _headline(out, groups, ua_final, held) if any(groups[g] for g in held) \
        else out["headline_h_given"]
    return out


def _headline(out: dict[str, Value], groups: dict[str, list[int]], ua_final: float,
              names: tuple[str, str]) -> float:
    """H = harmonic(final cumulative UA, mean final retention of the ``names`` groups present)."""
    finals = [float(out[f"retention_{g}"][-1]) for g in names if groups[g]]
    finals = [v for v in finals if np.isfinite(v)]  # a group absent from the sequence is not a zero
    ret_final = float(np.mean(finals)) if finals else float("nan")
    return metrics.harmonic(ua_final, ret_final) if np.isfinite(ua_final + ret_final) else float("nan")


def resample_presence(hits: Sequence[np.ndarray], replicates: int, seed: int = 0) -> np.ndarray:
    """Bootstrap presence matrices ``(B, K, C)`` from per-concept hit arrays ``(K, n_c)``.

    Each replicate draws every concept's n_c images with replacement, the same draw at every
    step (paired), so differences between steps keep their pairing.

    >>> h = [np.array([[1, 1, 0, 0], [0, 0, 0, 0]], bool)]
    >>> boot = resample_presence(h, 200)
    >>> boot.shape, bool((boot[:, 1, 0] == 0).all()), bool(0.2 < boot[:, 0, 0].mean() < 0.8)
    ((200, 2, 1), True, True)
    """
    rng = np.random.default_rng(seed)
    K = hits[0].shape[0]
    out = np.empty((replicates, K, len(hits)))
    for c, h in enumerate(hits):
        idx = rng.integers(0, h.shape[1], size=(replicates, h.shape[1]))
        out[:, :, c] = h[:, idx].mean(axis=2).T  # (K, B, n) -> (K, B) -> (B, K)
    return out


def percentile_ci(samples: Sequence[Value], level: float = 0.95) -> list[list[float | None]]:
    """Per-element percentile interval ``[[low, high], ...]`` (a scalar gives one pair).

    >>> percentile_ci([np.array([0.0, 1.0]), np.array([1.0, 1.0]), np.array([0.5, 1.0])])
    [[0.025, 0.975], [1.0, 1.0]]
    """
    stack = np.atleast_2d(np.array([np.atleast_1d(np.asarray(s, dtype=float)) for s in samples]))
    alpha = (1 - level) / 2
    with warnings.catch_warnings():  # all-NaN columns (no retained concepts) stay None
        warnings.simplefilter("ignore", RuntimeWarning)
        low = np.nanquantile(stack, alpha, axis=0)
        high = np.nanquantile(stack, 1 - alpha, axis=0)
    return [[_clean(a), _clean(b)] for a, b in zip(low, high, strict=True)]


def bootstrap(hits: Sequence[np.ndarray], fn: Callable[[np.ndarray], dict[str, Value]],
              replicates: int, seed: int = 0) -> dict[str, list[list[float | None]]]:
    """95 % percentile intervals of every value ``fn(P)`` returns, over bootstrap replicates."""
    draws: dict[str, list[Value]] = {}
    for P in resample_presence(hits, replicates, seed):
        for name, value in fn(P).items():
            draws.setdefault(name, []).append(value)
    return {name: percentile_ci(values) for name, values in draws.items()}


def _clean(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 6)
