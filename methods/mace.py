"""MACE — Mass Concept Erasure: a closed-form refinement, one rank-1 LoRA per concept, a closed-form fusion.

Paper: Lu, Wang, Li, Liu, Kong, "MACE: Mass Concept Erasure in Diffusion Models", CVPR 2024,
arXiv:2403.06135. Reference code: github.com/Shilin-LU/MACE at commit
057e7a6edadc6bbb5ca94700f416372e35bed083 (``src/cfr_lora_training.py``: stages 1 and 2;
``src/cfr_utils.py``: ``find_matching_indices``, ``prepare_k_v``, ``closed_form_refinement``,
``AttnController``, ``importance_sampling_fn``; ``src/fuse_lora_close_form.py``: stage 3;
``configs/celebrity/erase_cele_10.yaml``, ``configs/object/erase_bird.yaml``). Re-implemented from
culbench's research notes and a reading of that code; nothing is copied.

Per request, on every cross-attention projection W ∈ {attn2.to_k, attn2.to_v} (W_in: the weights handed in):

1. **Closed-form refinement** (UCE's solve, :func:`culbench.closed_form.solve_kv`): each forget
   prompt is paired with its *mapping* prompt (the concept's name replaced by its anchor's,
   ``mapping="anchor"``, as the reference replaces it by the mapping concept; or the sequence's
   mapped prompt, ``"mapped"``); the rows of the tokens the two share at the start and at the end
   (``find_matching_indices``: the words around the concept, which in a causal encoder have read
   it, and end-of-text) are mapped to the mapping prompt's rows' outputs; the concept's own tokens
   are left to stage 2. Preserved: the keep rows (below), scale ``preserve_scale``; λ = ``lamb``.
2. **One rank-1 LoRA per concept** (ΔW = B A on every K and V projection of the refined model, A
   drawn N(0, 1/rank²), B = 0 as diffusers' ``LoRALinearLayer``), ``iterations`` AdamW steps on
   renders of the concept's forget prompts, noised at t drawn by the reference's importance
   sampling (mass on t ∈ [0.2 T, 0.4 T]); the loss is Σ_layers ‖A_l‖, the norm, per cross-attention
   layer, of the attention probabilities that every head and pixel gives the concept's tokens
   and (``use_pooler``) the end-of-text tokens.
3. **Closed-form fusion** of the LoRAs into W: with W₁ the refined weights, C_i every row (start
   to end-of-text) of concept i's forget prompts and C_keep the keep rows,

       W ← argmin λ‖W − W₁‖² + Σ_i ‖W C_iᵀ − (W₁ + ΔW_i) C_iᵀ‖² + s_p ‖W C_keepᵀ − W_in C_keepᵀ‖²
         = (λ W₁ + Σ_i (W₁ + ΔW_i) C_iᵀ C_i + s_p W_in C_keepᵀ C_keep) (λ I + Σ_i C_iᵀ C_i + s_p C_keepᵀ C_keep)⁻¹

   (:func:`fuse_kv`): each LoRA's effect on its own concept's rows is kept in least squares.

Keep rows: every row of up to ``max_prompts`` of the request's ``preserve`` retain prompts and,
with ``keep_previous``, of earlier requests' forget prompts (``request.previous``). **Continual
use:** each request fuses only its own concepts' LoRAs, into the weights it is handed; earlier
LoRAs are not kept or re-fused (nothing in ``ctx.state``): earlier concepts hold because their
forget prompts' rows are kept at their current outputs (W_in), which the last fusion set.

Cost per request: one renders bank (``bank_size`` × ``bank_steps`` DDIM steps), ``iterations``
UNet forward/backward passes of batch ``batch_size`` per concept, two d × d solves per
projection (measured at the ToyWorld defaults: docs/methods_new.md).

Deviations:

1. **No segmentation masks:** the reference restricts the attention loss to Grounded-SAM masks
   of the concept in its training images (``use_gsam_mask``); here every pixel counts (its own
   mask-free branch of ``AttnController``).
2. **Data:** the reference's prompts are its 30 templates around the bare name (``prompt_augmentation``)
   and its images 8 SD renders of them; here the sequence's forget prompts (train split), their
   renders by the model handed in, ``bank_size`` of them.
3. **Rows:** stage 1 and the fusion skip the padding rows (the reference extends its matched and
   all-word rows to position 77); preservation uses the request's retain prompts (and earlier
   forget prompts) instead of the reference's cached COCO and domain embeddings, so the reference's
   scales (``train_preserve_scale`` 1e-4 × (COCO + 8e4 × domain)) do not carry over: one
   ``preserve_scale`` serves both solves (the reference's ``fuse_preserve_scale`` equals its
   ``train_preserve_scale`` in every config).
4. **LoRA plumbing:** the LoRA is a forward hook on the K/V projections (no diffusers processor),
   so it works on every backend; its parameters are not model parameters, so
   ``ctx.regularisers`` do not apply. Its update is AdamW (weight decay 0.01, clip 1) at a
   constant rate, as the reference.
5. **Positions:** concept tokens by :func:`culbench.api.concept_positions` in each prompt; with
   ``use_pooler`` every end-of-text token id (padding too where the tokenizer pads with it, as the
   reference's pooler mask) — per sample (the reference: batch 1).
6. **Fusion targets for kept rows:** the reference's caches hold the original model's outputs,
   W_in at the first request; later the weights handed in (sequential, see above).
7. **Defaults:** ToyWorld (``lr`` 3e-3, 50 steps of batch 4, 16 renders, λ 0.5, s_p 1) from a few
   mock/ToyWorld checks, not yet from ``culbench tune``; the reference's in ``SD_DEFAULTS``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch

from culbench.api import (
    CulbenchError,
    ForgetSet,
    Method,
    StepContext,
    T2IModel,
    UnlearnRequest,
    concept_positions,
    register_method,
    substitute,
)
from culbench.closed_form import kv_layers, solve_kv
from culbench.training import cross_attention_maps, indexed_bank, optimiser, pick, prompt_rows, step

#: ``configs/celebrity/erase_cele_10.yaml`` (SD 1.4; objects, ``erase_bird.yaml``: lr 1e-5, lamb 10, s_p 0).
#: λ = 0 needs the kept and erased rows to span the text dimension (the reference has its COCO cache).
SD_DEFAULTS = {"lr": 1e-4, "iterations": 50, "batch_size": 1, "rank": 1, "lamb": 0.0, "preserve_scale": 1e-4,
               "use_pooler": True, "importance_sampling": True}

_WEIGHT_DECAY = 0.01  # adam_weight_decay


def shared_rows(tokenizer: Any, prompt: str, mapping: str) -> tuple[list[int], list[int]]:
    """Positions of the tokens ``prompt`` and ``mapping`` share at their start and at their end
    (end-of-text included, padding not), pairwise: the reference's ``find_matching_indices``."""
    a = list(tokenizer(prompt, truncation=True, max_length=tokenizer.model_max_length).input_ids)
    b = list(tokenizer(mapping, truncation=True, max_length=tokenizer.model_max_length).input_ids)
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < min(len(a), len(b)) - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    return (list(range(head)) + list(range(len(a) - tail, len(a))),
            list(range(head)) + list(range(len(b) - tail, len(b))))


