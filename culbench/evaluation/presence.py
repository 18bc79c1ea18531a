"""One row of the presence matrix: sample every concept's fixed prompt × seed list and judge it.

``P[k, c]`` is the share of concept c's evaluation images that the judge says show c.
Fails closed: a cell with fewer judged images than expected stops the step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from culbench.errors import RunError
from culbench.evaluation.judge import Judge
from culbench.profiles import Profile
from culbench.tasks import EvalItem, TaskSequence


@dataclass(frozen=True)
class Cell:
    """One concept at one step."""

    role: str
    presence: float
    n: int
    n_expected: int
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "presence": self.presence,
            "n": self.n,
            "n_expected": self.n_expected,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
        }


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval of a binomial rate.

    >>> wilson_interval(0, 0)
    (0.0, 1.0)
    >>> [round(v, 4) for v in wilson_interval(8, 10)]
    [0.4902, 0.9433]
    """
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def plan(sequence: TaskSequence, profile: Profile) -> list[EvalItem]:
    """The images a step evaluates under ``profile`` (identical for every step and method)."""
    return sequence.eval_items(profile.prompts_per_concept, profile.seeds_per_prompt)


def evaluate_presence(
    model: Any,
    judge: Judge,
    sequence: TaskSequence,
    profile: Profile,
    progress: Callable[[int, str], Callable[..., None]] | None = None,
    observers: Sequence[Any] = (),
) -> tuple[dict[str, Cell], list[dict[str, Any]]]:
    """Sample and judge every evaluation image; return the cells and per-image records.

    Each of ``observers`` has ``observe(images, items)`` called on every sampled batch (in
    record order), e.g. to collect FID features or CLIP scores from the same images.
    """
    items = plan(sequence, profile)
    steps = profile.sample_steps or sequence.spec.eval.sampler.steps
    guidance = sequence.spec.eval.sampler.guidance
    advance = progress(len(items), "evaluating") if progress else (lambda n=1: None)
    records: list[dict[str, Any]] = []
    for start in range(0, len(items), profile.batch_size):
        chunk = items[start : start + profile.batch_size]
        images = model.sample(
            [i.prompt for i in chunk], [i.seed for i in chunk], steps=steps, guidance=guidance
        )
        verdict = judge(images, [sequence.concepts[i.concept] for i in chunk])
        if not (len(verdict.present) == len(verdict.score) == len(chunk)):
            raise RunError(
                f"judge '{judge.name}' returned {len(verdict.present)} verdicts for {len(chunk)} images",
                "fix the judge: one verdict per image",
            )
        for observer in observers:
            observer.observe(images, chunk)
        details = verdict.detail or [{} for _ in chunk]
        for item, present, score, detail in zip(chunk, verdict.present, verdict.score, details):
            if not math.isfinite(score):
                raise RunError(
                    f"judge '{judge.name}' gave a non-finite score for {item.concept} "
                    f"prompt {item.prompt_index} seed {item.seed}",
                    "check the model's samples (NaN weights?) and the judge",
                )
            records.append(
                {
                    "concept": item.concept,
                    "prompt_index": item.prompt_index,
                    "prompt": item.prompt,
                    "seed": item.seed,
                    "present": bool(present),
                    "score": float(score),
                    "detail": detail,
                }
            )
        advance(len(chunk))
    return tally(records, items, sequence.roles), records


def tally(
    records: list[dict[str, Any]], items: list[EvalItem], roles: dict[str, str]
) -> dict[str, Cell]:
    """Cells from per-image records; raises if any cell misses an expected image."""
    expected: dict[str, int] = {}
    for item in items:
        expected[item.concept] = expected.get(item.concept, 0) + 1
    hits: dict[str, list[bool]] = {cid: [] for cid in expected}
    for record in records:
        hits.setdefault(record["concept"], []).append(bool(record["present"]))
    cells = {}
    for cid, n_expected in expected.items():
        seen = hits[cid]
        if len(seen) != n_expected:
            raise RunError(
                f"concept '{cid}' has {len(seen)} judged images, expected {n_expected}",
                "the step is not committed; rerun the same command to redo it",
            )
        k = sum(seen)
        low, high = wilson_interval(k, len(seen))
        cells[cid] = Cell(roles[cid], k / len(seen), len(seen), n_expected, low, high)
    return cells
