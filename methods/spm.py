"""SPM — Concept Semi-Permeable Membrane: one rank-1 LoRA membrane per concept, merged in sequence.

Paper: Lyu, Yang, Hong, Chen, Wang, Xu, Han, "One-dimensional Adapter to Rule Them All: Concepts,
Diffusion Models and Erasing Applications" (SPM), CVPR 2024, arXiv:2312.16145. Reference code:
github.com/Con6924/SPM at commit 3dd762e6895b23cd20cf1653a16addc5c16a12f3 (2023-12-28):
``train_spm.py`` (training loop), ``src/models/spm.py`` (the membrane layers), ``src/configs/prompt.py``
(the losses), ``src/engine/sampling.py`` (anchor sampling), ``infer_spm.py`` (facilitated transport),
``configs/pikachu/config.yaml`` and ``prompt.yaml`` (settings). Re-implemented from culbench's research
notes and a reading of that code; nothing is copied.

Per concept of a request, a *membrane* is trained: every ``Linear`` and ``Conv2d`` inside the UNet's
transformer blocks (``Transformer2DModel``: proj_in/out, self- and cross-attention, feed-forward) gets
a low-rank side branch ``x -> (alpha / rank) * up(down(x))`` (``down`` Kaiming-uniform, ``up`` zero,
so training starts from the model itself); only ``down`` and ``up`` train. Each iteration:

1. a random number ``stop`` in [1, ``ddim_steps``) of DDIM steps of the model *with* the membrane,
   from the concept's prompts at CFG ``start_guidance``, gives a latent x_t (no gradients);
2. **erase:** the membrane model's prediction on the concept is regressed onto the frozen model's
   negatively guided one, ``ε*(x_t, "") − η · (ε*(x_t, c) − ε*(x_t, ""))`` (η = ``erase_guidance``);
3. **latent anchoring:** ``anchor_batch`` conditions are drawn — by default, as in the reference, random
   text embeddings: Gaussian directions, accepted with probability 1 − cos(·, concept embedding), scaled
   to U[0.8, 1.2] × the concept embedding's norm — and the membrane model's predictions on them at x_t
   are held to the frozen model's, weighted by ``la_strength``.

**The design question: facilitated transport.** At inference the reference scales each membrane by
the prompt's similarity to its concept (max of the CLIP cosine of the flattened prompt embeddings and
the share of the concept's tokens found in the prompt) and sums the scaled membranes. culbench stores a
step as the ``state_dict()`` tensors that differ from the base model and evaluates it through the
backend's own sampling, so a prompt-dependent membrane would need the model to carry extra modules
that (i) appear in ``state_dict()`` under keys the base UNet's ``load_state_dict`` accepts when a run
resumes, (ii) survive ``clone()``, (iii) belong to a declared parameter group, and (iv) are called
with the prompt's similarity by every backend's sampler. None of this exists in the contract, and
forward hooks are neither saved nor restored. So this implementation *merges* each trained membrane
into the weights it sits on (W ← W + (alpha / rank) · up · down): option (a). What is lost is only the
inference-time gating; the training objective, membrane shape and per-concept stacking are kept.
With ``train_on="base"`` (default) every membrane is trained against the step-0 model, independently of
the earlier ones, as the reference trains one SPM per concept on SD and stacks them; the request's
weights are the previous step's plus the new membrane.

Deviations:

1. **No facilitated transport** (above): every merged membrane acts on every prompt with multiplier
   1, i.e. the reference's inference with ``--spm_multiplier 1``; the anchoring loss is what keeps
   other prompts in place. The reference combines several SPMs by summing their ``up`` and their
   ``down`` factors separately (cross terms between concepts); here each membrane's own product is
   added.
2. **Prompts:** the request's forget prompts (concept in context, train split), ``batch_size`` per
   iteration, instead of the bare concept word with batch 1; a request with several concepts trains
   one membrane per concept (``iterations`` each). ``anchors="retain"`` draws the anchor conditions
   from the request's retain prompts instead of random embeddings (not in the reference).
3. **Optimiser:** AdamW with a linear warm-up (``culbench.training.optimiser``), gradient clipping at
   ``grad_clip``; the reference uses 8-bit AdamW, cosine with 3 restarts after a 500-step warm-up.
   Its text-encoder learning rate is unused there too (no text-encoder membrane).
4. **Timestep:** x_t sits on the DDIM grid of ``ddim_steps`` and is denoised at that grid's timestep;
   the reference maps the step index onto the 1000-step schedule (the same point up to rounding).
5. **Parameterisation:** ToyWorld predicts v; the guidance arithmetic is linear, so the erase target
   is built the same way in v-space (on SD it is ε, as in the reference).
6. **Regularisers** (``spm+l2sp``, ``spm+l1sp``, ``spm+selft``) act on the membrane's factors, the
   parameters SPM trains (L2-SP pulls ``up`` toward 0 and ``down`` toward its start, i.e. shrinks the
   membrane); ``gradproj`` and ``l2sp.anchor=base`` address UNet weights that SPM does not train and
   refuse it themselves when training opens.
7. **Scale:** ToyWorld defaults (``iterations`` 60, ``batch_size`` 4, 4 anchors, 10 DDIM steps,
   ``lr`` 1e-3 for the shorter schedule; cost: docs/methods_new.md) are
   scaled to the 2-core budget, not yet tuned; the reference settings are in ``SD_DEFAULTS``.
   ``target="xattn"`` puts membranes on cross-attention only (not in the reference).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F

from culbench.api import CulbenchError, Method, StepContext, T2IModel, UnlearnRequest, register_method
from culbench.training import optimiser, pick, regulariser_edits, step

#: ``configs/pikachu/config.yaml`` and ``prompt.yaml`` of the reference (SD 1.4).
SD_DEFAULTS = {"rank": 1, "alpha": 1.0, "lr": 1e-4, "iterations": 3000, "warmup": 500, "batch_size": 1,
               "anchor_batch": 4, "la_strength": 1000.0, "erase_guidance": 1.0, "start_guidance": 3.0,
               "ddim_steps": 30, "target": "transformer"}

_GROUPS = {"transformer": "full", "xattn": "xattn"}


class Membrane(torch.nn.Module):
    """A low-rank side branch of one ``Linear`` or ``Conv2d`` layer: ``scale * up(down(x))``."""

    def __init__(self, layer: torch.nn.Module, rank: int, alpha: float, gen: torch.Generator) -> None:
        super().__init__()
        self.conv = isinstance(layer, torch.nn.Conv2d)
        shape = tuple(layer.weight.shape)  # (out, in) or (out, in, kh, kw)
        rank = min(rank, shape[0], shape[1]) if self.conv else rank
        fan_in = math.prod(shape[1:])
        bound = 1.0 / math.sqrt(fan_in)  # Kaiming-uniform with a = sqrt(5), as nn.Linear initialises
        down = (torch.rand((rank, *shape[1:]), generator=gen) * 2 - 1) * bound
        self.down = torch.nn.Parameter(down.to(layer.weight.device))
        self.up = torch.nn.Parameter(torch.zeros((shape[0], rank, *([1, 1] if self.conv else [])),
                                                 device=layer.weight.device))
        self.scale = alpha / rank
        self.stride, self.padding = (layer.stride, layer.padding) if self.conv else (None, None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        down, up = self.down.to(x.dtype), self.up.to(x.dtype)
        if self.conv:
            return F.conv2d(F.conv2d(x, down, stride=self.stride, padding=self.padding), up) * self.scale
        return F.linear(F.linear(x, down), up) * self.scale

    def weight_delta(self) -> torch.Tensor:
        """The merged update ``scale * up @ down`` in the layer's weight shape."""
        up = self.up.detach().flatten(1)
        return (up @ self.down.detach().flatten(1)).view(up.shape[0], *self.down.shape[1:]) * self.scale