def fuse_kv(layers: Sequence[torch.nn.Linear], deltas: Sequence[Sequence[torch.Tensor]],
            grams: Sequence[torch.Tensor], keep_gram: torch.Tensor, start: Sequence[torch.Tensor], *,
            lamb: float, preserve_scale: float) -> None:
    """Stage 3, in place and in float64: each layer's weight W₁ becomes the least-squares weight
    (module docstring) that gives concept i's rows (Gram ``grams[i]``, d × d) what W₁ + ``deltas[i][l]``
    gave them, the keep rows (Gram ``keep_gram``) what ``start[l]`` gave them, pulled to W₁ by λ."""
    d = keep_gram.shape[0]
    right = lamb * torch.eye(d, dtype=torch.float64) + preserve_scale * keep_gram + sum(grams)
    with torch.no_grad():
        for n, layer in enumerate(layers):
            w = layer.weight.detach().double().cpu()
            left = lamb * w + preserve_scale * start[n].double().cpu() @ keep_gram
            for gram, delta in zip(grams, deltas, strict=True):
                left = left + (w + delta[n]) @ gram
            layer.weight.copy_(torch.linalg.solve(right, left.T).T.to(layer.weight))


class KVLoRA:
    """Rank-``rank`` LoRA adapters on ``layers`` as forward hooks (output += B A x), while attached."""

    def __init__(self, layers: Sequence[torch.nn.Linear], rank: int, gen: torch.Generator) -> None:
        self.layers = list(layers)
        self.down = [torch.nn.Parameter((torch.randn(rank, m.in_features, generator=gen) / rank).to(m.weight.device))
                     for m in self.layers]
        self.up = [torch.nn.Parameter(torch.zeros(m.out_features, rank, device=m.weight.device)) for m in self.layers]
        self._handles: list[Any] = []

    @property
    def params(self) -> list[torch.nn.Parameter]:
        return self.down + self.up

    def __enter__(self) -> KVLoRA:
        for n, layer in enumerate(self.layers):
            def hook(module: Any, inputs: Any, output: torch.Tensor, n: int = n) -> torch.Tensor:
                return output + (inputs[0].float() @ self.down[n].T @ self.up[n].T).to(output.dtype)
            self._handles.append(layer.register_forward_hook(hook))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def deltas(self) -> list[torch.Tensor]:
        """ΔW = B A per layer (out × d), float64."""
        return [(b @ a).detach().double().cpu() for a, b in zip(self.down, self.up, strict=True)]


