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
* F: the diagonal Fisher as the reference defines it (``sd/ldm/models/diffusion/ddpm_fim.py``,
  ``training_step``, and ``ddpm/runners/diffusion.py``, ``save_fim``, at commit
  b736571c2a4d75c5c9a1fdbbf94ba6c9d0faa7b7): for each sample x_n with prompt c_n (batch size 1
  per GPU, asserted), the gradient g_n = ∇_θ Σ_{t=0}^{T−1} L_simple(x_n, c_n, t) of the denoising
  loss summed over all T = 1000 timesteps with fresh noise at each, then F = mean_n g_n², over
  the SD 1.4 images of its ``fim_prompts.txt`` (4,999 GPT-3.5 prompts; N = the dataset's
  length, ``register_n_fim``). Here the samples are replay samples. ``fisher="per_step"``
  recomputes F and sets θ* = the previous step's weights at every request; ``fisher="base"``
  computes F once on the base model at step 1, keeps it in the run state and anchors to the
  base weights — the two readings of "EWC" for a sequence (recorded in the config, so results
  say which).

ToyWorld defaults (reference: lr 1e-5, λ = 50, γ = 1, full UNet, batch 4 × 4 GPUs, 200 epochs),
chosen on the validation prompts (grid and results: ``docs/tuning.md``): ``lr`` and ``fisher``;
λ = 50 as in the reference. Those choices were made under the earlier, wrong Fisher (deviation
3): λ has not been chosen again under this one.

Deviations:

1. **Iterations:** 80 iterations at batch 16 per request instead of epochs over 1000 surrogate
   images; surrogate and replay banks of 128 images generated per request.
2. **Fisher estimate:** ``fisher_samples`` = 64 replay samples (the reference: all its
   ``fim_prompts`` images) and, per sample, the sum over the T timesteps estimated from
   ``fisher_timesteps`` = 16 stratified draws (one uniform t in each of 16 equal strata of
   [0, T)), weighted T/16 — unbiased for the gradient; its square is inflated by the draw's
   variance (``fisher_timesteps = T`` is the reference's exact sum). The loss is the model's own
   (v-prediction on ToyWorld; the reference's SD 1.4 predicts ε). Each sample is one
   forward/backward pass over a batch of 16. **Cost** on ToyWorld (3.9 M weights, 1 thread, a
   shared 2-core machine): 8.0 s per Fisher (64 × 16; min 7.8, max 8.6 over 3), against 1.1 s
   for the earlier definition (one whole request: 38 s against 30 s, 1 thread); the exact sum
   (K = T = 1000) would take ≈ 6 s per sample (extrapolated). ``torch.func`` (vmap over
   samples) measured 2× slower than this loop on CPU (no batching rule for the attention kernel).
3. **History:** until #35 F was the square of a batch-mean gradient at one timestep per sample
   (8 batches of 16): ~2.5 × 10⁶ times smaller at the median weight, so that λ 50 and 500 gave
   the same runs. Now λ steers: on toy10 val request 1, the mean squared change of the model's
   predictions on forget prompts is 0.0081 at λ 50 and 0.0002 at λ 500 (the old F: 0.0833 and
   0.0832); ``benchmarks/ewc_scale.py`` measures both, figures in ``docs/tuning.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch

from culbench.api import Method, StepContext, T2IModel, UnlearnRequest, register_method
from culbench.training import (
    Trainer,
    denoising_loss,
    mapped_bank,
    pick,
    sample_bank,
    trainable_copy,
)

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
        fisher_samples: int = 64         # replay samples whose squared gradients F averages
        fisher_timesteps: int = 16       # stratified timesteps per sample (reference: all T = 1000)
        bank: int = 128                  # surrogate and replay images per request
        sample_steps: int = 20
        param_group: Literal["full", "xattn", "non_xattn", "xattn_kv"] = "full"
        grad_clip: float = 1.0

    #: ``culbench tune``: the defaults plus 7 of these points (the same budget for every method).
    tune_grid: ClassVar[dict[str, tuple[Any, ...]]] = {"lr": (5e-5, 1e-4, 2e-4), "lambda_ewc": (5.0, 50.0, 500.0)}

    trains = ("full", "xattn", "non_xattn", "xattn_kv")

    def _fisher(self, model: T2IModel, prompts: list[str], bank: torch.Tensor,
                gen: torch.Generator) -> list[torch.Tensor]:
        """Diagonal Fisher as the reference defines it: per replay sample x_n (prompt c_n),
        g_n = ∇_θ Σ_t L(x_n, c_n, t) (the denoising loss summed over the timesteps, fresh noise
        at each), then F = mean_n g_n². The sum over all T timesteps is estimated from
        ``fisher_timesteps`` stratified draws weighted T/K (exact when K = T)."""
        cfg = self.config
        student, params = trainable_copy(model, cfg.param_group)
        steps = student.num_train_timesteps
        k = min(cfg.fisher_timesteps, steps)
        edges = torch.linspace(0, steps, k + 1).long()  # one timestep drawn in each of k strata
        n = min(cfg.fisher_samples, len(prompts))
        fisher = [torch.zeros_like(p) for p in params]
        for i in range(n):
            t = edges[:-1] + (torch.rand(k, generator=gen) * (edges[1:] - edges[:-1])).long()
            x0 = bank[i : i + 1].expand(k, *bank.shape[1:])
            noise = torch.randn(x0.shape, generator=gen).to(x0.device)
            pred = student.predict(student.add_noise(x0, noise, t), t,
                                   student.encode([prompts[i]]).expand(k, -1, -1))
            per_t = ((pred - student.target(x0, noise, t)) ** 2).mean(dim=tuple(range(1, x0.ndim)))
            grads = torch.autograd.grad(per_t.sum() * (steps / k), params, allow_unused=True)
            for f, g in zip(fisher, grads, strict=True):
                if g is not None:
                    f.add_(g.detach() ** 2, alpha=1.0 / n)
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
                ctx.state["fisher"] = self._fisher(base, r_prompts, r_bank, gen)  # state (~4 bytes/weight/step)
            fisher = ctx.state["fisher"]
            anchor = [p.detach().clone() for p in base.parameters(cfg.param_group)]
        else:
            fisher = self._fisher(model, r_prompts, r_bank, gen)
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
