"""The UnlearnCanvas judge: its style and object classifiers, which the user supplies.

UnlearnCanvas (arXiv:2402.11846) ships two ViT-L/16 classifiers (timm
``vit_large_patch16_224.augreg_in21k`` with a 1024→classes head; checkpoints hold
``model_state_dict``): one over its 51 styles, one over its 20 objects. An image of a style
concept counts as showing it when the style classifier's argmax is that style (objects alike),
as in CUIG's ``evaluate.py``. Preprocessing: resize to 224, normalise to [-1, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from culbench.api import Concept
from culbench.errors import CulbenchError
from culbench.evaluation.judge import Judge, JudgeOutput


class UnlearnCanvasJudge(Judge):
    name = "uc-classifier"

    def __init__(self, *, device: str = "cpu", classifier_dir: str | None = None,
                 arch: str = "vit_large_patch16_224.augreg_in21k", image_size: int = 224, **_: Any) -> None:
        from culbench.generators.unlearncanvas import OBJECTS, STYLES

        if not classifier_dir:
            raise CulbenchError("the UnlearnCanvas judge needs its classifiers",
                                "pass --judge-option classifier_dir=DIR holding style_classifier.pth and "
                                "object_classifier.pth (from the UnlearnCanvas release)")
        self.device, self.size, self.arch = device, image_size, arch
        self.labels = {"style": list(STYLES), "object": list(OBJECTS)}
        self.models: dict[str, torch.nn.Module] = {}
        self.sha256: dict[str, str] = {}
        for kind in ("style", "object"):
            path = Path(classifier_dir) / f"{kind}_classifier.pth"
            if not path.is_file():
                raise CulbenchError(f"{path} is missing", "put style_classifier.pth and object_classifier.pth "
                                                           "in the folder given as classifier_dir")
            self.models[kind] = self._load(path, len(self.labels[kind]))
            from culbench.runfolder import sha256_file

            self.sha256[kind] = sha256_file(path)

    def _load(self, path: Path, classes: int) -> torch.nn.Module:
        import timm

        model = timm.create_model(self.arch, pretrained=False, num_classes=classes)
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=False)
            model.load_state_dict(checkpoint.get("model_state_dict", checkpoint))
        except (RuntimeError, KeyError, AttributeError, OSError) as exc:
            raise CulbenchError(f"{path} is not a {self.arch} classifier with {classes} classes ({type(exc).__name__})",
                                "use the UnlearnCanvas checkpoint, or pass --judge-option arch=... matching it") from None
        return model.to(self.device).eval()

    def fingerprint(self) -> dict[str, Any]:
        return {"name": self.name, "impl": f"{__name__}.UnlearnCanvasJudge", "arch": self.arch,
                "weights_sha256": self.sha256, "rule": "argmax of the concept kind's classifier"}

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, concepts: Sequence[Concept]) -> JudgeOutput:
        x = torch.nn.functional.interpolate(images.float(), size=(self.size, self.size), mode="bilinear",
                                            align_corners=False)
        x = (x * 2 - 1).to(self.device)
        probs = {kind: torch.softmax(model(x), dim=1).cpu() for kind, model in self.models.items()}
        present, score, detail = [], [], []
        for i, concept in enumerate(concepts):
            if concept.kind not in probs or concept.name not in self.labels[concept.kind]:
                raise CulbenchError(f"uc-classifier cannot judge '{concept.id}' ({concept.kind} {concept.name})",
                                    "use it with the uc-styles12 / uc-objects12 sequences")
            label = self.labels[concept.kind].index(concept.name)
            row = probs[concept.kind][i]
            present.append(bool(row.argmax().item() == label))
            score.append(float(row[label]))
            detail.append({"top": self.labels[concept.kind][int(row.argmax())]})
        return JudgeOutput(present, score, detail)
