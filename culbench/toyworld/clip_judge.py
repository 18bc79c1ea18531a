"""A second ToyWorld judge, independent of the CNN: tiny-CLIP zero-shot over every scene.

The class text of a concept is not one prompt but every ToyWorld caption that names it: each of
the world's scenes (3,360 object scenes and 36 character scenes) is a zero-shot class whose text
embedding ē_s is the mean of its captions' unit embeddings over all templates (CLIP's prompt
ensembling), re-normalised. A value v of attribute k (an object, a colour, ..., a character or
"none") scores as its best-matching scene, and the reading of kind k is the top value:

    ℓ_v(x) = max_{s : s.k = v} τ · cos(f(x), ē_s),    read_k(x) = argmax_v ℓ_v(x)

(τ: CLIP's learned logit scale). Image x shows concept c of kind k when read_k(x) = c, the
argmax being over *every* value of kind k — all 14 objects, 8 colours, 5 patterns, 2 backgrounds,
3 positions, or the 6 characters and "none" — so every confusable is a negative. ``score`` is
``softmax_v(ℓ_v)[c]``. (The max over scenes is the rule that read clean renders best; a mean or
sum of the scene posterior per value read characters 0.978 / 0.997 instead of 1.000.)

It shares nothing with ``ToyWorldJudge`` but the renders both were trained on: a ViT image tower
trained contrastively against captions, read through text, versus a CNN with a classifier per
attribute. It reads colours, patterns, characters and contexts well and objects poorly (about
0.6 on clean renders, docs/toyworld.md): the tiny CLIP's image tower barely tells shapes apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from culbench.api import Concept
from culbench.errors import CulbenchError
from culbench.evaluation.judge import Judge, JudgeOutput

KINDS: tuple[str, ...] = ("object", "colour", "pattern", "character", "background", "position")


def scene_bank() -> tuple[list[list[str]], dict[str, list[str]]]:
    """Every ToyWorld scene's captions (all templates, primary names) and its label per kind.

    >>> captions, labels = scene_bank()
    >>> len(captions), len(labels["character"]), sum(v == "none" for v in labels["character"])
    (3396, 3396, 3360)
    >>> captions[0][1]
    'solid red circle, left, dark background'
    """
    from culbench.toyworld.data import CHARACTER_TEMPLATES, TEMPLATES, all_scenes, prompt_for

    scenes = all_scenes()
    count = {True: len(CHARACTER_TEMPLATES), False: len(TEMPLATES)}
    captions = [[prompt_for(s, i) for i in range(count[s.character is not None])] for s in scenes]
    labels = {kind: [s.labels()[kind] for s in scenes] for kind in KINDS}
    return captions, labels


def value_logits(scene_logits: torch.Tensor,
                 labels: Sequence[str]) -> tuple[list[str], torch.Tensor]:
    """``ℓ_v = max_{s : label_s = v} scene_logits_s``: the values ``(V,)`` in first-seen order and
    their logits ``(B, V)``.

    >>> values, logits = value_logits(torch.tensor([[2.0, 5.0, 3.0]]), ["none", "none", "zorb"])
    >>> values, logits.tolist()
    (['none', 'zorb'], [[5.0, 3.0]])
    """
    values = list(dict.fromkeys(labels))
    index = torch.tensor([values.index(v) for v in labels])
    rows = scene_logits.shape[0]
    out = torch.full((rows, len(values)), float("-inf"))
    return values, out.scatter_reduce(1, index.expand(rows, -1), scene_logits, reduce="amax")


class ToyWorldClipZeroShotJudge(Judge):
    """Image i shows concept c when tiny-CLIP's zero-shot reading of c's kind, over every value of
    that kind, is c (module docstring: the scene classes, the rule and the score).

    Args:
        device: torch device.
        weights: a folder laid out like ``assets/`` holding ``clip.safetensors``; default: the
            shipped CLIP of ``version``.
        version: ToyWorld model version of the shipped CLIP (its vocabulary); 1 by default, 2
            reads ``assets/v2/`` once it ships. A ``weights`` folder declares its own.
    """

    name = "toyworld-clip-zeroshot"

    def __init__(self, *, device: str = "cpu", weights: str | Path | None = None,
                 version: int | None = None, **_: Any) -> None:
        from culbench.toyworld.clip import ToyWorldCLIP

        self.clip = ToyWorldCLIP(device=device, weights=weights, version=version)
        self.version = self.clip.version
        self.scale = float(self.clip.model.logit_scale.detach().exp())
        self._bank: tuple[torch.Tensor, dict[str, list[str]]] | None = None

    def fingerprint(self) -> dict[str, Any]:
        return {"name": self.name, "impl": f"{__name__}.ToyWorldClipZeroShotJudge",
                "weights_sha256": self.clip.sha256, "model_version": self.version,
                "rule": "argmax over every value of the concept's kind of its best scene's logit; "
                        "scene texts: every template, primary names, mean embedding"}

    def bank(self) -> tuple[torch.Tensor, dict[str, list[str]]]:
        """Unit text embeddings ``(S, D)`` of every scene (template mean) and the scenes' labels."""
        if self._bank is None:
            captions, labels = scene_bank()
            flat = [c for group in captions for c in group]
            emb = torch.cat([self.clip.embed_texts(flat[i : i + 2048])
                             for i in range(0, len(flat), 2048)])
            rows, start = [], 0
            for group in captions:
                rows.append(emb[start : start + len(group)].mean(0))
                start += len(group)
            self._bank = (torch.nn.functional.normalize(torch.stack(rows), dim=1), labels)
        return self._bank

    @torch.no_grad()
    def read(self, images: torch.Tensor) -> dict[str, tuple[list[str], torch.Tensor]]:
        """Per kind, its values and their logits ``ℓ_v`` ``(B, V)`` for images in [0, 1]."""
        text, labels = self.bank()
        scene_logits = self.scale * self.clip.embed_images(images) @ text.T
        return {kind: value_logits(scene_logits, labels[kind]) for kind in KINDS}

    def __call__(self, images: torch.Tensor, concepts: Sequence[Concept]) -> JudgeOutput:
        reading = self.read(images)
        present, score, detail = [], [], []
        for i, concept in enumerate(concepts):
            if concept.kind not in reading or concept.id not in reading[concept.kind][0]:
                raise CulbenchError(
                    f"{self.name} cannot judge concept '{concept.id}' of kind '{concept.kind}'",
                    f"use it on ToyWorld sequences only (kinds: {', '.join(KINDS)})")
            values, logits = reading[concept.kind]
            index = values.index(concept.id)
            present.append(int(logits[i].argmax()) == index)
            score.append(float(logits[i].softmax(0)[index]))
            detail.append({kind: vals[int(p[i].argmax())] for kind, (vals, p) in reading.items()})
        return JudgeOutput(present, score, detail)
