"""The judge contract: does each image show the concept it was prompted for?"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from culbench.api import Concept

if TYPE_CHECKING:
    import torch


@dataclass
class JudgeOutput:
    """Per-image verdicts, aligned with the input batch.

    Attributes:
        present: whether the image shows its concept.
        score: the judge's continuous score behind ``present`` (e.g. a probability), so
            results can be re-thresholded offline.
        detail: any further per-image outputs worth keeping (e.g. predicted labels per head).
    """

    present: list[bool]
    score: list[float]
    detail: list[dict[str, Any]] = field(default_factory=list)


def forget_groups(concepts: Mapping[str, Concept], roles: Mapping[str, str]) -> dict[str, list[Concept]]:
    """Each forget concept and its related (confusable) concepts as one group, keyed by every
    member's id: the "do not count the confusables" sets of DFR-style judges."""
    groups: dict[str, list[Concept]] = {}
    for cid, role in roles.items():
        if role == "forget":
            group = [concepts[cid], *(concepts[r] for r in concepts[cid].related)]
            for member in group:
                groups[member.id] = group
    return groups


class Judge(Protocol):
    """Built as ``JUDGES.get(name)(device=..., **options)`` from the sequence's ``judge:``."""

    name: str

    def fingerprint(self) -> dict[str, Any]:
        """Name, implementation, weights sha256, thresholds: everything that changes verdicts."""
        ...

    def __call__(self, images: torch.Tensor, concepts: Sequence[Concept]) -> JudgeOutput:
        """Judge ``images`` ``(B, 3, H, W)`` in [0, 1], image i against ``concepts[i]``."""
        ...
