"""A yes/no VLM judge with confusables, as in DFR's evaluation (Qwen2.5-VL-7B-Instruct).

DFR v1 ``eval.py`` (github.com/SonyResearch/DFR-ConUnl, commit fe32c9f) asks a vision-language
model, greedily and with at most 3 new tokens, whether each image shows its concept — for a
concept with confusables: "Is there {concept} in this image? Do NOT count {negatives} as
{concept} if they appear instead. If the object could be one of these, answer No. Answer Yes or
No only." — under a system message asking for a strict binary classifier that answers No when
unsure. An image shows the concept when the answer starts with "yes". Re-implemented from
culbench's research notes; nothing is copied.

Confusables come from the sequence (``bind``): a forget concept's are its related concepts and a
related concept's are the forget concept and its siblings (DFR lists them for forget concepts
only; asking the same question of the neighbours keeps near retention symmetric — a deviation).
Far concepts get the plain question.

The model is any transformers image-text-to-text checkpoint with a chat template, loaded from a
local folder or the user's HF cache (``--judge-option model=PATH_OR_ID``); nothing is downloaded
with ``HF_HUB_OFFLINE=1``. Install the extra: ``pip install 'culbench[vlm]'``. ``score`` is
P(yes) / (P(yes) + P(no)) from the first generated token's logits, so verdicts can be
re-thresholded offline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from culbench.api import Concept
from culbench.errors import CulbenchError
from culbench.evaluation.judge import Judge, JudgeOutput, forget_groups

SYSTEM = ("You are a strict visual binary classifier. Answer only Yes or No. "
          "If uncertain or ambiguous, answer No.")
QUESTION = "Is there {concept} in this image? Answer Yes or No only."
CONFUSABLE_QUESTION = ("Is there {concept} in this image? Do NOT count {negatives} as {concept} if they appear "
                       "instead. If the object could be one of these, answer No. Answer Yes or No only.")


def question(concept: Concept, confusables: Sequence[Concept]) -> str:
    """The prompt for one image.

    >>> from culbench.api import Concept
    >>> star, moon = Concept("star", "object", "star"), Concept("moon", "object", "moon")
    >>> question(star, [])
    'Is there star in this image? Answer Yes or No only.'
    >>> question(star, [moon]).startswith("Is there star in this image? Do NOT count moon as star")
    True
    """
    if not confusables:
        return QUESTION.format(concept=concept.name)
    return CONFUSABLE_QUESTION.format(concept=concept.name, negatives=", ".join(c.name for c in confusables))


class TransformersVLM:
    """``answer(images, questions) -> [(text, p_yes)]`` with a transformers chat VLM."""

    def __init__(self, model: str, device: str = "cpu", dtype: str = "auto", max_new_tokens: int = 3,
                 model_obj: Any = None, processor: Any = None) -> None:
        try:
            import transformers
        except ImportError:  # pragma: no cover - transformers is a core dependency today
            raise CulbenchError("the VLM judge needs transformers", "pip install 'culbench[vlm]'") from None
        self.spec, self.device, self.max_new_tokens = model, device, max_new_tokens
        try:
            self.processor = processor or transformers.AutoProcessor.from_pretrained(model)
            torch_dtype = {"auto": (torch.bfloat16 if device.startswith("cuda") else torch.float32),
                           "bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[dtype]
            self.model = model_obj or transformers.AutoModelForImageTextToText.from_pretrained(model, dtype=torch_dtype)
        except KeyError:
            raise CulbenchError(f"unknown dtype '{dtype}'", "use auto, bfloat16, float16 or float32") from None
        except (OSError, ValueError) as exc:
            raise CulbenchError(f"VLM {model} could not be loaded ({type(exc).__name__})",
                                "pass --judge-option model=/path/to/Qwen2.5-VL-7B-Instruct (a local folder) or "
                                "download it once into your HF cache on a machine with network") from None
        self.model.to(device).eval()
        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        tokenizer.padding_side = "left"  # decoder-only generation on a padded batch
        self.yes_no = [self._token(tokenizer, w) for w in ("Yes", "No")]

    @staticmethod
    def _token(tokenizer: Any, word: str) -> int:
        ids = tokenizer.encode(word, add_special_tokens=False)
        return int(ids[0])

    @torch.no_grad()
    def answer(self, images: Sequence[Any], questions: Sequence[str]) -> list[tuple[str, float]]:
        chats = [[{"role": "system", "content": [{"type": "text", "text": SYSTEM}]},
                  {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q}]}] for q in questions]
        texts = [self.processor.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in chats]
        inputs = self.processor(text=texts, images=list(images), return_tensors="pt", padding=True).to(self.device)
        out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False,
                                  output_scores=True, return_dict_in_generate=True)
        new = out.sequences[:, inputs["input_ids"].shape[1]:]
        decoded = self.processor.batch_decode(new, skip_special_tokens=True)
        first = out.scores[0].float()[:, self.yes_no].softmax(dim=1)[:, 0]
        return [(text, float(p)) for text, p in zip(decoded, first, strict=True)]


class VLMJudge(Judge):
    """Yes/no VQA per image with the concept's confusables as negatives (DFR's judge)."""

    name = "vlm-yesno"

    def __init__(self, *, device: str = "cpu", model: str = "Qwen/Qwen2.5-VL-7B-Instruct", dtype: str = "auto",
                 max_new_tokens: int = 3, batch_size: int = 8, vlm: Any = None, **_: Any) -> None:
        self.vlm = vlm or TransformersVLM(model, device, dtype, max_new_tokens)
        self.batch_size = batch_size
        self.confusables: dict[str, list[Concept]] = {}

    def fingerprint(self) -> dict[str, Any]:
        return {"name": self.name, "impl": f"{__name__}.VLMJudge", "model": getattr(self.vlm, "spec", repr(self.vlm)),
                "system": SYSTEM, "question": CONFUSABLE_QUESTION, "rule": "answer starts with 'yes'",
                "max_new_tokens": getattr(self.vlm, "max_new_tokens", None)}

    def bind(self, concepts: Mapping[str, Concept], roles: Mapping[str, str]) -> None:
        """Confusables from the sequence: each forget concept's group is itself + its related."""
        for cid, group in forget_groups(concepts, roles).items():
            self.confusables[cid] = [c for c in group if c.id != cid]

    def __call__(self, images: torch.Tensor, concepts: Sequence[Concept]) -> JudgeOutput:
        from torchvision.transforms.functional import to_pil_image

        present, score, detail = [], [], []
        for start in range(0, len(concepts), self.batch_size):
            chunk = concepts[start:start + self.batch_size]
            pil = [to_pil_image(img.clamp(0, 1).cpu().float()) for img in images[start:start + len(chunk)]]
            asks = [question(c, self.confusables.get(c.id, [])) for c in chunk]
            for text, p_yes in self.vlm.answer(pil, asks):
                present.append(text.strip().lower().startswith("yes"))
                score.append(p_yes)
                detail.append({"answer": text.strip()[:20]})
        return JudgeOutput(present, score, detail)
