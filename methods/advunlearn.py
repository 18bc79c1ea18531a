"""AdvUnlearn — adversarial training of the text encoder for robust concept erasure, run sequentially.

Paper: Zhang, Chen, Jia, Zhang, Fan, Liu, Hong, Ding, Liu, "Defensive Unlearning with Adversarial
Training for Robust Concept Erasure in Diffusion Models", NeurIPS 2024, arXiv:2405.15234. Reference
code: github.com/OPTML-Group/AdvUnlearn at commit 9d231249f9af13626e8bb9dcef5521f11d262498
(``train-scripts/AdvUnlearn.py``, ``utils/attack_util.py``, ``utils/get_loss.py``). Re-implemented
from the paper and the reference's documented behaviour; nothing is copied.

A min-max over the text encoder θ and an adversarial prompt perturbation δ. Per iteration, a batch
of forget prompts c_f gives intermediate latents x_t (a random number of DDIM steps of the frozen
model at CFG ``start_guidance``, as in ESD) and the frozen model's ε*(x_t, "") and ε*(x_t, c_f);

1. **attack** (max over δ): ``adv_tokens`` soft word embeddings prefixed to c_f (the reference's
   ``prefix_k``: after the start token) are optimised for ``attack_steps`` Adam steps (the
   reference's ``pgd``; ``attack_method="fast_at"`` takes the gradient's sign) so that the current
   model, prompted with them, predicts the frozen model's ε*(x_t, c_f) again: the words that
   bring the concept back;
2. **defence** (min over θ): with δ fixed, the text encoder is trained on the ESD loss of the
   adversarial prompt, ``|| ε(x_t, θ(δ ⊕ c_f)) − [ε*(x_t, "") − η (ε*(x_t, c_f) − ε*(x_t, ""))] ||²``,
   plus ``retain_loss_w`` × the utility loss on retain prompts c_r, ``|| ε(x_r, θ(c_r)) − ε*(x_r, c_r) ||²``
   (x_r sampled from c_r the same way; the reference's ``--retain_train reg``).

The first ``warmup`` iterations skip the attack and train on c_f itself (the reference's
``warmup_iter``; scaled down with the iterations when a profile caps them, so a smoke run attacks
too). Only the text encoder moves (the reference's ``text_encoder_full``); the UNet is the one
handed in. Sequentially each request starts from the previous step's model (its trained
encoder included: the runner stores it in the step's weights) and the frozen model is that
previous model (``frozen="base"``: the step-0 model). Training goes through ``culbench.training``'s
``Trainer`` with its ``"text_encoder"`` group, so the CUIG regularisers compose (``advunlearn+l2sp``).

Deviations:

1. **Retain prompts:** the request's retain prompts (related and general) instead of the reference's
   COCO object prompts (``--dataset_retain coco_object``); with none, the retain term is left out.
2. **Prompts:** the request's forget prompts (concept in context) instead of the bare concept word,
   a batch of ``batch_size`` per iteration (the reference: one word, batch 1); the perturbation δ is
   shared by the batch.
3. **One x_t per iteration:** the attack's steps reuse the iteration's x_t and timestep instead of
   drawing a fresh partial trajectory per attack step (each costs a partial DDIM sampling; the
   reference draws 30 of them per iteration).
4. **Scale:** ToyWorld defaults (``iterations`` 40, ``attack_steps`` 4, ``warmup`` 8, ``ddim_steps`` 10,
   batches of 8) are scaled to the 2-core budget; ``attack_lr`` is raised from 1e-3 to 1e-2 so that
   4 Adam steps move δ about as far as the reference's 30; ``attack_init="latest"`` (the reference
   code's default; its README example uses ``random``) carries δ over iterations, so the short
   attacks add up. ``lr`` 1e-4 for ToyWorld's small encoder (not tuned on validation prompts yet);
   the reference settings are in ``SD_DEFAULTS``. No layer-subset option (the reference's
   ``text_encoder_layer*``): the backward pass through the UNet dominates, so it would save little.
5. **Optimiser:** AdamW (``culbench.training``, no weight decay, with gradient clipping) instead of
   Adam; the reference's ``--lr`` is parsed as an int but defaults to 1e-5, which is what it uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F

from culbench.api import Method, StepContext, T2IModel, UnlearnRequest, register_method
from culbench.training import TEXT_ENCODER, Trainer, encode_with_input_vectors, pick

#: The reference README's command (``--attack_step 30 --retain_loss_w 0.3 --attack_init random
#: --train_method text_encoder_full``) with the reference code's defaults for everything else.
SD_DEFAULTS = {"lr": 1e-5, "iterations": 1000, "batch_size": 1, "retain_batch": 5, "retain_loss_w": 0.3,
               "adv_tokens": 1, "attack_steps": 30, "attack_lr": 1e-3, "attack_method": "pgd",
               "attack_init": "random", "warmup": 200, "negative_guidance": 1.0, "start_guidance": 3.0,
               "ddim_steps": 50}


@dataclass(frozen=True)
class SoftPrefix:
    """Prompts as token ids with ``k`` soft positions right after the start token (``slots``: the
    soft token each position holds, ``-1`` elsewhere), for :func:`encode_with_input_vectors`."""

    ids: torch.Tensor
    slots: torch.Tensor
    k: int

    def encode(self, model: T2IModel, vectors: torch.Tensor | None = None) -> torch.Tensor:
        """Text embeddings ``(B, L, D)``, differentiable in the text encoder and in ``vectors``."""
        if vectors is None:  # no soft positions: one unused row to index
            vectors = model.text_encoder.get_input_embeddings().weight[:1].detach()
        return encode_with_input_vectors(model, self.ids, self.slots, vectors)


def soft_prefix(tokenizer: Any, prompts: list[str], k: int) -> SoftPrefix:
    """``prompts`` tokenised with ``k`` soft positions after the start token (the reference's
    ``prefix_k``); a prompt that no longer fits loses its last words, never its end-of-text token."""
    length = tokenizer.model_max_length
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    filler = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else pad
    rows = []
    for prompt in prompts:
        ids = tokenizer(prompt, truncation=True, max_length=length).input_ids
        ids = ids[:1] + [filler] * k + ids[1:]
        if len(ids) > length:
            ids = ids[: length - 1] + ids[-1:]
        rows.append(ids + [pad] * (length - len(ids)))
    ids = torch.tensor(rows)
    slots = torch.full_like(ids, -1)
    slots[:, 1:1 + k] = torch.arange(k)
    return SoftPrefix(ids, slots, k)


def attack(model: T2IModel, prefix: SoftPrefix, x_t: torch.Tensor, t: torch.Tensor, wanted: torch.Tensor,
           init: torch.Tensor, *, steps: int, lr: float, sign: bool = False) -> tuple[torch.Tensor, float]:
    """δ ``(k, D)`` after ``steps`` Adam steps from ``init`` on ``|| ε(x_t, δ ⊕ c) − wanted ||²`` (the
    model's weights are not touched); returns it and that loss at the returned δ."""
    delta = init.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([delta], lr=lr)
    for _ in range(steps):
        loss = F.mse_loss(model.predict(x_t, t, prefix.encode(model, delta)), wanted)
        (grad,) = torch.autograd.grad(loss, [delta])
        delta.grad = grad.sign() if sign else grad  # fast_at: the sign of the gradient
        opt.step()
    with torch.no_grad():
        final = F.mse_loss(model.predict(x_t, t, prefix.encode(model, delta)), wanted)
    return delta.detach(), float(final)


def random_words(model: T2IModel, k: int, gen: torch.Generator) -> torch.Tensor:
    """The input embeddings ``(k, D)`` of ``k`` random vocabulary entries (the reference's random init)."""
    table = model.text_encoder.get_input_embeddings().weight
    rows = torch.randint(0, table.shape[0], (k,), generator=gen)
    return table[rows.to(table.device)].detach().float().clone()


@register_method("advunlearn")
class AdvUnlearn(Method):
    """AdvUnlearn (Zhang et al., NeurIPS 2024): the text encoder adversarially trained on ESD + utility loss."""

    @dataclass(frozen=True)
    class Config:
        lr: float = 1e-4                  # AdamW learning rate of the text encoder (SD: 1e-5)
        iterations: int = 40              # optimiser steps per request (SD: 1000)
        batch_size: int = 8               # forget prompts per iteration (SD: 1)
        retain_batch: int = 8             # retain prompts per iteration (SD: 5)
        retain_loss_w: float = 0.3        # γ, weight of the utility-retain loss (SD: 0.3)
        adv_tokens: int = 1               # soft tokens prefixed to the forget prompt (SD: 1)
        attack_steps: int = 4             # Adam steps of each attack (SD: 30)
        attack_lr: float = 1e-2           # their learning rate on δ (SD: 1e-3)
        attack_method: Literal["pgd", "fast_at"] = "pgd"  # fast_at: signed gradient steps
        attack_init: Literal["latest", "random"] = "latest"  # δ from the last attack, or random words
        warmup: int = 8                   # iterations without attack at the start (SD: 200)
        negative_guidance: float = 1.0    # η of the ESD target (SD: 1)
        start_guidance: float = 3.0       # CFG of the partial sampling that makes x_t (SD: 3)
        ddim_steps: int = 10              # DDIM steps of that sampling (SD: 50)
        frozen: Literal["previous", "base"] = "previous"  # the teacher: the previous step's model or step 0's
        grad_clip: float = 1.0

    #: ``culbench tune``: the defaults plus 7 of these points (the same budget for every method).
    tune_grid: ClassVar[dict[str, tuple[Any, ...]]] = {"lr": (5e-5, 1e-4, 2e-4), "retain_loss_w": (0.1, 0.3, 1.0)}

    trains = ("text_encoder",)

    def unlearn(self, model: T2IModel, request: UnlearnRequest, ctx: StepContext) -> T2IModel:
        cfg = self.config
        rng = ctx.rng()
        gen = ctx.generator(1)
        frozen = ctx.base_model() if cfg.frozen == "base" and ctx.base_model else model
        trainer = Trainer(model, TEXT_ENCODER, ctx, lr=cfg.lr, iterations=cfg.iterations,
                          description=f"advunlearn: erasing {request.concept.id}")
        student = trainer.student
        student.unet.eval()
        forget = [pair.prompt for pair in request.forget]
        retain = request.retain_prompts()
        delta, warmup = None, cfg.warmup * trainer.total // max(1, cfg.iterations)  # scaled with a profile's cap
        for it in trainer.iterations():
            batch = [forget[i] for i in pick(rng, len(forget), cfg.batch_size)]
            stop = rng.randrange(cfg.ddim_steps)
            x_t, t, target, wanted = self._forget_targets(frozen, batch, stop, ctx.sample_seeds(0, len(batch),
                                                                                              start=it * len(batch)))
            prefix = soft_prefix(student.tokenizer, batch, cfg.adv_tokens if it >= warmup else 0)
            if prefix.k:
                if delta is None or cfg.attack_init == "random":
                    delta = random_words(student, prefix.k, gen)
                delta, _ = attack(student, prefix, x_t, t, wanted, delta, steps=cfg.attack_steps,
                                  lr=cfg.attack_lr, sign=cfg.attack_method == "fast_at")
            loss = F.mse_loss(student.predict(x_t, t, prefix.encode(student, delta if prefix.k else None)), target)
            if retain and cfg.retain_loss_w:
                kept = [retain[i] for i in pick(rng, len(retain), cfg.retain_batch)]
                seeds = ctx.sample_seeds(1, len(kept), start=it * len(kept))
                loss = loss + cfg.retain_loss_w * self._retain_loss(student, frozen, kept, stop, seeds)
            trainer.step(loss, cfg.grad_clip)
        return trainer.finish()

    def _forget_targets(self, frozen: T2IModel, batch: list[str], stop: int,
                        seeds: list[int]) -> tuple[torch.Tensor, ...]:
        """x_t and t from the frozen model's partial sampling of ``batch``, the ESD target
        ε*(x_t, "") − η (ε*(x_t, c) − ε*(x_t, "")) and the attacker's aim ε*(x_t, c)."""
        cfg = self.config
        with torch.no_grad():
            x_t, t = frozen.sample_partial(batch, seeds, steps=cfg.ddim_steps, stop=stop,
                                           guidance=cfg.start_guidance)
            e_null = frozen.predict(x_t, t, frozen.encode([""] * len(batch)))
            e_concept = frozen.predict(x_t, t, frozen.encode(batch))
        return x_t, t, e_null - cfg.negative_guidance * (e_concept - e_null), e_concept

    def _retain_loss(self, student: T2IModel, frozen: T2IModel, prompts: list[str], stop: int,
                     seeds: list[int]) -> torch.Tensor:
        """``|| ε(x_r, θ(c_r)) − ε*(x_r, c_r) ||²`` on latents the frozen model draws from ``prompts``."""
        cfg = self.config
        with torch.no_grad():
            x_r, t_r = frozen.sample_partial(prompts, seeds, steps=cfg.ddim_steps, stop=stop,
                                             guidance=cfg.start_guidance)
            kept = frozen.predict(x_r, t_r, frozen.encode(prompts))
        plain = soft_prefix(student.tokenizer, prompts, 0)
        return F.mse_loss(student.predict(x_r, t_r, plain.encode(student)), kept)