def membrane_layers(unet: torch.nn.Module, target: str) -> list[tuple[str, torch.nn.Module]]:
    """``(name, layer)`` of every ``Linear`` / ``Conv2d`` (ungrouped) inside the UNet's transformer
    blocks (``target="transformer"``, the reference's choice) or inside their cross-attention only."""
    out = []
    for name, block in unet.named_modules():
        if type(block).__name__ != "Transformer2DModel":
            continue
        for child, layer in block.named_modules():
            full = f"{name}.{child}"
            if target == "xattn" and ".attn2." not in f".{child}.":
                continue
            if isinstance(layer, torch.nn.Linear) or (isinstance(layer, torch.nn.Conv2d) and layer.groups == 1):
                out.append((full, layer))
    return out


def random_anchors(target: torch.Tensor, n: int, rng: random.Random, gen: torch.Generator) -> torch.Tensor:
    """``n`` random conditions shaped like ``target`` ``(L, D)``: Gaussian directions accepted with
    probability 1 − cos(direction, target), scaled to U[0.8, 1.2] × ‖target‖ (the reference's anchor
    sampling; in high dimension nearly every draw is accepted)."""
    flat = target.float().flatten().cpu()
    out = []
    while len(out) < n:
        noise = torch.randn(flat.shape, generator=gen)
        noise = noise / noise.norm()
        if rng.random() < 1.0 - float(F.cosine_similarity(flat, noise, dim=0)):
            out.append((rng.random() * 0.4 + 0.8) * flat.norm() * noise)
    return torch.stack(out).view(n, *target.shape).to(target.device, target.dtype)