def timestep_weights(total: int) -> torch.Tensor:
    """The reference's importance-sampling density over t ∈ [0, total): σ(0.05(t'−200)) − σ(0.05(t'−400))
    with t' = t · 1000 / total (its 1000-step schedule)."""
    t = torch.arange(total, dtype=torch.float64) * 1000.0 / total
    return torch.sigmoid(0.05 * (t - 200)) - torch.sigmoid(0.05 * (t - 400))


def gram(rows: Sequence[torch.Tensor], d: int) -> torch.Tensor:
    """Σ c cᵀ over the rows of ``rows`` (each n × d), float64 d × d (zeros without any)."""
    c = torch.cat(list(rows)).double().cpu() if rows else torch.zeros(0, d, dtype=torch.float64)
    return c.T @ c


def attention_energy(model: T2IModel, x_t: torch.Tensor, t: torch.Tensor, emb: torch.Tensor,
                     mask: torch.Tensor) -> torch.Tensor:
    """Σ_layers ‖A_l‖: per cross-attention layer of ``model``, the norm of the probabilities every
    head and pixel gives the positions ``mask`` ``(B, L)`` marks (the reference's mask-free loss)."""
    with cross_attention_maps(model) as maps:
        model.predict(x_t, t, emb)
    keep = mask.to(maps[0].device, maps[0].dtype)[:, None, None, :]
    return torch.stack([(m * keep).norm() for m in maps]).sum()


