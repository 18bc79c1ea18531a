"""UCE — Unified Concept Editing: a closed-form edit of every cross-attention K/V projection.

Paper: Gandikota, Orgad, Belinkov, Materzyńska, Bau, "Unified Concept Editing in Diffusion
Models", WACV 2024, arXiv:2308.14761. Reference code: github.com/rohitgandikota/unified-concept-editing
(``trainscripts/uce_sd_erase.py``; the older ``train-scripts/train_erase.py``). Sequential
protocol as in CUIG (``train_uce.py``, commit 83d73a2): each request is solved from the current
weights. Re-implemented from culbench's research notes; nothing is copied.

For every cross-attention projection W ∈ {attn2.to_k, attn2.to_v} (out × d):

    W ← (λ W + s_e Σ_i v*_i c_iᵀ + s_p Σ_j (W c_j) c_jᵀ) · (λ I + s_e Σ_i c_i c_iᵀ + s_p Σ_j c_j c_jᵀ)⁻¹

with c_i the text-encoder outputs of the erased concept, v*_i = W c_guide(i) the current
output for its guide, and c_j the outputs of preserved concepts.
The rows and the solve live in :mod:`culbench.closed_form`, where other closed-form methods reuse them.

What the c's are here: for each forget prompt (train split, up to ``max_prompts``) the rows at
the concept's tokens and at the end-of-text token (which, in a causal text encoder, has read the
concept); the guide rows come from the same prompt with the concept's name replaced by its
anchor's, word for word (``guide="anchor"``, :func:`culbench.api.substitute`), from the empty
prompt's end-of-text row (``guide="null"``) or from its start-token row (``guide="start"``, the
reference's guide "", deviation 3). Preserved rows: every token row from the start token to
end-of-text of the request's related and general retain prompts (up to ``max_prompts``).

Deviations (reference: ``trainscripts/uce_sd_erase.py`` at commit
ea9644fd83ed929c47ae26aef2681e2b2f24bedb, unchanged at HEAD
28c81ed5a3e41277c1a0dc55f738e7ab188e9718; old script: ``train-scripts/train_erase.py`` at
bd5fb515392e986758fa3197e382148227db8f25):

1. **Concept in context:** the reference encodes the bare concept phrase and keeps its last
   token (new script) or its tokens from the last onward (old script); here the rows come from
   the concept's tokens inside the sequence's forget prompts, since that is what users type.
2. **Scales** (``erase_scale``, ``preserve_scale``, ``lamb``) are the new script's defaults
   (1, 1, 0.5); the number of rows on each side differs from the reference, so their balance
   does too. Not yet chosen on the validation prompts.
3. **The null guide's row:** the new script keeps the row at index ``attention_mask.sum() − 2``
   of every prompt (its lines 34–42), which for its default guide "" (line 138) is index 0, the
   start token; the old script turns "" into " " (line 216) and pairs the erased rows, from the
   concept's last token on, with the rows of " " from index 0 on (lines 253–260). Both map the
   concept's (last) token to the start token's output (which, in a causal text encoder, is the
   same for every prompt). ``guide="null"`` uses the end-of-text row
   of "" instead (it has read the whole, empty, prompt, as the erased end-of-text rows have read
   theirs); ``guide="start"`` is the reference's choice. Neither has been compared on the
   validation prompts; the default guide is the anchor.
4. **Preserved rows are whole retain prompts:** the reference preserves a list of bare concept
   strings, one row each (new script: the last-token row, lines 34–42 and 73–79) or all 77 rows
   of each (old script, lines 289–303); here every row (start token to end-of-text) of the
   request's retain prompts, so the preserved set holds the concepts in the contexts the
   sequence uses, with their context words and start-token rows, and is far larger.
5. **Padding rows are skipped:** rows after end-of-text (padding, which the UNet also attends
   to and which, in a causal encoder, have read the concept) are neither erased nor preserved
   here. The new script never uses them either (one row per concept), but the old script erases
   every row from the concept's last token to position 77, padding included (lines 253–260),
   and preserves all 77 rows of each retain string (lines 289–303).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch

from culbench.api import (
    Concept,
    Method,
    StepContext,
    T2IModel,
    UnlearnRequest,
    register_method,
)
from culbench.closed_form import erase_pairs, kv_layers, request_rows, solve_kv


@register_method("uce")
class UCE(Method):
    """UCE (Gandikota et al., WACV 2024): closed-form erase/preserve edit of cross-attention K and V."""

    @dataclass(frozen=True)
    class Config:
        erase_scale: float = 1.0         # s_e (new script 1; UnlearnCanvas objects 0.01, styles 0.05)
        preserve_scale: float = 1.0      # s_p (new script 1; old script 0.1)
        lamb: float = 0.5                # λ, pull toward the current weights (new script 0.5)
        guide: Literal["anchor", "null", "start"] = "anchor"  # start: the reference's "" row
        max_prompts: int = 64            # forget / retain prompts used per side
        preserve: Literal["all", "related", "general"] = "all"

    #: ``culbench tune``: the defaults plus 7 of these points (the same budget for every method).
    tune_grid: ClassVar[dict[str, tuple[Any, ...]]] = {"erase_scale": (0.5, 1.0, 2.0), "lamb": (0.1, 0.5, 2.0)}

    trains = ("xattn_kv",)

    def _erase_pairs(self, model: T2IModel, concept: Concept, prompts: list[str],
                     anchor: str | None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Erase rows c_i of one concept and guide rows (whose current outputs become v*_i)."""
        return erase_pairs(model, concept, prompts, anchor, self.config.guide, "uce")

    def unlearn(self, model: T2IModel, request: UnlearnRequest, ctx: StepContext) -> T2IModel:
        cfg = self.config
        c_erase, c_guide, c_keep = request_rows(model, request, ctx.rng(), max_prompts=cfg.max_prompts,
                                                guide=cfg.guide, preserve=cfg.preserve, method="uce")
        edited = model.clone()
        edited.unet.requires_grad_(False)
        layers = kv_layers(edited.unet)
        tick = ctx.progress(len(layers), f"uce: editing {request.concept.id}")
        solve_kv(layers, c_erase, c_guide, c_keep, lamb=cfg.lamb, erase_scale=cfg.erase_scale,
                 preserve_scale=cfg.preserve_scale, tick=tick)
        return edited
