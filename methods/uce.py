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

What the c's are here: for each forget prompt (train split, up to ``max_prompts``) the rows at
the concept's tokens and at the end-of-text token (which, in a causal text encoder, has read the
concept); the guide rows come from the same prompt with the concept's name replaced by its
anchor's (``guide="anchor"``) or from the empty prompt's end token (``guide="null"``, the
reference's default guide ""). Preserved rows: every token row (to end-of-text) of the request's
related and general retain prompts (up to ``max_prompts``).

Deviations:

1. **Concept in context:** the reference encodes the bare concept phrase and keeps its last
   token (new script) or its tokens from the last onward (old script); here the rows come from
   the concept's tokens inside the sequence's forget prompts, since that is what users type.
2. **Scales** (``erase_scale``, ``preserve_scale``, ``lamb``) are the new script's defaults
   (1, 1, 0.5); the number of rows on each side differs from the reference, so their balance
   does too. Not yet chosen on the validation prompts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from culbench.api import (
    Concept,
    CulbenchError,
    Method,
    StepContext,
    T2IModel,
    UnlearnRequest,
    register_method,
    substitute,
    token_span,
)


def _positions(tokenizer: object, prompt: str, phrase: str,
               after: int = 0) -> tuple[list[int], int] | None:
    """Token positions of ``phrase`` (whole words, :func:`culbench.api.token_span`) inside
    ``prompt``, from token ``after`` on, and of the end-of-text token."""
    span = token_span(tokenizer, prompt, phrase, after)
    if span is None:
        return None
    ids = tokenizer(prompt, truncation=True, max_length=tokenizer.model_max_length).input_ids
    eos = ids.index(tokenizer.eos_token_id, 1) if tokenizer.eos_token_id in ids[1:] else len(ids) - 1
    return list(span), eos


def _rows(model: T2IModel, prompts: list[str]) -> list[torch.Tensor]:
    """Text-encoder rows of every token up to end-of-text, per prompt."""
    out = []
    emb = model.encode(prompts)
    for prompt, e in zip(prompts, emb, strict=True):
        ids = model.tokenizer(prompt, truncation=True, max_length=model.tokenizer.model_max_length).input_ids
        out.append(e[: len(ids)])
    return out


@register_method("uce")
class UCE(Method):
    """UCE (Gandikota et al., WACV 2024): closed-form erase/preserve edit of cross-attention K and V."""

    @dataclass(frozen=True)
    class Config:
        erase_scale: float = 1.0         # s_e (new script 1; UnlearnCanvas objects 0.01, styles 0.05)
        preserve_scale: float = 1.0      # s_p (new script 1; old script 0.1)
        lamb: float = 0.5                # λ, pull toward the current weights (new script 0.5)
        guide: Literal["anchor", "null"] = "anchor"
        max_prompts: int = 64            # forget / retain prompts used per side
        preserve: Literal["all", "related", "general"] = "all"

    trains = ("xattn_kv",)

    def _erase_pairs(self, model: T2IModel, concept: Concept, prompts: list[str],
                     anchor: str | None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Erase rows c_i of one concept and guide rows (whose current outputs become v*_i)."""
        null_eos = None
        erase, guide = [], []
        for prompt in prompts:
            found = _positions(model.tokenizer, prompt, concept.name)
            if found is None:
                continue
            cols, eos = found
            c = model.encode([prompt])[0]
            erase += [c[i] for i in cols] + [c[eos]]
            if self.config.guide == "anchor" and anchor:
                g_prompt = substitute(prompt, concept.name, anchor)  # whole words only
                g_found = _positions(model.tokenizer, g_prompt, anchor, after=cols[0])
                if g_found is not None:
                    g_cols, g_eos = g_found
                    g = model.encode([g_prompt])[0]
                    guide += [g[g_cols[min(k, len(g_cols) - 1)]] for k in range(len(cols))] + [g[g_eos]]
                    continue
            if null_eos is None:
                found_null = _positions(model.tokenizer, "", "")
                null_eos = model.encode([""])[0][found_null[1] if found_null else 1]
            guide += [null_eos] * (len(cols) + 1)
        if not erase:
            raise CulbenchError(f"uce: the name '{concept.name}' of concept '{concept.id}' occurs in none of its forget prompts",
                                "fix the concept's name in concepts.yaml or its prompts")
        return erase, guide

    def unlearn(self, model: T2IModel, request: UnlearnRequest, ctx: StepContext) -> T2IModel:
        cfg = self.config
        rng = ctx.rng()
        erase, guide = [], []
        for target in request.all_targets:  # several at once in the simultaneous reference mode
            forget = rng.sample(list(target.prompts), min(cfg.max_prompts, len(target.pairs)))
            rows = self._erase_pairs(model, target.concept, forget, target.anchor.name if target.anchor else None)
            erase, guide = erase + rows[0], guide + rows[1]
        c_erase, c_guide = torch.stack(erase).double(), torch.stack(guide).double()
        keep = request.retain_prompts(cfg.preserve)
        keep = rng.sample(keep, min(cfg.max_prompts, len(keep)))
        c_keep = torch.cat(_rows(model, keep)).double() if keep else c_erase[:0]

        edited = model.clone()
        edited.unet.requires_grad_(False)
        layers = [m for name, m in edited.unet.named_modules()
                  if name.endswith(("attn2.to_k", "attn2.to_v")) and isinstance(m, torch.nn.Linear)]
        tick = ctx.progress(len(layers), f"uce: editing {request.concept.id}")
        d = c_erase.shape[1]
        right = (cfg.lamb * torch.eye(d, dtype=torch.float64)
                 + cfg.erase_scale * c_erase.T @ c_erase + cfg.preserve_scale * c_keep.T @ c_keep)
        with torch.no_grad():
            for layer in layers:
                W = layer.weight.double()
                v_star = c_guide @ W.T                      # (n_erase, out)
                left = (cfg.lamb * W + cfg.erase_scale * v_star.T @ c_erase
                        + cfg.preserve_scale * (c_keep @ W.T).T @ c_keep)
                layer.weight.copy_(torch.linalg.solve(right, left.T).T.to(layer.weight.dtype))
                tick(1)
        return edited