@register_method("mace")
class MACE(Method):
    """MACE (Lu et al., CVPR 2024): closed-form refinement, a rank-1 LoRA per concept, closed-form fusion."""

    @dataclass(frozen=True)
    class Config:
        lr: float = 3e-3                 # LoRA AdamW learning rate (reference: 1e-4 celebrities, 1e-5 objects)
        iterations: int = 50             # LoRA steps per concept (reference 50)
        batch_size: int = 4              # renders per step (reference 1)
        rank: int = 1                    # LoRA rank (reference 1)
        bank_size: int = 16              # renders of the forget prompts per concept
        bank_steps: int = 10             # DDIM steps per render
        use_pooler: bool = True          # the loss also counts the end-of-text tokens (reference true)
        importance_sampling: bool = True  # t mostly in [0.2 T, 0.4 T] (reference true); else U[0, T)
        lamb: float = 0.5                # λ of both closed forms (reference: 0 celebrities, 10 objects)
        preserve_scale: float = 1.0      # s_p of both closed forms (reference 1e-4 on its caches)
        keep_previous: bool = True       # keep earlier requests' forget rows at their current outputs
        mapping: Literal["anchor", "mapped"] = "anchor"  # stage 1's mapping prompt
        max_prompts: int = 64            # forget / retain / earlier prompts used per concept or side
        preserve: Literal["all", "related", "general"] = "all"
        grad_clip: float = 1.0           # max_grad_norm

    #: ``culbench tune``: the defaults plus 7 of these points (the same budget for every method).
    tune_grid: ClassVar[dict[str, tuple[Any, ...]]] = {"lr": (1e-3, 3e-3, 1e-2), "lamb": (0.1, 0.5, 2.0)}

    trains = ("xattn_kv",)

    def unlearn(self, model: T2IModel, request: UnlearnRequest, ctx: StepContext) -> T2IModel:
        cfg = self.config
        if cfg.rank < 1 or cfg.lamb < 0 or cfg.preserve_scale < 0:
            raise CulbenchError(f"mace: rank ({cfg.rank}) must be >= 1, lamb and preserve_scale must not be negative",
                                "set mace.rank >= 1, mace.lamb >= 0 and mace.preserve_scale >= 0")
        rng, gen = ctx.rng(), ctx.generator()
        forget = [self._forget_prompts(model, target, rng) for target in request.all_targets]
        keep = prompt_rows(model, self._keep_prompts(request, rng))
        edited = model.clone()
        edited.unet.requires_grad_(False)
        layers = kv_layers(edited.unet)
        start = [layer.weight.detach().double().cpu().clone() for layer in layers]  # W_in
        old, new = self._refinement_rows(model, request.all_targets, forget)
        c_keep = torch.cat(keep).double() if keep else old[:0]
        solve_kv(layers, old, new, c_keep, lamb=cfg.lamb, erase_scale=1.0, preserve_scale=cfg.preserve_scale,
                 tick=ctx.progress(len(layers), f"mace: refining {request.concept.id}"))
        deltas, grams = [], []
        for n, (target, prompts) in enumerate(zip(request.all_targets, forget, strict=True)):
            bank = self._bank(model, target, prompts, ctx, rng, n)
            deltas.append(self._train_lora(edited, bank, ctx, rng, gen, target.concept.id))
            grams.append(gram(prompt_rows(model, prompts), old.shape[1]))
        fuse_kv(layers, deltas, grams, gram(keep, old.shape[1]), start, lamb=cfg.lamb,
                preserve_scale=cfg.preserve_scale)
        edited.unet.eval()
        return edited

    def _forget_prompts(self, model: T2IModel, target: ForgetSet, rng: random.Random) -> list[str]:
        """Up to ``max_prompts`` of the target's forget prompts that name it."""
        prompts = [p for p in target.prompts if concept_positions(model.tokenizer, p, target.concept.name)]
        if not prompts:
            raise CulbenchError(f"mace: the name '{target.concept.name}' of concept '{target.concept.id}' occurs in "
                                "none of its forget prompts", "fix the concept's name in concepts.yaml or its prompts")
        return rng.sample(prompts, min(self.config.max_prompts, len(prompts)))

    def _keep_prompts(self, request: UnlearnRequest, rng: random.Random) -> list[str]:
        """Up to ``max_prompts`` retain prompts, then as many of each earlier request's forget prompts."""
        cfg = self.config
        retain = request.retain_prompts(cfg.preserve)
        keep = rng.sample(retain, min(cfg.max_prompts, len(retain)))
        for earlier in request.previous if cfg.keep_previous else ():
            keep += rng.sample(list(earlier.prompts), min(cfg.max_prompts, len(earlier.prompts)))
        return keep

    def _refinement_rows(self, model: T2IModel, targets: Sequence[ForgetSet],
                         forget: Sequence[list[str]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage 1's rows (float64): the forget prompts' rows shared with their mapping prompts, and those."""
        old, new = [], []
        for target, prompts in zip(targets, forget, strict=True):
            mapped = {pair.prompt: pair.mapped for pair in target.pairs}
            anchor = target.anchor.name if target.anchor else ""  # no anchor: the name dropped
            for prompt in prompts:
                other = mapped[prompt] if self.config.mapping == "mapped" else \
                    substitute(prompt, target.concept.name, anchor)
                rows_a, rows_b = shared_rows(model.tokenizer, prompt, other)
                a, b = model.encode([prompt, other])
                old.append(a[rows_a])
                new.append(b[rows_b])
        return torch.cat(old).double(), torch.cat(new).double()

    def _bank(self, model: T2IModel, target: ForgetSet, prompts: list[str], ctx: StepContext, rng: random.Random,
              n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Text embeddings, renders (by ``model``) and loss positions ``(B, L)`` of ``bank_size`` forget prompts."""
        cfg = self.config
        size = ctx.budget.samples(cfg.bank_size)
        index, x0 = indexed_bank(model, prompts, size, rng, ctx.sample_seed(0, n * size), cfg.bank_steps)
        chosen = [prompts[i] for i in index]
        tok = model.tokenizer
        ids = tok(chosen, padding="max_length", max_length=tok.model_max_length, truncation=True,
                  return_tensors="pt").input_ids
        mask = torch.zeros(ids.shape, dtype=torch.bool)
        for i, prompt in enumerate(chosen):
            cols, eos = concept_positions(tok, prompt, target.concept.name) or ([], 0)
            mask[i, cols] = True
            if cfg.use_pooler:  # end-of-text, and the padding after it where it is the same token
                mask[i, eos:] |= ids[i, eos:] == ids[i, eos]
        with torch.no_grad():
            emb = model.encode(chosen)
        return emb, x0, mask

    def _train_lora(self, model: T2IModel, bank: tuple[torch.Tensor, torch.Tensor, torch.Tensor], ctx: StepContext,
                    rng: random.Random, gen: torch.Generator, concept: str) -> list[torch.Tensor]:
        """Stage 2: a LoRA on ``model``'s K/V trained to shrink the concept's attention; its ΔW per layer."""
        cfg = self.config
        emb, x0, mask = bank
        lora = KVLoRA(kv_layers(model.unet), cfg.rank, gen)
        opt, sched = optimiser(lora.params, lr=cfg.lr, weight_decay=_WEIGHT_DECAY)
        total = model.num_train_timesteps
        density = timestep_weights(total) if cfg.importance_sampling else torch.ones(total, dtype=torch.float64)
        steps = ctx.budget.iterations(cfg.iterations)
        tick = ctx.progress(steps, f"mace: LoRA for {concept}")
        with lora, torch.enable_grad():
            for _ in range(steps):
                rows = torch.tensor(pick(rng, len(x0), cfg.batch_size))
                batch = x0[rows.to(x0.device)]
                t = torch.multinomial(density, len(rows), replacement=True, generator=gen)
                noise = torch.randn(batch.shape, generator=gen).to(batch.device)
                loss = attention_energy(model, model.add_noise(batch, noise, t), t, emb[rows.to(emb.device)],
                                        mask[rows])
                step(loss, opt, sched, lora.params, cfg.grad_clip)
                tick(1)
        return lora.deltas()
