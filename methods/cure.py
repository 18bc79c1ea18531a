"""CURE — Concept Unlearning via Orthogonal Representation Editing: the training-free Spectral Eraser.

Paper: Biswas, Roy, Roy, "CURE: Concept Unlearning via Orthogonal Representation Editing in
Diffusion Models", NeurIPS 2025, arXiv:2505.12677. Reference code: the authors' repository
github.com/ShristiDasBiswas/CURE-Concept-Unlearning-via-Orthogonal-Representation-Editing-in-Diffusion-Models
(HEAD 2aef62bbf586590e04ab903d6cc07aea2e5de6d3, 2025-10-02) holds only image generation and
edited weights; its README says the unlearning code will be released after publication. So this
is implemented from the paper's method as public descriptions of it state it (the arXiv abstract
and project page; third-party summaries and re-implementations that quote its equations), which
agree on the formulas below; the paper body itself was not available to check them against.
Nothing is copied.

Spectral Eraser. Stack text-encoder rows of the concept to forget as E_f (n × d) and of the
concepts to keep as E_r; from the SVD E = U Σ Vᵀ of each, with energy shares
r_i = σ_i² / Σ_j σ_j², the expansion f(r; α) = α r / ((α − 1) r + 1) weighs each right singular
vector v_i (α = 1: the shares themselves; large α: toward a plain projector):

    P_f = Σ_i f(r_i^f; α) v_i^f v_i^fᵀ,   P_r likewise,   P_dis = P_f − P_f P_r,

and every cross-attention key and value projection W (out × d) becomes W (I − P_dis): its
response to the concept's own directions is removed, except where the kept concepts share them.
Per the public descriptions the paper uses α = 2 for objects and artists and α = 5 for nudity.

What the rows are here: E_f holds, for each forget prompt (train split, up to ``max_prompts``),
the rows at the concept's tokens and at end-of-text (``rows="concept"``, as ``uce`` picks them)
or every row from the start token to end-of-text (``rows="prompt"``); E_r holds every such row of
the request's retain prompts (``retain``: related, general or both; ``"none"``: P_dis = P_f).

Deviations and choices (none checked against the paper body, see above):

1. **Sequential protocol:** each request edits the current weights, W_t = W_{t−1} (I − P_dis,t),
   with the frozen text encoder's rows (the paper's sequential-erasure experiment edits one
   concept after another the same way, as described). Several targets in one request (the
   simultaneous reference mode) share one E_f.
2. **Rows:** the paper builds E_f and E_r from "token embeddings associated with the concepts"
   of prompts describing them; here from the concept's tokens in context in the sequence's
   forget prompts, and E_r from the sequence's retain prompts (with their context words). Rows
   after end-of-text (padding) are left out of both.
3. **No centring:** the SVD is of the raw rows, as the equations are written.
4. **Scale:** ToyWorld default ``alpha`` 2 is the paper's object/artist value (``SD_DEFAULTS``
   the same); not yet chosen on the validation prompts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch

from culbench.api import (
    CulbenchError,
    Method,
    StepContext,
    T2IModel,
    UnlearnRequest,
    concept_positions,
    register_method,
)
from culbench.closed_form import kv_layers
from culbench.training import prompt_rows

#: The paper's setting for objects and artists (α = 5 for nudity), per its public descriptions.
SD_DEFAULTS = {"alpha": 2.0, "rows": "concept", "retain": "all", "max_prompts": 64}


def expansion(r: torch.Tensor, alpha: float) -> torch.Tensor:
    """f(r; α) = α r / ((α − 1) r + 1): an energy share in [0, 1] mapped into [0, 1].

    >>> [round(v, 3) for v in expansion(torch.tensor([0.0, 0.1, 0.5, 1.0]), 2.0).tolist()]
    [0.0, 0.182, 0.667, 1.0]
    """
    return alpha * r / ((alpha - 1) * r + 1)


def energy_projector(rows: torch.Tensor, alpha: float) -> torch.Tensor:
    """P = V diag(f(r; α)) Vᵀ ``(d, d)`` from the SVD of ``rows`` ``(n, d)`` (float64)."""
    _, sigma, vh = torch.linalg.svd(rows.double(), full_matrices=False)
    energy = sigma.pow(2)
    weights = expansion(energy / energy.sum().clamp_min(1e-300), alpha)
    return (vh.T * weights) @ vh


def spectral_eraser(forget: torch.Tensor, keep: torch.Tensor | None, alpha: float) -> torch.Tensor:
    """P_dis = P_f − P_f P_r (P_f alone without rows to keep), ``(d, d)`` float64.

    >>> e1, e2 = torch.eye(3)[0:1], torch.eye(3)[1:2]
    >>> P = spectral_eraser(torch.cat([e1, e2]), e2, alpha=1000.0)
    >>> [round(v, 2) for v in (P @ torch.tensor([1.0, 1.0, 1.0]).double()).tolist()]  # e2 is kept
    [1.0, 0.0, 0.0]
    """
    p_forget = energy_projector(forget, alpha)
    if keep is None or len(keep) == 0:
        return p_forget
    return p_forget - p_forget @ energy_projector(keep, alpha)


@register_method("cure")
class CURE(Method):
    """CURE (Biswas et al., NeurIPS 2025): project cross-attention K/V off the concept's spectral subspace."""

    @dataclass(frozen=True)
    class Config:
        alpha: float = 2.0               # spectral expansion α (paper: 2 objects/artists, 5 nudity)
        rows: Literal["concept", "prompt"] = "concept"  # forget rows: concept tokens + end-of-text, or all
        retain: Literal["all", "related", "general", "none"] = "all"  # rows kept out of the edit (P_r)
        max_prompts: int = 64            # forget / retain prompts used per side

    #: ``culbench tune``: the defaults plus 7 of these points (the same budget for every method).
    tune_grid: ClassVar[dict[str, tuple[Any, ...]]] = {"alpha": (1.5, 2.0, 5.0, 10.0), "rows": ("concept", "prompt")}

    trains = ("xattn_kv",)

    def forget_rows(self, model: T2IModel, request: UnlearnRequest, rng: Any) -> torch.Tensor:
        """E_f ``(n, d)``: the rows of every target's forget prompts that carry the concept."""
        cfg, rows = self.config, []
        for target in request.all_targets:  # several at once in the simultaneous reference mode
            prompts = rng.sample(list(target.prompts), min(cfg.max_prompts, len(target.pairs)))
            found = [(p, concept_positions(model.tokenizer, p, target.concept.name)) for p in prompts]
            found = [(p, f) for p, f in found if f is not None]
            if not found:
                raise CulbenchError(f"cure: the name '{target.concept.name}' of concept '{target.concept.id}' "
                                    "occurs in none of its forget prompts",
                                    "fix the concept's name in concepts.yaml or its prompts")
            if cfg.rows == "prompt":
                rows += prompt_rows(model, [p for p, _ in found])
                continue
            emb = model.encode([p for p, _ in found])
            rows += [e[[*span, eos]] for e, (_, (span, eos)) in zip(emb, found, strict=True)]
        return torch.cat(rows)

    def projection(self, model: T2IModel, request: UnlearnRequest, ctx: StepContext) -> torch.Tensor:
        """I − P_dis ``(d, d)`` float64 for ``request``: what every cross-attention K and V weight is
        multiplied by (on the right). It depends on the text encoder only, not on the UNet."""
        cfg = self.config
        rng = ctx.rng()
        forget = self.forget_rows(model, request, rng)
        keep = [] if cfg.retain == "none" else request.retain_prompts(cfg.retain)
        keep = rng.sample(keep, min(cfg.max_prompts, len(keep)))
        kept = torch.cat(prompt_rows(model, keep)).cpu() if keep else None
        eraser = spectral_eraser(forget.cpu(), kept, cfg.alpha)
        return torch.eye(eraser.shape[0], dtype=torch.float64) - eraser

    def unlearn(self, model: T2IModel, request: UnlearnRequest, ctx: StepContext) -> T2IModel:
        unlearn = self.projection(model, request, ctx)
        edited = model.clone()
        edited.unet.requires_grad_(False)
        layers = kv_layers(edited.unet)
        tick = ctx.progress(len(layers), f"cure: erasing {request.concept.id}")
        with torch.no_grad():
            for layer in layers:  # W ← W (I − P_dis), from the current weights
                W = layer.weight.double()
                layer.weight.copy_((W @ unlearn.to(W.device)).to(layer.weight.dtype))
                tick(1)
        return edited
