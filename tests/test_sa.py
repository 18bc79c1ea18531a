"""SA's Fisher follows the reference's definition (clear-nus/selective-amnesia, ``ddpm_fim.py``):
the mean over samples of each sample's *own* squared gradient of the denoising loss summed over
timesteps, not the square of a batch-mean gradient. ``benchmarks/ewc_scale.py`` measures its cost
on ToyWorld and shows that λ_EWC now steers the update."""

from __future__ import annotations

import torch

from culbench.catalog import METHODS
from culbench.mocks.model import MOCK_WORDS, build_mock_model


def _setup(k: int = 4, n: int = 3):
    sa_cls = METHODS.get("sa")
    sa = sa_cls(sa_cls.Config(fisher_samples=n, fisher_timesteps=k))
    model = build_mock_model()
    words = sorted(MOCK_WORDS)
    prompts = [f"{words[i]} {words[-1 - i]}" for i in range(n)]
    bank = torch.randn((n, *model.latent_shape), generator=torch.Generator().manual_seed(1))
    return sa, model, prompts, bank


def test_the_fisher_is_the_mean_of_per_sample_squared_gradients() -> None:
    sa, model, prompts, bank = _setup()
    together = sa._fisher(model, prompts, bank, torch.Generator().manual_seed(7))
    gen = torch.Generator().manual_seed(7)  # the same draws, sample by sample, in the same order
    alone = [sa._fisher(model, [prompts[i]], bank[i : i + 1], gen) for i in range(len(prompts))]
    for f, parts in zip(together, zip(*alone, strict=True), strict=True):
        torch.testing.assert_close(f, sum(parts) / len(parts), rtol=1e-5, atol=1e-12)


def test_the_fisher_estimates_the_sum_over_all_timesteps() -> None:
    """T/K-weighted stratified draws: the scale is that of Σ_t (the reference's sum over all
    T timesteps), whatever K; K = 4 and K = 16 agree in order of magnitude."""
    sa, model, prompts, bank = _setup(k=4)
    sa16 = type(sa)(type(sa).Config(fisher_samples=3, fisher_timesteps=16))
    small, large = (sum(float(f.sum()) for f in m._fisher(model, prompts, bank,
                                                           torch.Generator().manual_seed(3)))
                    for m in (sa, sa16))
    ratio = small / large  # without the T/K weight: ≈ (4/16)² = 0.06
    assert 0.1 < ratio < 10, ratio
