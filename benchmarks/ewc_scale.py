"""SA's Fisher on ToyWorld: its cost, its scale, and whether λ_EWC steers the update.

    python benchmarks/ewc_scale.py [--repeats 3]

On toy10 (val split), request 1, from the base model:

1. the diagonal Fisher as ``methods/sa.py`` computes it (the reference's definition: per-sample
   squared gradients of the denoising loss summed over timesteps, ``fisher_samples`` ×
   ``fisher_timesteps``) next to the definition it replaced (the square of a batch-mean gradient
   at one random timestep per sample, 8 batches of 16): seconds (median, min, max), statistics;
2. the EWC gradient 2λF·|θ − θ*| against the loss gradient at displacements 1e-3 and 8e-3;
3. one SA request at λ_EWC 50 and 500 under each Fisher: the drift ||θ − θ*||, the EWC penalty
   Σ F (θ − θ*)² (under the new F) and how far the model's predictions moved on the forget and
   on the retain prompts (mean squared change over 64 fixed probes).

The old definition made λ 50 and 500 indistinguishable (``docs/tuning.md``, session 6); this
shows what the reference's definition changes. Timings are single-threaded.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch


def old_fisher(model, prompts, bank, gen, batches=8, batch=16):  # noqa: ANN001, ANN201
    """The definition sa.py used before: squared batch-mean gradients, one timestep per sample."""
    from culbench.training import denoising_loss, pick, trainable_copy

    rng = random.Random(0)
    student, params = trainable_copy(model, "full")
    fisher = [torch.zeros_like(p) for p in params]
    for _ in range(batches):
        index = pick(rng, len(prompts), batch)
        grads = torch.autograd.grad(denoising_loss(student, bank[index], [prompts[i] for i in index], gen),
                                    params, allow_unused=True)
        for f, g in zip(fisher, grads, strict=True):
            if g is not None:
                f.add_(g ** 2 / batches)
    return fisher


def timed(fn, repeats):  # noqa: ANN001, ANN201
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return out, f"{statistics.median(times):.1f} s (min {min(times):.1f}, max {max(times):.1f})"


@torch.no_grad()
def moved(a, b, prompts, probes):  # noqa: ANN001, ANN201
    """Mean squared change of the prediction between models a and b on fixed probes."""
    x_t, t = probes
    emb = a.encode([prompts[i % len(prompts)] for i in range(len(t))])
    return float(((a.predict(x_t, t, emb) - b.predict(x_t, t, emb)) ** 2).mean())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from culbench.api import Budget, StepContext
    from culbench.catalog import METHODS, MODELS
    from culbench.tasks import resolve_sequence
    from culbench.training import denoising_loss, mapped_bank, pick, sample_bank, trainable_copy

    seq = resolve_sequence("toy10").with_split("val")
    model = MODELS.get(seq.spec.model.backend)(device="cpu", **seq.spec.model.options)
    sa_cls = METHODS.get("sa")
    cfg = sa_cls.Config()
    sa = sa_cls(cfg)
    request = seq.request(1)
    rng, gen = random.Random(0), torch.Generator().manual_seed(0)
    r_prompts, r_bank = sample_bank(model, request.retain_prompts("all"), cfg.bank, rng, 1, cfg.sample_steps)
    pairs, surrogate = mapped_bank(model, request, cfg.bank, rng, 2, cfg.sample_steps)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"params {sum(p.numel() for p in model.parameters('full')):,}")

    new, new_time = timed(lambda: sa._fisher(model, r_prompts, r_bank, gen), args.repeats)
    old, old_time = timed(lambda: old_fisher(model, r_prompts, r_bank, gen), args.repeats)
    student, params = trainable_copy(model, "full")
    idx = pick(rng, cfg.bank, cfg.batch_size)
    loss = denoising_loss(student, surrogate[idx], [pairs[i].prompt for i in idx], gen) \
        + denoising_loss(student, r_bank[idx], [r_prompts[i] for i in idx], gen)
    g_abs = torch.cat([g.abs().flatten() for g in torch.autograd.grad(loss, params) if g is not None])
    for name, fisher, cost in (("new (reference)", new, new_time), ("old", old, old_time)):
        flat = torch.cat([f.flatten() for f in fisher])
        print(f"\nFisher {name}: {cost}; mean {flat.mean():.2e}, median {flat.median():.2e}, "
              f"max {flat.max():.2e}")
        for lam in (50, 500):
            ratio = [float((2 * lam * flat * d).median() / g_abs.median()) for d in (1e-3, 8e-3)]
            print(f"  λ {lam}: median |EWC grad| / median |loss grad| at |Δθ| 1e-3, 8e-3: "
                  f"{ratio[0]:.1e}, {ratio[1]:.1e}")
    print(f"(Fisher: {cfg.fisher_samples} samples × {cfg.fisher_timesteps} timesteps (new); "
          "8 batches × 16 (old))")

    probes = (torch.randn((64, *model.latent_shape), generator=torch.Generator().manual_seed(5)),
              torch.randint(0, model.num_train_timesteps, (64,), generator=torch.Generator().manual_seed(6)))
    forget = [p.prompt for p in request.forget]
    retain = request.retain_prompts("all")
    anchor = [p.detach() for p in model.parameters("full")]
    print("\n| Fisher | λ_EWC | ||θ − θ*|| | Σ F_new (θ − θ*)² | moved on forget | moved on retain | s |")
    print("|---|---|---|---|---|---|---|")
    for name, replace in (("new (reference)", None), ("old", old_fisher)):
        for lam in (50.0, 500.0):
            method = sa_cls(sa_cls.Config(lambda_ewc=lam))
            if replace is not None:
                method._fisher = lambda m, p, b, g, f=replace: f(m, p, b, g)  # noqa: B023
            start = time.perf_counter()
            out = method.unlearn(model, request, StepContext(step=1, seed=11, budget=Budget()))
            seconds = time.perf_counter() - start
            delta = [p.detach() - a for p, a in zip(out.parameters("full"), anchor, strict=True)]
            drift = float(torch.sqrt(sum((d ** 2).sum() for d in delta)))
            penalty = float(sum((f * d ** 2).sum() for f, d in zip(new, delta, strict=True)))
            print(f"| {name} | {lam:g} | {drift:.4f} | {penalty:.3e} | {moved(out, model, forget, probes):.4f} "
                  f"| {moved(out, model, retain, probes):.4f} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
