"""SA — Selective Amnesia: surrogate forgetting + generative replay + EWC.

Paper: Heng, Soh, "Selective Amnesia: A Continual Learning Approach to Forgetting in Deep
Generative Models", NeurIPS 2023, arXiv:2305.10120. Reference code:
github.com/clear-nus/selective-amnesia (``sd/ldm/models/diffusion/ddpm_forget.py``,
``configs/stable-diffusion/forget_brad_pitt.yaml``). Run sequentially: each request starts from
the previous step's weights. Re-implemented from culbench's research notes; nothing is copied.

Per request, with θ* the anchor weights and F a diagonal Fisher information:

    L = L_simple(x ~ surrogate, c_f) + γ · L_simple(x ~ replay, c_r) + λ · Σ_i F_i (θ_i − θ*_i)²

* surrogate images: the current model's samples from the request's mapped prompts, trained
  under the forget prompts (the reference uses e.g. 1000 images of "a middle aged man");
* replay: the current model's samples from the request's retain prompts;
* F: mean squared gradient of the denoising loss on replay samples (the reference precomputes
  it once on SD 1.4 with its ``fim_prompts``). ``fisher="per_step"`` recomputes F and sets
  θ* = the previous step's weights at every request; ``fisher="base"`` computes F once on the
  base model at step 1, keeps it in the run state and anchors to the base weights — the two
  readings of "EWC" for a sequence (recorded in the config, so results say which).

ToyWorld defaults (reference: lr 1e-5, λ = 50, γ = 1, full UNet, batch 4 × 4 GPUs, 200 epochs),
chosen on the validation prompts (grid and results: ``docs/tuning.md``): ``lr`` and ``fisher``;
λ = 50 as in the reference (``benchmarks/ewc_scale.py`` measures how much the EWC term steers
the update at ToyWorld's scale). Deviations: 80 iterations at batch 16 per request instead of epochs over
1000 surrogate images; surrogate and replay banks of 128 images generated per request.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

import torch

from culbench.api import Method, StepContext, T2IModel, UnlearnRequest, register_method
from culbench.training import Trainer, denoising_loss, mapped_bank, pick, sample_bank, trainable_copy

SD_DEFAULTS = {"lr": 1e-5, "lambda_ewc": 50.0, "gamma": 1.0, "param_group": "full", "batch_size": 4}


@register_method("sa")
class SelectiveAmnesia(Method):
    """Selective Amnesia (Heng & Soh, NeurIPS 2023): surrogate + replay + EWC."""

    @dataclass(frozen=True)
    class Config:
        lr: float = 1e-4
        iterations: int = 80
        batch_size: int = 16
        gamma: float = 1.0               # replay weight (reference: 1)
        lambda_ewc: float = 50.0         # EWC weight (reference: 50)
        fisher: Literal["per_step", "base"] = "per_step"
        fisher_batches: int = 8
        bank: int = 128                  # surrogate and replay images per request
        sample_steps: int = 20
        param_group: Literal["full", "xattn", "non_xattn", "xattn_kv"] = "full"
        grad_clip: float = 1.0

    trains = ("full", "xattn", "non_xattn", "xattn_kv")

    def _fisher(self, model: T2IModel, prompts: list[str], bank: torch.Tensor, rng: random.Random,
                gen: torch.Generator) -> list[torch.Tensor]:
        """Diagonal Fisher: mean squared gradient of the denoising loss over replay batches."""
        student, params = trainable_copy(model, self.config.param_group)
        fisher = [torch.zeros_like(p) for p in params]
        for _ in range(self.config.fisher_batches):
            index = pick(rng, len(prompts), min(self.config.batch_size, len(prompts)))
            grads = torch.autograd.grad(denoising_loss(student, bank[index], [prompts[i] for i in index], gen),
                                        params, allow_unused=True)
            for f, g in zip(fisher, grads, strict=True):
                if g is not None:
                    f.add_(g.detach() ** 2 / self.config.fisher_batches)
        return fisher

    def unlearn(self, model: T2IModel, request: UnlearnRequest, ctx: StepContext) -> T2IModel:
        cfg = self.config
        rng = ctx.rng()
        gen = ctx.generator()
        size = ctx.budget.samples(cfg.bank)
        pairs, surrogate = mapped_bank(model, request, size, rng, ctx.sample_seed(0), cfg.sample_steps)
        retain = request.retain_prompts("all") or [p.prompt for p in request.forget]
        r_prompts, r_bank = sample_bank(model, retain, size, rng, ctx.sample_seed(1), cfg.sample_steps)

        if cfg.fisher == "base":
            base = ctx.base_model() if ctx.base_model else model
            if "fisher" not in ctx.state:  # first request: F from the base model, kept in the run
                ctx.state["fisher"] = self._fisher(base, r_prompts, r_bank, rng, gen)  # state (~4 bytes/weight/step)
            fisher = ctx.state["fisher"]
            anchor = [p.detach().clone() for p in base.parameters(cfg.param_group)]
        else:
            fisher = self._fisher(model, r_prompts, r_bank, rng, gen)
            anchor = [p.detach().clone() for p in model.parameters(cfg.param_group)]

        trainer = Trainer(model, cfg.param_group, ctx, lr=cfg.lr, iterations=cfg.iterations,
                          description=f"sa: forgetting {request.concept.id}")
        student = trainer.student
        batch = min(cfg.batch_size, size)
        for _ in trainer.iterations():
            si, ri = pick(rng, size, batch), pick(rng, size, batch)
            loss = denoising_loss(student, surrogate[si], [pairs[i].prompt for i in si], gen)
            loss = loss + cfg.gamma * denoising_loss(student, r_bank[ri], [r_prompts[i] for i in ri], gen)
            # + λ · Σ F (θ − θ*)²: its gradient is added in closed form (``pull``), the same update
            trainer.step(loss, cfg.grad_clip, pull=(anchor, cfg.lambda_ewc), pull_weights=fisher)
        return trainer.finish()
