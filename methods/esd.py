"""ESD — Erasing Concepts from Diffusion Models, run sequentially.

Paper: Gandikota, Materzyńska, Fiotto-Kaufman, Bau, "Erasing Concepts from Diffusion Models",
ICCV 2023, arXiv:2303.07345. Reference code: github.com/rohitgandikota/erasing (CompVis
``train-scripts/train-esd.py``, and the diffusers rewrite ``esd_sd.py``); the sequential
protocol follows CUIG (github.com/justinhylee135/CUIG, ``UnlearningMethods/ESD/train_esd.py``,
commit 084c317): each request starts from the previous step's weights and the frozen model is
the previous checkpoint (``frozen="base"`` = CUIG's ``--use_base_for_frz_unet``).
Re-implemented from culbench's research notes; nothing is copied.

Per iteration: a random number of DDIM steps of the *trainable* model from the forget prompt
at CFG ``start_guidance`` gives an intermediate latent x_t (no gradients); the frozen model
gives ε*(x_t, "") and ε*(x_t, c_f); the student is regressed onto the negatively guided target

    ε_θ(x_t, c_f, t)  →  ε*(x_t, t) − η · (ε*(x_t, c_f, t) − ε*(x_t, t)).

Trained parameters by ``train_method``: ``xattn`` (ESD-x, cross-attention), ``noxattn``
(ESD-u, everything else), ``full``, ``xattn_kv`` (``esd-x-strict``).

Deviations:

1. **Prompts:** the forget prompts of the request (concept in context, train split) instead of
   the bare concept word; a batch of them per iteration (the reference uses batch 1).
2. **Parameterisation:** ToyWorld predicts v; the guidance arithmetic is linear, so the target
   is built the same way in v-space (on SD it is ε, as in the reference).
3. **Scale:** ToyWorld defaults (``iterations`` 80, ``batch_size`` 16, ``ddim_steps`` 10) are
   scaled to the 2-core budget; the reference settings are in ``SD_DEFAULTS``. ``lr`` and
   ``train_method`` were chosen on the validation prompts (grid and results: docs/tuning.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F

from culbench.api import Method, StepContext, T2IModel, UnlearnRequest, register_method
from culbench.training import Trainer, pick

#: The CompVis reference on SD 1.4 (CUIG's sequential runs use the same).
SD_DEFAULTS = {"lr": 1e-5, "iterations": 1000, "batch_size": 1, "negative_guidance": 1.0,
               "start_guidance": 3.0, "ddim_steps": 50, "train_method": "xattn"}

_GROUPS = {"xattn": "xattn", "noxattn": "non_xattn", "full": "full", "xattn_kv": "xattn_kv"}


@register_method("esd")
class ESD(Method):
    """ESD (Gandikota et al., ICCV 2023): negative guidance distilled into the UNet, sequentially."""

    @dataclass(frozen=True)
    class Config:
        lr: float = 6e-5                 # AdamW learning rate (SD: 1e-5); chosen on val
        iterations: int = 80             # optimiser steps per request (SD: 1000)
        batch_size: int = 16             # forget prompts per iteration (SD: 1)
        negative_guidance: float = 1.0   # η (SD CompVis: 1; diffusers rewrite: 2)
        start_guidance: float = 3.0      # CFG of the partial sampling that makes x_t
        ddim_steps: int = 10             # DDIM steps of that sampling (SD: 50)
        train_method: Literal["xattn", "noxattn", "full", "xattn_kv"] = "xattn"
        frozen: Literal["previous", "base"] = "previous"
        grad_clip: float = 1.0

    #: ``culbench tune``: the defaults plus 7 of these points (the same budget for every method).
    tune_grid: ClassVar[dict[str, tuple[Any, ...]]] = {"lr": (3e-5, 6e-5, 1.2e-4), "negative_guidance": (1.0, 2.0, 3.0)}

    trains = ("xattn", "non_xattn", "full", "xattn_kv")

    def trained_groups(self) -> tuple[str, ...]:
        return (_GROUPS[self.config.train_method],)

    def unlearn(self, model: T2IModel, request: UnlearnRequest, ctx: StepContext) -> T2IModel:
        cfg = self.config
        rng = ctx.rng()
        frozen = ctx.base_model() if cfg.frozen == "base" and ctx.base_model else model
        trainer = Trainer(model, _GROUPS[cfg.train_method], ctx, lr=cfg.lr, iterations=cfg.iterations,
                          description=f"esd: erasing {request.concept.id}")
        student = trainer.student
        prompts = [pair.prompt for pair in request.forget]
        for it in trainer.iterations():
            batch = [prompts[i] for i in pick(rng, len(prompts), cfg.batch_size)]
            seeds = ctx.sample_seeds(0, len(batch), start=it * cfg.batch_size)
            stop = rng.randrange(cfg.ddim_steps)
            student.unet.eval()
            x_t, t = student.sample_partial(batch, seeds, steps=cfg.ddim_steps, stop=stop,
                                            guidance=cfg.start_guidance)
            student.unet.train()
            with torch.no_grad():
                e_null = frozen.predict(x_t, t, frozen.encode([""] * len(batch)))
                e_concept = frozen.predict(x_t, t, frozen.encode(batch))
                target = e_null - cfg.negative_guidance * (e_concept - e_null)
            loss = F.mse_loss(student.predict(x_t, t, student.encode(batch)), target)
            trainer.step(loss, cfg.grad_clip)
        return trainer.finish()
