"""UnlearnCanvas sequences (CUIG protocol) and the classifier judge with tiny stand-in classifiers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from culbench.generators import unlearncanvas
from culbench.catalog import builtin_dir
from culbench.errors import CulbenchError
from culbench.evaluation.uc_judge import UnlearnCanvasJudge
from culbench.tasks import resolve_sequence


def test_committed_files_match_the_generator() -> None:
    for axis, name in (("style", "uc-styles12"), ("object", "uc-objects12")):
        root = builtin_dir("tasks") / name
        for relative, content in unlearncanvas.files(axis).items():
            assert (root / relative).read_text(encoding="utf-8") == content, f"{name}/{relative} is stale"


def test_cuig_protocol() -> None:
    styles = resolve_sequence("uc-styles12")
    assert [styles.concepts[c].name for c in styles.steps] == list(unlearncanvas.FORGET_STYLES)
    assert {styles.roles[c] for c in styles.general_concepts} == {"in_domain", "cross_domain"}
    assert styles.prompts["van_gogh"].eval[0] == "A Architectures image in Van_Gogh style."
    objects = resolve_sequence("uc-objects12")
    assert [objects.concepts[c].name for c in objects.steps] == list(unlearncanvas.FORGET_OBJECTS)
    assert all(p.mapped.startswith("A Elephant image") for p in objects.request(1).forget)


def test_classifier_judge_with_tiny_stand_ins(tmp_path: Path) -> None:
    import timm

    for kind, classes in (("style", len(unlearncanvas.STYLES)), ("object", len(unlearncanvas.OBJECTS))):
        model = timm.create_model("resnet10t", pretrained=False, num_classes=classes)
        torch.save({"model_state_dict": model.state_dict()}, tmp_path / f"{kind}_classifier.pth")
    judge = UnlearnCanvasJudge(classifier_dir=str(tmp_path), arch="resnet10t", image_size=32)
    seq = resolve_sequence("uc-styles12")
    concepts = [seq.concepts[c] for c in ("van_gogh", "architectures")]
    out = judge(torch.rand(2, 3, 16, 16), concepts)
    assert len(out.present) == 2 and all(0 <= s <= 1 for s in out.score)
    assert set(judge.fingerprint()["weights_sha256"]) == {"style", "object"}
    with pytest.raises(CulbenchError, match="needs its classifiers"):
        UnlearnCanvasJudge()
    with pytest.raises(CulbenchError, match="is not a resnet18"):
        UnlearnCanvasJudge(classifier_dir=str(tmp_path), arch="resnet18")
