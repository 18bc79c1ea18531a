"""The judge contract: does each image show the concept it was prompted for?"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

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


class Judge:
    """Base class of judges, built as ``JUDGES.get(name)(device=..., **options)`` from the
    sequence's ``judge:``.

    Every judge has a ``name``, :meth:`fingerprint` and :meth:`__call__`. Two capabilities are
    optional; they are declared here, so callers ask the judge instead of probing with ``hasattr``:

    * :meth:`bind`: the runner calls ``judge.bind(concepts, roles)`` once, before judging. Judges
      that need the sequence's concepts (confusable sets: ``clip-zeroshot``, ``vlm-yesno``)
      override it; the others inherit this no-op.
    * ``features(images)``: an embedding ``(B, D)`` of images in [0, 1] (the FID feature space
      when a run names no ``--fid`` extractor). A judge that has one defines the method, and
      ``has_features`` is then ``True`` (set for each subclass from whether it defines
      ``features``); callers test ``judge.has_features``. This class defines no ``features``.
    """

    name: ClassVar[str] = ""
    has_features: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.has_features = callable(getattr(cls, "features", None))

    def bind(self, concepts: Mapping[str, Concept], roles: Mapping[str, str]) -> None:  # noqa: B027
        """Take the sequence's concepts and their roles (``forget``, ``related``, ...) before judging."""

    def fingerprint(self) -> dict[str, Any]:
        """Name, implementation, weights sha256, thresholds: everything that changes verdicts."""
        raise NotImplementedError

    def __call__(self, images: torch.Tensor, concepts: Sequence[Concept]) -> JudgeOutput:
        """Judge ``images`` ``(B, 3, H, W)`` in [0, 1], image i against ``concepts[i]``."""
        raise NotImplementedError
