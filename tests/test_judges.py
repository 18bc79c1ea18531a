"""The judge interface: every built-in judge subclasses ``Judge`` and declares its optional
capabilities (``bind``, ``features``), so callers ask ``judge.has_features`` instead of probing."""

from __future__ import annotations

import pytest
import torch

from culbench.catalog import JUDGES
from culbench.evaluation.judge import Judge, JudgeOutput
from culbench.tasks import resolve_sequence

#: name -> (binds to the sequence's concepts, has features)
CAPABILITIES = {"toyworld": (False, True), "toyworld-clip-zeroshot": (False, False),
                "mock": (False, True), "clip-zeroshot": (True, False),
                "uc-classifier": (False, False), "vlm-yesno": (True, False)}


@pytest.mark.parametrize("name", sorted(CAPABILITIES))
def test_builtin_judges_declare_their_capabilities(name: str) -> None:
    cls = JUDGES.get(name)
    binds, features = CAPABILITIES[name]
    assert issubclass(cls, Judge) and cls.name == name
    assert (cls.bind is not Judge.bind) == binds
    assert cls.has_features == features == hasattr(cls, "features")  # the runner's hasattr agrees


def test_every_registered_judge_is_listed_here() -> None:
    assert set(JUDGES.names()) == set(CAPABILITIES)


def test_the_mock_judge_binds_as_a_no_op_and_has_features() -> None:
    seq = resolve_sequence("mock")
    judge = JUDGES.get("mock")(device="cpu")
    judge.bind(seq.concepts, seq.roles)  # inherited no-op: the runner may call it on any judge
    images = torch.rand(2, 3, 8, 8)
    concepts = [seq.concepts[c] for c in seq.steps[:2]]
    assert isinstance(judge(images, concepts), JudgeOutput)
    assert judge.has_features and judge.features(images).shape[0] == 2


def test_a_new_judge_declares_features_by_defining_them() -> None:
    class Plain(Judge):
        name = "plain"

    class Featured(Plain):
        def features(self, images: torch.Tensor) -> torch.Tensor:
            return images.flatten(1)

    assert not Plain.has_features and not hasattr(Plain(), "features")
    assert Featured.has_features and Featured().features(torch.zeros(1, 3, 2, 2)).shape == (1, 12)
