"""RECE — Reliable and Efficient Concept Erasure: UCE, then rounds that erase closed-form adversarial embeddings.

Paper: Gong, Chen, Wei, Chen, Jiang, "Reliable and Efficient Concept Erasure of Text-to-Image
Diffusion Models", ECCV 2024, arXiv:2407.12383. Reference code: github.com/CharlesGong12/RECE at
commit 403a67fd86dce6c124b88798340e001e625b28c9 (``train.py``, ``train_object.py`` and
``train_artists.py`` for the rounds; ``close_form_emb_regzero`` in
``utils/embedding_calculation/close_form_emb.py`` for the embedding; ``edit_model_adversarial`` in
``erase_methods/uce.py`` for the edit; the settings in its README). Re-implemented from the paper's
description and culbench's research notes; nothing is copied.

Each request, for every cross-attention projection W_l ∈ {attn2.to_k, attn2.to_v}, starting from
the weights W₀ it is handed (the previous request's output: sequential, like ``uce``):

1. **UCE** (``methods/uce.py``; rows and solve from :mod:`culbench.closed_form`): the concept's rows
   c_i are mapped to their guide rows' outputs, the retain rows c_j kept.
2. **Rounds** (``epochs``): against the weights W_l the last edit left, the adversarial embedding of
   each erased row, the input that makes W_l give back what W₀ gave for the concept,

       c'_i = argmin_c Σ_l ‖W_l c − W₀_l c_i‖² + reg ‖c‖² = (Σ_l W_lᵀ W_l + reg I)⁻¹ (Σ_l W_lᵀ W₀_l) c_i

   (one d × d map shared by every K and V projection), is erased with UCE's closed form, each c'_i
   towards the guide row of its c_i, the same retain rows preserved: with ``accumulate`` (the
   default) the erase set grows, [c, c'₁, …, c'ₑ], and every round solves from W₀; without it (the
   reference) each round edits the weights the last one left, with that round's c' only.

``epochs=0`` is exactly ``uce`` with the same settings. Cost per request: 1 + ``epochs`` UCE solves
(one d × d system, then one solve per projection) and one d × d solve per round; the text encoder
runs only for the rows, as in ``uce``; no sampling, no gradients (ToyWorld: under a second).

Deviations:

1. **Rows:** ``uce``'s deviations 1, 4 and 5 carry over (the concept's tokens and end-of-text row
   inside the forget prompts; whole retain prompts preserved; padding rows skipped). The reference
   turns all 77 rows of the bare concept string, padding included, into c' and pairs them row for
   row with the 77 rows of " " (its guide; ``train.py`` lines 136 and 228–260), so the concept's
   tokens go to the end-of-text and padding rows of " " (closest here: ``guide="null"``); it
   preserves all 77 rows of " " (``train.py`` line 155) or of "" and, for artists, of other
   artists' names (``train_object.py`` line 237, ``train_artists.py`` line 176).
2. **The adversary's target:** the reference regenerates the *original* model's output
   (``model_copy``, SD 1.4, in ``close_form_emb_regzero``); here W₀, the weights handed to this
   request: the base model at the first request, later the concept as the sequence's model
   rendered it just before its erasure. Only this request's concepts get adversarial embeddings:
   earlier concepts are not revisited (under W₀ their outputs are already the guide's; finding
   theirs would need the base model's outputs and would re-edit their rows at every request).
3. **One method, one set of scales:** the reference starts from a checkpoint made by UCE's own
   script and runs its rounds with λ₁ = λ₂ = 0.1 (``preserve_scale``, ``lamb``); here the UCE edit
   and the rounds share ``erase_scale``, ``preserve_scale`` and ``lamb`` (``uce``'s ToyWorld
   defaults, so that ``epochs=0`` is ``uce``; the reference's are in ``SD_DEFAULTS``).
4. **Regulariser:** only the reference's "regzero" form (c' pulled towards 0, the README's and
   scripts' choice); its "standard" (towards a former guide's embedding) and "surrogate" forms are
   left out.
5. **Rounds are not selected by an evaluation:** the reference generates validation images after
   every round and keeps the round with the lowest detection rate (nudity/Q16 classifiers); here
   the last round is kept and ``epochs`` is a setting for ``culbench tune`` (validation prompts).
6. **Accumulated rounds by default:** a reference round constrains only the new c', so the
   concept's own rows drift back, held only by λ: one reference round maps c' nearer its guide but
   the concept's own rows further from theirs, where accumulated rounds take both nearer (figures:
   docs/rece.md). ``accumulate=False`` is the reference's loop; both are in the tuning grid.
7. **Defaults:** ``epochs`` 2 and ``reg`` 0.1 on ToyWorld (the reference: 1 round with reg 1e-3 for
   styles and hard objects, 1e-1 for easy ones, 3 rounds with 1e-1 for nudity); reg is relative to
   Σ_l W_lᵀ W_l, whose scale differs between models. Not yet chosen on the validation prompts.
8. **Arithmetic:** float64 with linear solves (the reference: float32 with explicit inverses).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch

from culbench.api import CulbenchError, Method, StepContext, T2IModel, UnlearnRequest, register_method
from culbench.closed_form import kv_layers, request_rows, solve_kv

#: The reference's settings on SD 1.4 (README; ``scripts/``): styles and hard objects
#: (reg 1e-3, 1 round; easy objects reg 1e-1; nudity reg 1e-1, 3 rounds), guide " " (deviation 1).
SD_DEFAULTS = {"erase_scale": 1.0, "preserve_scale": 0.1, "lamb": 0.1, "reg": 1e-3, "epochs": 1,
               "guide": "null", "accumulate": False}


def adversarial_rows(layers: Sequence[torch.nn.Linear], start: Sequence[torch.Tensor], rows: torch.Tensor,
                     reg: float) -> torch.Tensor:
    """c' = (Σ_l W_lᵀ W_l + reg I)⁻¹ (Σ_l W_lᵀ W₀_l) c for every row c of ``rows`` (n × d, float64),
    with W_l the layers' current weights and W₀_l = ``start[l]``: the inputs that regenerate, under
    the current weights, what ``start`` gave for ``rows`` (least squares, ridge ``reg``)."""
    d = rows.shape[1]
    gram = reg * torch.eye(d, dtype=torch.float64)
    cross = torch.zeros(d, d, dtype=torch.float64)
    for layer, w0 in zip(layers, start, strict=True):
        w = layer.weight.detach().double()
        gram += w.T @ w
        cross += w.T @ w0
    return torch.linalg.solve(gram, cross @ rows.T).T


@register_method("rece")
class RECE(Method):
    """RECE (Gong et al., ECCV 2024): UCE, then rounds erasing closed-form adversarial embeddings."""

    @dataclass(frozen=True)
    class Config:
        erase_scale: float = 1.0         # s_e (reference 1)
        preserve_scale: float = 1.0      # s_p = λ₁ (reference 0.1)
        lamb: float = 0.5                # λ₂, pull toward the current weights (reference 0.1)
        epochs: int = 2                  # rounds of adversarial erasure after the UCE edit (reference 1-3)
        reg: float = 0.1                 # ridge of the adversarial embedding, toward 0 (reference 1e-3 or 1e-1)
        accumulate: bool = True          # the erase set grows, every round solves from W₀ (reference: False)
        guide: Literal["anchor", "null", "start"] = "anchor"  # as uce; null: nearest the reference's " "
        max_prompts: int = 64            # forget / retain prompts used per side
        preserve: Literal["all", "related", "general"] = "all"

    #: ``culbench tune``: the defaults plus 7 of these points (the same budget for every method).
    tune_grid: ClassVar[dict[str, tuple[Any, ...]]] = {"epochs": (1, 2, 3), "reg": (1e-3, 1e-2, 1e-1),
                                                       "accumulate": (False, True)}

    trains = ("xattn_kv",)

    def unlearn(self, model: T2IModel, request: UnlearnRequest, ctx: StepContext) -> T2IModel:
        cfg = self.config
        if cfg.epochs < 0 or cfg.reg < 0:
            raise CulbenchError(f"rece: epochs ({cfg.epochs}) and reg ({cfg.reg}) must not be negative",
                                "set rece.epochs >= 0 and rece.reg >= 0")
        c_erase, c_guide, c_keep = request_rows(model, request, ctx.rng(), max_prompts=cfg.max_prompts,
                                                guide=cfg.guide, preserve=cfg.preserve, method="rece")
        edited = model.clone()
        edited.unet.requires_grad_(False)
        layers = kv_layers(edited.unet)
        start = [layer.weight.detach().double().clone() for layer in layers]  # W₀
        tick = ctx.progress(len(layers) * (1 + cfg.epochs), f"rece: editing {request.concept.id}")
        scales = {"lamb": cfg.lamb, "erase_scale": cfg.erase_scale, "preserve_scale": cfg.preserve_scale,
                  "tick": tick}
        solve_kv(layers, c_erase, c_guide, c_keep, **scales)
        erased = [c_erase]
        for _ in range(cfg.epochs):
            found = adversarial_rows(layers, start, c_erase, cfg.reg)
            if not cfg.accumulate:
                solve_kv(layers, found, c_guide, c_keep, **scales)
                continue
            erased.append(found)
            with torch.no_grad():
                for layer, w0 in zip(layers, start, strict=True):
                    layer.weight.copy_(w0.to(layer.weight.dtype))
            solve_kv(layers, torch.cat(erased), c_guide.repeat(len(erased), 1), c_keep, **scales)
        return edited
