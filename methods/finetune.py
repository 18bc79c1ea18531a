"""Naive sequential fine-tuning: the "stability crisis" control.

Each request fine-tunes the whole UNet, starting from the previous step's model, with the
plain denoising loss on pairs (forget prompt, image of its mapped prompt): the forget prompt is
taught to produce the anchor's images. There is no retain term, no regularisation and no frozen
teacher, so whatever the edit disturbs is never repaired — the failure mode the CUIG and DFR
papers document for sequential requests ("Continual Unlearning for Text-to-Image Diffusion
Models: A Regularization Perspective", CUIG, ICLR 2026; DFR, arXiv:2512.02657, §1). Culbench's
own control row; no reference code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch.nn.functional as F

from culbench.api import Method, StepContext, T2IModel, UnlearnRequest, register_method
from culbench.training import Trainer, mapped_bank, noised, pick


@register_method("finetune")
class NaiveFinetune(Method):
    """Naive sequential fine-tuning toward the mapped prompt's images, with no retain term."""

    @dataclass(frozen=True)
    class Config:
        lr: float = 1e-4                 # AdamW learning rate (DFR's ToyWorld lr)
        iterations: int = 80             # optimiser steps per request
        batch_size: int = 32
        anchor_images: int = 128         # images generated from the mapped prompts per request
        sample_steps: int = 20           # DDIM steps for them
        param_group: Literal["full", "xattn", "xattn_kv", "non_xattn"] = "full"
        grad_clip: float = 1.0

    #: ``culbench tune``: the defaults plus 7 of these points (the same budget for every method).
    tune_grid: ClassVar[dict[str, tuple[Any, ...]]] = {"lr": (5e-5, 1e-4, 2e-4), "param_group": ("full", "xattn", "xattn_kv")}

    trains = ("full", "xattn", "xattn_kv", "non_xattn")

    def unlearn(self, model: T2IModel, request: UnlearnRequest, ctx: StepContext) -> T2IModel:
        cfg = self.config
        rng = ctx.rng()
        gen = ctx.generator()
        size = ctx.budget.samples(cfg.anchor_images)
        pairs, x0_bank = mapped_bank(model, request, size, rng, ctx.sample_seed(), cfg.sample_steps)
        prompts = [p.prompt for p in pairs]
        trainer = Trainer(model, cfg.param_group, ctx, lr=cfg.lr, iterations=cfg.iterations,
                          description=f"finetune: forgetting {request.concept.id}")
        student = trainer.student
        for _ in trainer.iterations():
            batch = pick(rng, size, min(cfg.batch_size, size))
            x0 = x0_bank[batch]
            x_t, t, noise = noised(student, x0, student.num_train_timesteps, gen)
            pred = student.predict(x_t, t, student.encode([prompts[i] for i in batch]))
            trainer.step(F.mse_loss(pred, student.target(x0, noise, t)), cfg.grad_clip)
        return trainer.finish()
