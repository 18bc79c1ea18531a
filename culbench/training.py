"""Small pieces every fine-tuning method needs (part of the method-facing core API).

>>> import torch
>>> w = torch.nn.Parameter(torch.ones(3))
>>> opt, sched = optimiser([w], lr=0.1, warmup=2)
>>> [round(g["lr"], 3) for g in opt.param_groups]
[0.05]
"""

from __future__ import annotations

import contextlib
import copy
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from culbench.api import CulbenchError, PromptPair, StepContext, T2IModel, UnlearnRequest

#: The group name that trains the text encoder instead of a UNet group (``trainable_copy``).
TEXT_ENCODER = "text_encoder"


def trainable_copy(model: T2IModel, group: str) -> tuple[T2IModel, list[torch.nn.Parameter]]:
    """A clone of ``model`` whose UNet parameters in ``group`` (only) require gradients.

    ``group="text_encoder"`` (:data:`TEXT_ENCODER`, for a method that declares it in ``trains``)
    trains the text encoder instead: the clone gets its own float32 copy of ``model``'s encoder
    (assigned, never an in-place edit of the shared one) and the UNet stays frozen. ``model``
    itself is frozen (it is the previous step's model, usually the teacher).
    """
    model.unet.requires_grad_(False)
    student = model.clone()
    student.unet.requires_grad_(False)
    if group == TEXT_ENCODER:
        student.text_encoder = copy.deepcopy(model.text_encoder).float().requires_grad_(True).train()
        return student, list(student.text_encoder.parameters())
    params = student.parameters(group)
    for p in params:
        p.requires_grad_(True)
    student.unet.train()
    return student, params


def optimiser(params: Sequence[torch.nn.Parameter], *, lr: float, warmup: int = 0,
              weight_decay: float = 0.0, kind: str = "adamw") -> tuple[torch.optim.Optimizer, Any]:
    """AdamW with a linear warm-up over ``warmup`` steps, then a constant rate.

    The fused kernel is used where torch has one (CPU and CUDA floating-point parameters): the
    same update rule as the per-parameter loop, 3× faster on ToyWorld's 208 tensors.
    ``kind="adamw8bit"`` uses bitsandbytes' 8-bit AdamW instead (the model's ``optimizer`` switch,
    :mod:`culbench.models.performance`).
    """
    if kind == "adamw8bit":
        from culbench.models.performance import adamw8bit

        opt = adamw8bit(params, lr=lr, weight_decay=weight_decay)
    else:
        fused = bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused or None)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, warmup)))
    return opt, sched


def step(loss: torch.Tensor, opt: torch.optim.Optimizer, sched: Any,
         params: Sequence[torch.nn.Parameter], grad_clip: float | None,
         mask: Sequence[torch.Tensor] | None = None,
         pull: tuple[Sequence[torch.Tensor], float] | None = None,
         pull_weights: Sequence[torch.Tensor] | None = None,
         on_grad: Sequence[Callable[[Sequence[torch.nn.Parameter]], None]] = ()) -> None:
    """Backward, optional L2 pull, optional gradient mask (SalUn), the ``on_grad`` edits
    (regularisers), clip, optimiser and scheduler step.

    ``pull=(anchor, c)`` adds the gradient of ``c · Σ w ⊙ (θ − θ_anchor)²``, i.e.
    ``2c · w ⊙ (θ − θ_anchor)``, to every parameter's gradient (``w`` = ``pull_weights``, e.g. an
    EWC Fisher diagonal; 1 when omitted): the same update as adding that term to ``loss``,
    without building its autograd graph (one fused pass instead of three ops per tensor).
    """
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if pull is not None and pull[1]:
        anchor, coef = pull
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        diff = torch._foreach_sub([p.detach() for p in params], list(anchor))
        if pull_weights is not None:
            torch._foreach_mul_(diff, list(pull_weights))
        torch._foreach_add_([p.grad for p in params], diff, alpha=2.0 * coef)
    if mask is not None:
        for p, m in zip(params, mask, strict=True):
            if p.grad is not None:
                p.grad.mul_(m)
    for edit in on_grad:
        edit(params)
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    opt.step()
    sched.step()


def regulariser_edits(regularisers: Sequence[Any],
                      iteration: int) -> list[Callable[[Sequence[torch.nn.Parameter]], None]]:
    """:func:`step`'s ``on_grad`` for the step's ``ctx.regularisers`` at optimiser step ``iteration``
    (what :class:`Trainer` passes; a method with its own loop passes it too, after calling each
    regulariser's ``begin`` with the parameters it trains)."""
    return [lambda params, reg=reg: reg.on_grad(params, iteration) for reg in regularisers]


