"""Closed-form cross-attention edits, the public helpers that UCE-style methods share (``uce``, ``rece``).

A method file may import this module (besides :mod:`culbench.api` and :mod:`culbench.training`).
It knows which text-encoder rows stand for a concept inside a prompt, and how to solve UCE's
erase/preserve least-squares problem for every cross-attention K/V projection W (out × d):

    W ← (λ W + s_e Σ_i v*_i c_iᵀ + s_p Σ_j (W c_j) c_jᵀ) · (λ I + s_e Σ_i c_i c_iᵀ + s_p Σ_j c_j c_jᵀ)⁻¹

with c_i the erased rows, v*_i = W g_i the current output for their guide rows g_i, and c_j the
preserved rows (Gandikota et al., "Unified Concept Editing in Diffusion Models", WACV 2024; the
row choices and their deviations from the reference code are documented in ``methods/uce.py``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Literal

import torch

from culbench.api import Concept, CulbenchError, T2IModel, UnlearnRequest, concept_positions, substitute
from culbench.training import prompt_rows

__all__ = ["erase_pairs", "kv_layers", "request_rows", "solve_kv"]


Rows = tuple[list[torch.Tensor], list[torch.Tensor]]


def erase_pairs(model: T2IModel, concept: Concept, prompts: list[str], anchor: str | None,
                guide: Literal["anchor", "null", "start"], method: str) -> Rows:
    """Erase rows c_i of one concept (its tokens and the end-of-text token of every forget prompt
    that names it) and, row for row, the guide rows g_i whose current outputs become v*_i: the
    same prompt with the concept's name replaced by ``anchor`` (``guide="anchor"``, falling back to
    the null guide where there is no anchor), the empty prompt's end-of-text row (``"null"``) or
    its start-token row (``"start"``). ``method`` names the caller in the error."""
    null = None
    erase, guides = [], []
    for prompt in prompts:
        found = concept_positions(model.tokenizer, prompt, concept.name)
        if found is None:
            continue
        cols, eos = found
        c = model.encode([prompt])[0]
        erase += [c[i] for i in cols] + [c[eos]]
        if guide == "anchor" and anchor:
            g_prompt = substitute(prompt, concept.name, anchor)  # whole words only
            g_found = concept_positions(model.tokenizer, g_prompt, anchor, after=cols[0])
            if g_found is not None:
                g_cols, g_eos = g_found
                g = model.encode([g_prompt])[0]
                guides += [g[g_cols[min(k, len(g_cols) - 1)]] for k in range(len(cols))] + [g[g_eos]]
                continue
        if null is None:  # the empty prompt is [start, end-of-text, padding...]
            null = model.encode([""])[0][0 if guide == "start" else 1]
        guides += [null] * (len(cols) + 1)
    if not erase:
        raise CulbenchError(f"{method}: the name '{concept.name}' of concept '{concept.id}' occurs in none of its "
                            "forget prompts", "fix the concept's name in concepts.yaml or its prompts")
    return erase, guides


def request_rows(model: T2IModel, request: UnlearnRequest, rng: random.Random, *, max_prompts: int,
                 guide: Literal["anchor", "null", "start"], preserve: Literal["all", "related", "general"],
                 method: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A request's rows in float64: erased (n × d) and their guides (n × d) from up to ``max_prompts``
    forget prompts of each of its targets (:func:`erase_pairs`), then every row up to end-of-text of
    up to ``max_prompts`` of its ``preserve`` retain prompts (m × d, empty without any), drawn from
    ``rng`` in that order."""
    erase, guides = [], []
    for target in request.all_targets:  # several at once in the simultaneous reference mode
        forget = rng.sample(list(target.prompts), min(max_prompts, len(target.pairs)))
        rows = erase_pairs(model, target.concept, forget, target.anchor.name if target.anchor else None, guide, method)
        erase, guides = erase + rows[0], guides + rows[1]
    c_erase, c_guide = torch.stack(erase).double(), torch.stack(guides).double()
    keep = request.retain_prompts(preserve)
    keep = rng.sample(keep, min(max_prompts, len(keep)))
    c_keep = torch.cat(prompt_rows(model, keep)).double() if keep else c_erase[:0]
    return c_erase, c_guide, c_keep


def kv_layers(unet: torch.nn.Module) -> list[torch.nn.Linear]:
    """Every cross-attention key and value projection (``attn2.to_k``, ``attn2.to_v``), in module order."""
    return [m for name, m in unet.named_modules()
            if name.endswith(("attn2.to_k", "attn2.to_v")) and isinstance(m, torch.nn.Linear)]


def solve_kv(layers: Sequence[torch.nn.Linear], c_erase: torch.Tensor, c_guide: torch.Tensor, c_keep: torch.Tensor,
             *, lamb: float, erase_scale: float, preserve_scale: float,
             tick: Callable[[int], None] | None = None) -> None:
    """Replace each layer's weight, in place and in float64 arithmetic, by UCE's closed-form solution
    (module docstring) for erased rows ``c_erase`` (n × d) with guide rows ``c_guide`` (n × d),
    whose outputs under the layer's current weight are the targets, and preserved rows ``c_keep``
    (m × d, may be empty); ``tick(1)`` after each layer."""
    d = c_erase.shape[1]
    right = (lamb * torch.eye(d, dtype=torch.float64)
             + erase_scale * c_erase.T @ c_erase + preserve_scale * c_keep.T @ c_keep)
    with torch.no_grad():
        for layer in layers:
            W = layer.weight.double()
            v_star = c_guide @ W.T                      # (n_erase, out)
            left = (lamb * W + erase_scale * v_star.T @ c_erase
                    + preserve_scale * (c_keep @ W.T).T @ c_keep)
            layer.weight.copy_(torch.linalg.solve(right, left.T).T.to(layer.weight.dtype))
            if tick is not None:
                tick(1)