@register_method("spm")
class SPM(Method):
    """SPM (Lyu et al., CVPR 2024): a latent-anchored rank-1 membrane per concept, merged into the UNet."""

    @dataclass(frozen=True)
    class Config:
        lr: float = 1e-3                 # AdamW learning rate of the membrane factors (SD: 1e-4)
        iterations: int = 60             # optimiser steps per concept (SD: 3000)
        warmup: int = 10                 # linear warm-up steps (SD: 500)
        rank: int = 1                    # membrane rank (SD: 1)
        alpha: float = 1.0               # membrane scale alpha / rank (SD: 1)
        batch_size: int = 4              # forget prompts per iteration (SD: 1)
        anchor_batch: int = 4            # anchor conditions per iteration (SD: sampling_batch_size 4)
        la_strength: float = 1000.0      # weight of the latent-anchoring loss (SD: 1000)
        erase_guidance: float = 1.0      # η of the erase target (SD: guidance_scale 1)
        start_guidance: float = 3.0      # CFG of the partial sampling that makes x_t (SD: 3)
        ddim_steps: int = 10             # DDIM grid of that sampling (SD: max_denoising_steps 30)
        anchors: Literal["random", "retain"] = "random"  # random embeddings (reference) or retain prompts
        target: Literal["transformer", "xattn"] = "transformer"  # layers that get a membrane
        train_on: Literal["base", "previous"] = "base"  # frozen model each membrane is trained against
        grad_clip: float = 1.0

    #: ``culbench tune``: the defaults plus 7 of these points (the same budget for every method).
    tune_grid: ClassVar[dict[str, tuple[Any, ...]]] = {"lr": (3e-4, 1e-3, 3e-3), "la_strength": (100.0, 1000.0),
                                                       "anchors": ("random", "retain")}

    trains = ("full", "xattn")

    def trained_groups(self) -> tuple[str, ...]:
        return (_GROUPS[self.config.target],)

    def unlearn(self, model: T2IModel, request: UnlearnRequest, ctx: StepContext) -> T2IModel:
        cfg = self.config
        _check(cfg)
        frozen = ctx.base_model() if cfg.train_on == "base" and ctx.base_model else model
        frozen.unet.requires_grad_(False)
        rng, gen = ctx.rng(), torch.Generator().manual_seed(ctx.sample_seed(1))
        pool = [p for s in (*request.related, *request.general) for p in s.prompts]
        if cfg.anchors == "retain" and not pool:
            raise CulbenchError(f"spm: request {request.step} gives no retain prompt to anchor on",
                                "use --set spm.anchors=random")
        edited = model.clone()
        for k, forget in enumerate(request.all_targets):
            membranes = self._train(frozen, forget.prompts, pool, ctx, rng, gen, stream=2 * k,
                                    description=f"spm: erasing {forget.concept.id}")
            with torch.no_grad():
                for name, membrane in membranes.items():
                    weight = edited.unet.get_submodule(name).weight
                    weight.add_(membrane.weight_delta().to(weight.device, weight.dtype))
        edited.unet.eval().requires_grad_(False)
        return edited

    def _train(self, frozen: T2IModel, prompts: Sequence[str], pool: Sequence[str], ctx: StepContext,
               rng: random.Random, gen: torch.Generator, *, stream: int, description: str) -> dict[str, Membrane]:
        """One membrane trained on a copy of ``frozen`` (hooked onto its layers, removed after)."""
        cfg = self.config
        student = frozen.clone()
        student.unet.requires_grad_(False).eval()
        membranes = {name: Membrane(layer, cfg.rank, cfg.alpha, gen)
                     for name, layer in membrane_layers(student.unet, cfg.target)}
        hooks = [student.unet.get_submodule(name).register_forward_hook(
            lambda _m, args, out, mem=mem: out + mem(args[0])) for name, mem in membranes.items()]
        params = [p for mem in membranes.values() for p in (mem.down, mem.up)]
        opt, sched = optimiser(params, lr=cfg.lr, warmup=cfg.warmup)
        total = ctx.budget.iterations(cfg.iterations)
        tick = ctx.progress(total, description)
        for reg in ctx.regularisers:
            reg.begin(student, params)
        try:
            for it in range(total):
                loss = self._loss(student, frozen, list(prompts), pool, ctx, rng, gen, stream, it)
                step(loss, opt, sched, params, cfg.grad_clip, on_grad=regulariser_edits(ctx.regularisers, it))
                tick(1)
        finally:
            for hook in hooks:
                hook.remove()
        return membranes

    def _loss(self, student: T2IModel, frozen: T2IModel, prompts: list[str], pool: Sequence[str],
              ctx: StepContext, rng: random.Random, gen: torch.Generator, stream: int, it: int) -> torch.Tensor:
        """Erase + ``la_strength`` × anchoring loss of one iteration (see the module doc)."""
        cfg = self.config
        batch = [prompts[i] for i in pick(rng, len(prompts), cfg.batch_size)]
        seeds = ctx.sample_seeds(stream, len(batch), start=it * cfg.batch_size)
        x_t, t = student.sample_partial(batch, seeds, steps=cfg.ddim_steps, stop=rng.randrange(1, cfg.ddim_steps),
                                        guidance=cfg.start_guidance)
        emb = frozen.encode(batch)
        index = [i % len(batch) for i in range(cfg.anchor_batch)]
        if cfg.anchors == "retain":
            anchors = frozen.encode([pool[i] for i in pick(rng, len(pool), cfg.anchor_batch)])
        else:
            anchors = torch.cat([random_anchors(emb[i], 1, rng, gen) for i in index])
        with torch.no_grad():
            e_null = frozen.predict(x_t, t, frozen.encode([""] * len(batch)))
            e_concept = frozen.predict(x_t, t, emb)
            target = e_null - cfg.erase_guidance * (e_concept - e_null)
            kept = frozen.predict(x_t[index], t[index], anchors)
        erase = F.mse_loss(student.predict(x_t, t, student.encode(batch)), target)
        anchoring = F.mse_loss(student.predict(x_t[index], t[index], anchors), kept)
        return erase + cfg.la_strength * anchoring


def _check(cfg: Any) -> None:
    """Settings SPM cannot run with, refused before any work."""
    if cfg.ddim_steps < 2 or cfg.rank < 1 or cfg.anchor_batch < 1 or cfg.batch_size < 1:
        raise CulbenchError("spm needs ddim_steps >= 2 and rank, batch_size, anchor_batch >= 1",
                            "set e.g. --set spm.ddim_steps=10")