def finish(student: T2IModel, text_dtype: torch.dtype | None = None) -> T2IModel:
    """Freeze and switch the trained copy to eval mode before returning it (a trained text encoder
    too, cast back to ``text_dtype``, the dtype it was handed in, when given)."""
    student.unet.eval().requires_grad_(False)
    student.text_encoder.eval().requires_grad_(False)
    if text_dtype is not None:
        student.text_encoder.to(text_dtype)
    return student


class Trainer:
    """The opening and the optimiser step every fine-tuning method shares: a trainable copy of
    ``model`` (only ``group`` moves, a UNet group or :data:`TEXT_ENCODER`; ``model`` is frozen),
    AdamW (:func:`optimiser`; 8-bit under the model's ``optimizer=adamw8bit`` switch), the profile's
    cap on ``iterations`` and a progress bar::

        trainer = Trainer(model, cfg.param_group, ctx, lr=cfg.lr, iterations=cfg.iterations,
                          description=f"my_method: forgetting {request.concept.id}")
        for it in trainer.iterations():
            trainer.step(loss_of(trainer.student), cfg.grad_clip)
        return trainer.finish()
    """

    def __init__(self, model: T2IModel, group: str, ctx: StepContext, *, lr: float, iterations: int,
                 description: str, warmup: int = 0, weight_decay: float = 0.0) -> None:
        self.student, self.params = trainable_copy(model, group)
        self._text_dtype = next(model.text_encoder.parameters()).dtype if group == TEXT_ENCODER else None
        switches = getattr(model, "performance", None)  # a plugin model may have none
        self.opt, self.sched = optimiser(self.params, lr=lr, warmup=warmup, weight_decay=weight_decay,
                                         kind=getattr(switches, "optimizer", "adamw"))
        self.total = ctx.budget.iterations(iterations)
        self._tick = ctx.progress(self.total, description)
        self._regularisers = ctx.regularisers
        self._done = 0
        for reg in self._regularisers:
            reg.begin(self.student, self.params)

    def iterations(self) -> Iterator[int]:
        """``0 .. total-1``, advancing the progress bar after each."""
        for it in range(self.total):
            yield it
            self._tick(1)

    def step(self, loss: torch.Tensor, grad_clip: float | None, **options: Any) -> None:
        """:func:`step` on the student's parameters (``mask``, ``pull``, ``pull_weights`` pass
        through), with the step's regularisers (``ctx.regularisers``) editing the gradients."""
        step(loss, self.opt, self.sched, self.params, grad_clip,
             on_grad=regulariser_edits(self._regularisers, self._done), **options)
        self._done += 1

    def finish(self) -> T2IModel:
        """The trained student, frozen (:func:`finish`)."""
        return finish(self.student, self._text_dtype)


