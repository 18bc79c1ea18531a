"""How well two judges agree on the same images: raw agreement and Cohen's κ (pure functions).

Each judged image gives one *pair*: the two judges' verdicts (does it show its concept?) and their
readings (which value of the concept's kind each judge sees: an object, a colour, ..., "none").
κ on verdicts is the number a reader of presence wants, but it is ill-conditioned where one verdict
dominates (a base model shows ~100 % of its concepts, so chance agreement p_e → 1: the "κ paradox");
κ on readings (nominal, over every value of the kind) stays informative there.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np


def raw_agreement(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Share of items the two raters label alike, ``p_o = (1/n) Σ_i [a_i = b_i]`` (NaN for none).

    >>> raw_agreement([True, True, False, False], [True, False, False, False])
    0.75
    """
    if len(a) != len(b):
        raise ValueError(f"{len(a)} labels against {len(b)}")
    return float(np.mean([x == y for x, y in zip(a, b, strict=True)])) if len(a) else float("nan")


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Cohen's κ of two raters' nominal labels of the same items (binary verdicts included):

        κ = (p_o − p_e) / (1 − p_e),   p_e = Σ_v p_a(v) · p_b(v)

    where ``p_o`` is the raw agreement and ``p_a(v)``, ``p_b(v)`` are the shares of items each rater
    labels ``v``. 1: perfect agreement; 0: what two independent raters with these label shares
    would reach by chance; < 0: worse than chance. NaN when undefined: no items, or ``p_e = 1``
    (both raters give one and the same label to every item).

    >>> round(cohen_kappa([1, 1, 0, 0], [1, 0, 0, 0]), 3)   # p_o = .75, p_e = .5·.25 + .5·.75 = .5
    0.5
    >>> cohen_kappa(["red", "blue", "red"], ["red", "blue", "red"])
    1.0
    >>> cohen_kappa([True, False], [False, True])
    -1.0
    >>> cohen_kappa([True, True], [True, True])
    nan
    """
    p_o = raw_agreement(a, b)
    if not len(a):
        return float("nan")
    values = set(a) | set(b)
    n = len(a)
    p_e = sum((list(a).count(v) / n) * (list(b).count(v) / n) for v in values)
    return float("nan") if np.isclose(p_e, 1.0) else float((p_o - p_e) / (1 - p_e))


def agreement_rows(pairs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per concept kind, then ``all``: ``n``, the judges' presence rates, raw agreement and
    κ on verdicts, raw agreement and κ on readings. Each pair holds ``kind``, ``present_a``,
    ``present_b``, ``read_a``, ``read_b``.

    >>> seen = [(1, 1, "red", "red"), (0, 0, "blue", "blue"), (1, 0, "red", "pink")]
    >>> pairs = [{"kind": "colour", "present_a": v, "present_b": w, "read_a": r, "read_b": s}
    ...          for v, w, r, s in seen]
    >>> row = agreement_rows(pairs)[-1]
    >>> [row["kind"], row["n"]] + [round(row[k], 3) for k in ("agreement", "kappa", "kappa_read")]
    ['all', 3, 0.667, 0.4, 0.5]
    """
    pairs = list(pairs)
    kinds = list(dict.fromkeys(p["kind"] for p in pairs))
    rows = []
    for kind in [*kinds, "all"]:
        group = [p for p in pairs if kind in ("all", p["kind"])]
        a, b = [bool(p["present_a"]) for p in group], [bool(p["present_b"]) for p in group]
        # readings are compared within a kind; "all" keys them by kind (a colour is never a shape)
        ra = [(p["kind"], p["read_a"]) for p in group]
        rb = [(p["kind"], p["read_b"]) for p in group]
        rows.append({"kind": kind, "n": len(group),
                     "presence_a": float(np.mean(a)) if a else float("nan"),
                     "presence_b": float(np.mean(b)) if b else float("nan"),
                     "agreement": raw_agreement(a, b), "kappa": cohen_kappa(a, b),
                     "agreement_read": raw_agreement(ra, rb), "kappa_read": cohen_kappa(ra, rb)})
    return rows
