"""The second ToyWorld judge (tiny-CLIP zero-shot over every value of a concept's kind)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from culbench.api import Concept
from culbench.catalog import JUDGES
from culbench.errors import CulbenchError
from culbench.toyworld import render as tw
from culbench.toyworld.judge import render_batch


@pytest.fixture(scope="module")
def judge():
    return JUDGES.get("toyworld-clip-zeroshot")(device="cpu")


def _concept(cid: str, kind: str) -> Concept:
    return Concept(id=cid, kind=kind, name=cid)


def test_it_reads_colours_and_characters_and_confusables_are_negatives(judge) -> None:
    scenes = [tw.Scene("square", c, "solid", "dark", "center") for c in ("red", "orange", "pink")]
    scenes += [tw.Scene.of_character("zorb", "light", "left"),
               tw.Scene("circle", "green", "solid", "light", "left")]
    images, _ = render_batch(scenes, np.random.default_rng(0))
    asked = ["red", "orange", "pink", "zorb", "zorb"]
    kinds = ["colour"] * 3 + ["character"] * 2
    out = judge(images, [_concept(c, k) for c, k in zip(asked, kinds, strict=True)])
    # a plain green circle is zorb's closest confusable: "none" must win there
    assert out.present == [True, True, True, True, False]
    assert out.detail[4]["character"] == "none" and out.detail[0]["colour"] == "red"
    assert all(0.0 <= s <= 1.0 for s in out.score)
    # the same red square is not orange: its colour's confusables are negatives
    assert judge(images[:1], [_concept("orange", "colour")]).present == [False]


def test_its_fingerprint_names_the_weights_version_and_rule(judge) -> None:
    fp = judge.fingerprint()
    assert fp["name"] == "toyworld-clip-zeroshot" and fp["model_version"] == 1
    assert len(fp["weights_sha256"]) == 64 and "argmax" in fp["rule"]


def test_a_concept_outside_toyworld_is_a_one_line_error(judge) -> None:
    with pytest.raises(CulbenchError, match="ToyWorld sequences only"):
        judge(torch.zeros(1, 3, 32, 32), [_concept("van gogh", "style")])


def test_version_2_reads_v2_weights_and_names_the_fix_while_they_are_absent(tmp_path: Path) -> None:
    from culbench.toyworld.clip import build_clip, save_clip
    from culbench.toyworld.model import weights_folder

    cls = JUDGES.get("toyworld-clip-zeroshot")
    if not (weights_folder(2) / "clip.safetensors").is_file():
        with pytest.raises(CulbenchError, match="missing"):
            cls(device="cpu", version=2)
    torch.manual_seed(0)
    (tmp_path / "toyworld.json").write_text(json.dumps({"model_version": 2}))
    save_clip(build_clip(2), tmp_path)  # an untrained v2 CLIP: its vocabulary, its tokenizer
    judge = cls(device="cpu", weights=str(tmp_path))
    assert judge.version == 2 and judge.fingerprint()["model_version"] == 2
    images, _ = render_batch([tw.Scene("star", "red", "striped", "dark", "left")], None)
    assert len(judge(images, [_concept("star", "object")]).present) == 1