def noised(model: T2IModel, x0: torch.Tensor, t_max: int, gen: torch.Generator,
           t_min: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_t, t, noise)`` with ``t ~ U[t_min, t_max)`` and fresh Gaussian noise."""
    t = torch.randint(t_min, t_max, (x0.shape[0],), generator=gen)
    noise = torch.randn(x0.shape, generator=gen).to(x0.device)
    return model.add_noise(x0, noise, t), t, noise


def pick(rng: random.Random, n: int, k: int) -> list[int]:
    """``k`` indices drawn with replacement from ``range(n)``."""
    return [rng.randrange(n) for _ in range(k)]


def indexed_bank(model: T2IModel, prompts: Sequence[str], size: int, rng: random.Random, seed: int,
                 steps: int) -> tuple[list[int], torch.Tensor]:
    """``size`` indices into ``prompts`` drawn with replacement and the model's DDIM latents for
    those prompts (no CFG): a replay/anchor bank. Sample i is seeded ``seed + i`` (with ``seed``
    from ``ctx.sample_seed(stream)``), so the bank is reproducible."""
    index = pick(rng, len(prompts), size)
    latents = model.sample([prompts[i] for i in index], [seed + i for i in range(size)], steps=steps,
                           guidance=1.0, output="latent")
    return index, latents


def sample_bank(model: T2IModel, prompts: Sequence[str], size: int, rng: random.Random, seed: int,
                steps: int) -> tuple[list[str], torch.Tensor]:
    """``size`` prompts drawn with replacement and the model's DDIM latents for them (no CFG):
    :func:`indexed_bank` returning the prompts themselves."""
    index, latents = indexed_bank(model, prompts, size, rng, seed, steps)
    return [prompts[i] for i in index], latents


def mapped_bank(model: T2IModel, request: UnlearnRequest, size: int, rng: random.Random, seed: int,
                steps: int) -> tuple[list[PromptPair], torch.Tensor]:
    """``size`` forget pairs drawn with replacement and the model's latents for their *mapped*
    prompts: anchor/surrogate images to be learnt under the forget prompts."""
    index, latents = indexed_bank(model, [p.mapped for p in request.forget], size, rng, seed, steps)
    return [request.forget[i] for i in index], latents


def denoising_loss(model: T2IModel, x0: torch.Tensor, prompts: Sequence[str], gen: torch.Generator) -> torch.Tensor:
    """The standard diffusion loss ``|| model(x_t, t, c) − target ||²`` with ``t ~ U[0, T)``."""
    x_t, t, noise = noised(model, x0, model.num_train_timesteps, gen)
    return torch.nn.functional.mse_loss(model.predict(x_t, t, model.encode(list(prompts))),
                                        model.target(x0, noise, t))


def prompt_rows(model: T2IModel, prompts: Sequence[str]) -> list[torch.Tensor]:
    """Per prompt, its text-embedding rows from the start token to end-of-text ``(n_tokens, D)``
    (the padding after it left out)."""
    out = []
    for prompt, e in zip(prompts, model.encode(list(prompts)), strict=True):
        ids = model.tokenizer(prompt, truncation=True, max_length=model.tokenizer.model_max_length).input_ids
        out.append(e[: len(ids)])
    return out


def encode_with_input_vectors(model: T2IModel, ids: torch.Tensor, slots: torch.Tensor,
                              vectors: torch.Tensor) -> torch.Tensor:
    """Text embeddings ``(B, L, D)`` of the token ids ``ids`` ``(B, L)`` with the input word
    embedding at every position where ``slots`` ``(B, L)`` holds ``j >= 0`` replaced by
    ``vectors[j]`` (``vectors``: ``(k, D)``), differentiable in ``vectors``: soft tokens, as textual
    inversion learns them (FMN's concept tokens, the attack probe's soft prompts)."""
    slots = slots.to(model.device)

    def put(module: Any, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        chosen = vectors.to(output.dtype)[slots.clamp(min=0)]
        return torch.where((slots >= 0).unsqueeze(-1), chosen, output)

    handle = model.text_encoder.get_input_embeddings().register_forward_hook(put)
    try:
        return model.text_encoder(ids.to(model.device))[0].float()  # SD: fp16 encoder
    finally:
        handle.remove()


class _Recorder:
    """An attention processor: diffusers' plain ``AttnProcessor`` (the attention probabilities
    computed explicitly, not fused) that appends them, ``(B, heads, queries, keys)``, to ``maps``."""

    def __init__(self, maps: list[torch.Tensor]) -> None:
        from diffusers.models.attention_processor import AttnProcessor

        self.maps, self.plain = maps, AttnProcessor()

    def __call__(self, attn: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        scores = attn.get_attention_scores

        def keep(query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
            probs = scores(query, key, mask)
            self.maps.append(probs.unflatten(0, (-1, attn.heads)))
            return probs

        attn.get_attention_scores = keep  # this call only (an instance attribute shadows the method)
        try:
            return self.plain(attn, *args, **kwargs)
        finally:
            del attn.get_attention_scores


@contextlib.contextmanager
def cross_attention_maps(model: T2IModel) -> Iterator[list[torch.Tensor]]:
    """Within the block, every forward pass through a cross-attention layer (``attn2``) of
    ``model``'s UNet appends its attention probabilities ``(B, heads, pixels, tokens)`` to the list
    it yields, in layer order, differentiable (attention re-steering, FMN); each row sums to 1 over
    the text tokens. Any backend (a diffusers UNet: mock, ToyWorld, SD). The layers run diffusers'
    plain attention meanwhile (same result as the fused kernel up to rounding); their processors
    are put back on leaving::

        with cross_attention_maps(student) as maps:
            student.predict(x_t, t, emb)
        energy = sum(m[..., positions].pow(2).sum() for m in maps)
    """
    layers = [m for name, m in model.unet.named_modules() if name.endswith("attn2") and hasattr(m, "set_processor")]
    if not layers:
        raise CulbenchError("the model's UNet has no cross-attention layer (attn2) whose attention can be recorded",
                            "use a backend built on a diffusers UNet2DConditionModel (mock, toyworld, sd)")
    maps: list[torch.Tensor] = []
    saved = [m.processor for m in layers]
    recorder = _Recorder(maps)
    for m in layers:
        m.set_processor(recorder)
    try:
        yield maps
    finally:
        for m, processor in zip(layers, saved, strict=True):
            m.set_processor(processor)
