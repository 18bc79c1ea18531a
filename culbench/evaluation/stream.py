"""All stream metrics of a run at once, and their bootstrap confidence intervals.

``stream_metrics`` maps a presence matrix to every metric of ``culbench.evaluation.metrics``
(normalised ÷ P0 and raw). ``bootstrap`` is the one interval construction of every presence
metric, for one run (``summary.json``) and for a leaderboard row of several runs: a cluster
bootstrap that resamples runs and, per concept, evaluation *prompts* (all images of a prompt
move together — they share the prompt's effect — and the same draw holds at every step, since
step k and step 0 see identical noise for identical (prompt, seed)), recomputes the metrics on
each replicate and returns percentile 95 % intervals.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class PromptHits:
    """One run's judged images grouped by evaluation prompt: per concept (columns of ``P``),
    ``hits[c]`` is a ``(steps, prompts)`` array of images judged present and ``images[c]`` the
    ``(prompts,)`` images behind each prompt (its seeds), the same at every step."""

    hits: list[np.ndarray]
    images: list[np.ndarray]

    def presence(self) -> np.ndarray:
        """``P[k, c]`` = hits of concept c at step k over its images.

        >>> PromptHits([np.array([[2, 1], [0, 1]])], [np.array([2, 2])]).presence().tolist()
        [[0.75], [0.25]]
        """
        return np.stack([h.sum(axis=1) / n.sum() for h, n in zip(self.hits, self.images, strict=True)], axis=1)


def draw_prompts(counts: Sequence[int], replicates: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Per concept, ``(replicates, n_c)`` prompt indices drawn with replacement from ``range(n_c)``.

    >>> [d.shape for d in draw_prompts([3, 1], 5, np.random.default_rng(0))]
    [(5, 3), (5, 1)]
    """
    return [rng.integers(0, n, size=(replicates, n)) for n in counts]


def resampled_presence(run: PromptHits, draws: Sequence[np.ndarray]) -> np.ndarray:
    """Presence matrices ``(B, K, C)`` of one run on drawn prompts (all images of a drawn prompt
    together, the same draw at every step), each deviation from the run's own presence scaled by
    √(n_c / (n_c − 1)) and clipped to [0, 1].

    With n_c prompts the plain bootstrap variance of a mean is (n_c − 1)/n_c of the unbiased one;
    the scale removes that bias, which matters at 6 prompts a concept.

    >>> run = PromptHits([np.array([[2, 2, 0], [0, 0, 0]])], [np.array([2, 2, 2])])
    >>> boot = resampled_presence(run, [np.array([[0, 1, 2], [0, 0, 0], [2, 2, 2]])])
    >>> boot[:, 0, 0].round(3).tolist(), boot[:, 1, 0].tolist()
    ([0.667, 1.0, 0.0], [0.0, 0.0, 0.0])
    """
    point = run.presence()
    out = np.empty((len(draws[0]), point.shape[0], len(draws)))
    for c, (h, n, idx) in enumerate(zip(run.hits, run.images, draws, strict=True)):
        drawn = h[:, idx].sum(axis=2) / n[idx].sum(axis=1)  # (K, B)
        scale = math.sqrt(len(n) / (len(n) - 1)) if len(n) > 1 else 1.0
        out[:, :, c] = np.clip(point[:, c : c + 1] + scale * (drawn - point[:, c : c + 1]), 0, 1).T
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


def bootstrap(runs: Sequence[PromptHits], fn: Callable[[int, np.ndarray], dict[str, Value]],
              replicates: int, seed: int = 0) -> dict[str, list[list[float | None]]]:
    """95 % percentile intervals of the mean over runs of every value ``fn(r, P_r)`` returns.

    A cluster bootstrap in two levels. Each replicate draws the runs with replacement and, per
    concept, the prompts with replacement (``resampled_presence``); the runs share one prompt
    draw, since they evaluate the same prompts (a prompt's effect is common to every run), unless
    a concept's prompt counts differ between runs (then each run draws its own). With R runs,
    replicate value = T + √(R/(R − 1))·(mean of the drawn runs' own values − T) + mean of the
    drawn runs' prompt-resampled deviations, T = mean of the runs' own values. One run gives
    the prompt-cluster interval of that run. ``tests/test_intervals.py`` checks the coverage.
    """
    rng = np.random.default_rng(seed)
    R = len(runs)
    points = [fn(r, run.presence()) for r, run in enumerate(runs)]
    counts = [[len(n) for n in run.images] for run in runs]
    shared = all(c == counts[0] for c in counts)
    draws = [draw_prompts(counts[0], replicates, rng)] * R if shared else \
        [draw_prompts(c, replicates, rng) for c in counts]
    resampled = [resampled_presence(run, d) for run, d in zip(runs, draws, strict=True)]
    picks = rng.integers(0, R, size=(replicates, R)) if R > 1 else np.zeros((replicates, 1), int)
    scale = math.sqrt(R / (R - 1)) if R > 1 else 1.0
    own = {name: np.array([np.asarray(p[name], dtype=float) for p in points]) for name in points[0]}
    total = {name: stack.mean(axis=0) for name, stack in own.items()}
    draws_out: dict[str, list[Value]] = {name: [] for name in own}
    for b in range(replicates):
        values = {r: fn(r, resampled[r][b]) for r in set(picks[b].tolist())}
        for name, stack in own.items():
            prompt_part = np.mean([np.asarray(values[r][name], dtype=float) - stack[r] for r in picks[b]], axis=0)
            run_part = stack[picks[b]].mean(axis=0) - total[name]
            draws_out[name].append(total[name] + scale * run_part + prompt_part)
    return {name: percentile_ci(values) for name, values in draws_out.items()}


def _clean(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 6)
