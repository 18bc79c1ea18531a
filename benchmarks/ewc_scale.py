"""How big is SA's EWC gradient next to its loss gradient on ToyWorld? (toy10 val, request 1, base model)

    python benchmarks/ewc_scale.py

Computes SA's diagonal Fisher exactly as ``methods/sa.py`` does (8 replay batches), one batch's
loss gradient (surrogate + replay), and the EWC gradient 2λF·|θ − θ*| for a displacement of
1e-3 and 8e-3 per weight (80 Adam steps at lr 1e-4 move a weight at most ≈ 8e-3). Explains why
λ_EWC = 50 and 500 give identical runs (``docs/tuning.md``).
"""

from __future__ import annotations

import random

import torch


def main() -> None:
    torch.set_num_threads(1)
    from culbench.catalog import METHODS, MODELS
    from culbench.tasks import resolve_sequence
    from culbench.training import denoising_loss, mapped_bank, pick, sample_bank, trainable_copy

    seq = resolve_sequence("toy10").with_split("val")
    model = MODELS.get(seq.spec.model.backend)(device="cpu", **seq.spec.model.options)
    sa_cls = METHODS.get("sa")
    sa = sa_cls(sa_cls.Config())
    request = seq.request(1)
    rng, gen = random.Random(0), torch.Generator().manual_seed(0)
    r_prompts, r_bank = sample_bank(model, request.retain_prompts("all"), 128, rng, 1, 20)
    pairs, surrogate = mapped_bank(model, request, 128, rng, 2, 20)
    fisher = torch.cat([f.flatten() for f in sa._fisher(model, r_prompts, r_bank, rng, gen)])
    student, params = trainable_copy(model, "full")
    idx = pick(rng, 128, 16)
    loss = denoising_loss(student, surrogate[idx], [pairs[i].prompt for i in idx], gen) \
        + denoising_loss(student, r_bank[idx], [r_prompts[i] for i in idx], gen)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    g_abs = torch.cat([g.abs().flatten() for g in grads if g is not None])
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    for lam in (50, 500):
        for delta in (1e-3, 8e-3):
            ewc = 2 * lam * fisher * delta
            print(f"lambda {lam} |dtheta| {delta}: median |EWC grad| {ewc.median():.2e} (max {ewc.max():.2e}) "
                  f"vs median |loss grad| {g_abs.median():.2e}; ratio of medians {ewc.median() / g_abs.median():.1e}")
    print(f"Fisher: mean {fisher.mean():.2e}, median {fisher.median():.2e}, max {fisher.max():.2e}")


if __name__ == "__main__":
    main()
