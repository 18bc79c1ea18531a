"""Sculpting Memory (``sculpt``): superclass ablation through a dynamic gradient mask on the
cross-attention; the mask's swap rule; only ``attn2`` moves, and a masked weight only where its
mask allowed."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from culbench.methods.sculpt import _Masks

from culbench.api import StepContext
from culbench.catalog import METHODS, MODELS
from culbench.tasks import resolve_sequence

SCULPT = METHODS.get("sculpt")


def _toy() -> tuple:
    seq = resolve_sequence("toy10")
    return seq, MODELS.get(seq.spec.model.backend)(device="cpu", **seq.spec.model.options)


def _ablation_gap(model, request) -> float:  # noqa: ANN001
    """Mean ‖ε(x_t, forget prompt) − ε(x_t, mapped prompt)‖² over fixed noise, t and prompts."""
    gen = torch.Generator().manual_seed(0)
    pairs = request.forget[:8]
    x0 = torch.randn((len(pairs), *model.latent_shape), generator=gen)
    noise = torch.randn(x0.shape, generator=gen)
    t = torch.randint(100, model.num_train_timesteps, (len(pairs),), generator=gen)
    x_t = model.add_noise(x0, noise, t)
    with torch.no_grad():
        a = model.predict(x_t, t, model.encode([p.prompt for p in pairs]))
        b = model.predict(x_t, t, model.encode([p.mapped for p in pairs]))
    return float((a - b).pow(2).mean())


def test_sculpt_moves_the_concept_toward_its_mapped_prompt_only_in_cross_attention() -> None:
    seq, model = _toy()
    request = seq.request(1)
    before = model.state_dict()
    config = SCULPT.Config(lr=1e-3, bank=16, batch_size=8, epochs=4, sample_steps=4)
    edited = SCULPT(config).unlearn(model, request, StepContext(step=1, seed=0))
    after = edited.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed and changed <= set(model.parameter_groups()["xattn"])
    assert _ablation_gap(edited, request) < 0.7 * _ablation_gap(model, request)


def test_without_a_mask_update_a_weight_moves_only_in_its_masked_share() -> None:
    seq, model = _toy()
    config = SCULPT.Config(lr=1e-3, bank=16, batch_size=8, epochs=2, mask_share=0.25, sample_steps=4)
    edited = SCULPT(config).unlearn(model, seq.request(1), StepContext(step=1, seed=0))
    before, after = model.state_dict(), edited.state_dict()
    for name in model.parameter_groups()["xattn"]:
        moved = float((after[name] != before[name]).float().mean())
        if name.endswith("weight"):
            assert abs(moved - 0.25) < 0.01, name  # one epoch of training, one mask: its top quarter
        else:
            assert moved > 0.9, name  # biases are not masked


def test_the_mask_swaps_its_weakest_active_entries_for_the_strongest_inactive_ones() -> None:
    unet = torch.nn.Module()
    unet.attn2 = torch.nn.Module()
    unet.attn2.to_q = torch.nn.Linear(10, 1, bias=False)  # named attn2.to_q.weight: a masked weight
    weight = unet.attn2.to_q.weight
    masks = _Masks(SimpleNamespace(unet=unet), [weight])
    (weight * torch.arange(10.0)).sum().backward()  # summed gradient: 0, 1, ..., 9
    masks.start(0.5)
    assert masks.tensors[0].flatten().tolist() == [0.0] * 5 + [1.0] * 5
    (weight * torch.tensor([9.0, 4, 0, 0, 0, 5, 6, 7, 8, 1])).sum().backward()
    masks.turn_over(0.4)  # 2 of the 5 active leave (entries 9 and 5), the 2 strongest inactive come in (0, 1)
    assert masks.tensors[0].flatten().tolist() == [1.0, 1.0, 0, 0, 0, 0, 1.0, 1.0, 1.0, 0]
    masks.close()
