"""CLIP evaluators for real models: zero-shot presence with confusables, and CLIP score.

Both wrap an *embedder* — anything with ``embed_images(images) -> (B, D)`` and
``embed_texts(prompts) -> (N, D)`` (unit norm) and ``fingerprint()``: an open_clip model from
the user's local cache (``OpenCLIPEmbedder``), or any injected one (tests use ToyWorld's tiny
CLIP). Nothing is downloaded: with ``HF_HUB_OFFLINE=1`` an uncached model is a one-line error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from culbench.api import Concept
from culbench.errors import CulbenchError
from culbench.evaluation.judge import Judge, JudgeOutput, forget_groups

_MEAN = (0.48145466, 0.4578275, 0.40821073)
_STD = (0.26862954, 0.26130258, 0.27577711)


class OpenCLIPEmbedder:
    """An open_clip model (``model`` architecture, ``pretrained`` tag or checkpoint path)."""

    def __init__(self, model: str = "ViT-B-32", pretrained: str = "openai", device: str = "cpu",
                 cache_dir: str | None = None, model_config: str | None = None, **_: Any) -> None:
        import open_clip

        if model_config:  # a custom architecture (JSON in open_clip's config format)
            open_clip.add_model_config(model_config)
        try:
            self.model, _, _ = open_clip.create_model_and_transforms(model, pretrained=pretrained, device=device,
                                                                     cache_dir=cache_dir)
        except Exception as exc:  # open_clip raises RuntimeError/OSError/HF errors when weights are absent
            raise CulbenchError(
                f"CLIP weights {model}/{pretrained} could not be loaded ({type(exc).__name__})",
                "download them once on a machine with network (open_clip.create_model_and_transforms) "
                "into your HF cache, or pass --judge-option pretrained=/path/to/checkpoint") from None
        self.tokenizer = open_clip.get_tokenizer(model)
        self.model.eval()
        self.device, self.spec = device, f"{model}/{pretrained}"
        self.size = self.model.visual.image_size
        self.size = self.size[0] if isinstance(self.size, (tuple, list)) else self.size

    def fingerprint(self) -> dict[str, Any]:
        return {"name": "openclip", "model": self.spec}

    @torch.no_grad()
    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.interpolate(images.float(), size=(self.size, self.size), mode="bicubic",
                                            align_corners=False).clamp(0, 1)
        x = (x - torch.tensor(_MEAN).view(1, 3, 1, 1)) / torch.tensor(_STD).view(1, 3, 1, 1)
        return self.model.encode_image(x.to(self.device), normalize=True).float().cpu()

    @torch.no_grad()
    def embed_texts(self, prompts: Sequence[str]) -> torch.Tensor:
        return self.model.encode_text(self.tokenizer(list(prompts)).to(self.device), normalize=True).float().cpu()

    def score(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """torchmetrics-style CLIP score per pair: ``max(100 · cos, 0)``."""
        return (100 * (self.embed_images(images) * self.embed_texts(prompts)).sum(1)).clamp(min=0)


class ClipZeroShotJudge(Judge):
    """Image i shows concept c if, among c and its confusables, CLIP ranks c first.

    Confusables: the other members of c's group — a forget concept with its related concepts
    (as DFR's evaluation asks about a concept "not counting" its confusables) — and, for far
    concepts, the other far concepts. ``score`` is c's softmax probability (temperature 100).
    """

    name = "clip-zeroshot"

    def __init__(self, *, device: str = "cpu", model: str = "ViT-B-32", pretrained: str = "openai",
                 template: str = "a photo of {name}", style_template: str = "an image in {name}",
                 embedder: Any = None, model_config: str | None = None, **_: Any) -> None:
        self.embedder = embedder or OpenCLIPEmbedder(model, pretrained, device, model_config=model_config)
        self.template, self.style_template = template, style_template
        self.groups: dict[str, list[Concept]] = {}
        self._text_emb: dict[str, torch.Tensor] = {}

    def fingerprint(self) -> dict[str, Any]:
        return {"name": self.name, "impl": f"{__name__}.ClipZeroShotJudge", "embedder": self.embedder.fingerprint(),
                "template": self.template, "rule": "argmax over the concept and its confusables"}

    def bind(self, concepts: Mapping[str, Concept], roles: Mapping[str, str]) -> None:
        """Learn each evaluated concept's confusables from the sequence (the runner calls this)."""
        from culbench.tasks import GENERAL_ROLES

        far = [concepts[c] for c, r in roles.items() if r in GENERAL_ROLES]
        self.groups.update(forget_groups(concepts, roles))
        for concept in far:
            self.groups.setdefault(concept.id, far)

    def _text(self, concept: Concept) -> str:
        return (self.style_template if concept.kind == "style" else self.template).format(name=concept.name)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, concepts: Sequence[Concept]) -> JudgeOutput:
        image_emb = self.embedder.embed_images(images)
        present, score, detail = [], [], []
        for i, concept in enumerate(concepts):
            group = self.groups.get(concept.id) or [concept]
            if len(group) < 2:
                raise CulbenchError(f"clip-zeroshot has no confusables for '{concept.id}'",
                                    "the runner must call judge.bind(concepts, roles) before judging")
            texts = [self._text(c) for c in group]
            missing = [t for t in texts if t not in self._text_emb]
            if missing:
                self._text_emb.update(zip(missing, self.embedder.embed_texts(missing), strict=True))
            text_emb = torch.stack([self._text_emb[t] for t in texts])
            probs = torch.softmax(100 * image_emb[i] @ text_emb.T, dim=0)
            index = next(k for k, c in enumerate(group) if c.id == concept.id)
            present.append(bool(probs.argmax().item() == index))
            score.append(float(probs[index]))
            detail.append({"top": group[int(probs.argmax())].id})
        return JudgeOutput(present, score, detail)
