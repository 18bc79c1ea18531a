"""How big is SA's EWC gradient next to its loss gradient on ToyWorld? (toy10 val, request 1, base model)

    python benchmarks/ewc_scale.py

Computes SA's diagonal Fisher exactly as ``methods/sa.py`` does (8 replay batches), one batch's
loss gradient (surrogate + replay), and the EWC gradient 2λF·|θ − θ*| for a displacement of
1e-3 and 8e-3 per weight (80 Adam steps at lr 1e-4 move a weight at most ≈ 8e-3). Explains why
λ_EWC = 50 and 500 give identical runs (``docs/tuning.md``).
"""
import random, torch
torch.set_num_threads(1)
from culbench.catalog import MODELS, METHODS
from culbench.tasks import resolve_sequence
from culbench.api import StepContext
from culbench.training import trainable_copy, denoising_loss, sample_bank, mapped_bank, pick

seq = resolve_sequence("toy10").with_split("val")
model = MODELS.get(seq.spec.model.backend)(device="cpu", **seq.spec.model.options)
SA = METHODS.get("sa"); sa = SA(SA.Config())
req = seq.request(1)
rng = random.Random(0); gen = torch.Generator().manual_seed(0)
retain = req.retain_prompts("all")
rp, rb = sample_bank(model, retain, 128, rng, 1, 20)
pairs, sur = mapped_bank(model, req, 128, rng, 2, 20)
F = sa._fisher(model, rp, rb, rng, gen)
student, params = trainable_copy(model, "full")
idx = pick(rng, 128, 16)
loss = denoising_loss(student, sur[idx], [pairs[i].prompt for i in idx], gen) + denoising_loss(student, rb[idx], [rp[i] for i in idx], gen)
g = torch.autograd.grad(loss, params, allow_unused=True)
gabs = torch.cat([x.abs().flatten() for x in g if x is not None])
f = torch.cat([x.flatten() for x in F])
# displacement after a request: 80 Adam steps at lr 1e-4 move each weight at most ~8e-3
for lam in (50, 500):
    for delta in (1e-3, 8e-3):
        ewc = 2 * lam * f * delta
        print(f"lambda {lam} |dtheta| {delta}: median |EWC grad| {ewc.median():.2e} (max {ewc.max():.2e}) vs median |loss grad| {gabs.median():.2e}; ratio of medians {ewc.median()/gabs.median():.1e}")
print(f"Fisher: mean {f.mean():.2e}, median {f.median():.2e}, max {f.max():.2e}")
