"""The shared closed-form helpers (``culbench.closed_form``) and UCE on top of them, pinned by
invariants rather than hashes: the solve equals a textbook reference solve and zeroes the
objective's gradient, and ``uce`` is exactly that solve on the rows the helpers choose."""

from __future__ import annotations

import random

import torch

from culbench.api import StepContext
from culbench.catalog import METHODS, MODELS
from culbench.closed_form import erase_pairs, kv_layers, solve_kv
from culbench.tasks import resolve_sequence
from culbench.training import prompt_rows


def _reference_solve(W: torch.Tensor, erase: torch.Tensor, guide: torch.Tensor, keep: torch.Tensor,
                     lamb: float, s_e: float, s_p: float) -> torch.Tensor:
    """UCE's formula written out term by term, one outer product per row, with an explicit inverse."""
    d = W.shape[1]
    left, right = lamb * W.clone(), lamb * torch.eye(d, dtype=W.dtype)
    for c, g in zip(erase, guide, strict=True):
        left += s_e * torch.outer(W @ g, c)
        right += s_e * torch.outer(c, c)
    for c in keep:
        left += s_p * torch.outer(W @ c, c)
        right += s_p * torch.outer(c, c)
    return left @ torch.linalg.inv(right)


def _problem(seed: int, out: int = 6, d: int = 5) -> tuple[torch.nn.Linear, torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    layer = torch.nn.Linear(d, out, bias=False).double()
    with torch.no_grad():
        layer.weight.copy_(torch.randn(out, d, generator=gen, dtype=torch.float64))
    rows = [torch.randn(n, d, generator=gen, dtype=torch.float64) for n in (3, 3, 4)]
    return layer, *rows


def test_the_solve_is_the_reference_solve_and_zeroes_the_gradient() -> None:
    for seed, (lamb, s_e, s_p) in enumerate([(0.5, 1.0, 1.0), (0.1, 2.0, 0.1), (2.0, 0.5, 0.0)]):
        layer, erase, guide, keep = _problem(seed)
        W = layer.weight.detach().clone()
        ticks: list[int] = []
        solve_kv([layer], erase, guide, keep, lamb=lamb, erase_scale=s_e, preserve_scale=s_p, tick=ticks.append)
        new = layer.weight.detach()
        assert ticks == [1]
        assert torch.allclose(new, _reference_solve(W, erase, guide, keep, lamb, s_e, s_p), atol=1e-10)
        # the objective λ‖W'−W‖² + s_e Σ‖W'c_i − W g_i‖² + s_p Σ‖W'c_j − W c_j‖² is stationary at W'
        grad = (lamb * (new - W) + s_e * (erase @ new.T - guide @ W.T).T @ erase
                + s_p * (keep @ new.T - keep @ W.T).T @ keep)
        assert grad.abs().max() < 1e-9


def test_an_empty_preserve_set_and_float32_weights_are_taken() -> None:
    layer, erase, guide, _ = _problem(7)
    W = layer.weight.detach().clone()
    layer32 = torch.nn.Linear(5, 6, bias=False)
    with torch.no_grad():
        layer32.weight.copy_(W)
    solve_kv([layer32], erase, guide, erase[:0], lamb=0.5, erase_scale=1.0, preserve_scale=1.0)
    assert layer32.weight.dtype == torch.float32
    expected = _reference_solve(W, erase, guide, erase[:0], 0.5, 1.0, 1.0)
    assert torch.allclose(layer32.weight.double(), expected, atol=1e-5)


def test_uce_is_the_solve_on_the_helpers_rows() -> None:
    """UCE's edit, recomputed from the helpers with the same draws, in the same order: identical."""
    model, request = MODELS.get("mock")(device="cpu"), resolve_sequence("mock").request(1)
    cfg = METHODS.get("uce").Config()
    edited = METHODS.get("uce")(cfg).unlearn(model, request, StepContext(step=1, seed=3))

    rng = random.Random(3)
    target = request.target
    forget = rng.sample(list(target.prompts), min(cfg.max_prompts, len(target.pairs)))
    erase, guide = erase_pairs(model, target.concept, forget, target.anchor.name, cfg.guide, "uce")
    keep = request.retain_prompts(cfg.preserve)
    keep = rng.sample(keep, min(cfg.max_prompts, len(keep)))
    twin = model.clone()
    layers = kv_layers(twin.unet)
    assert len(layers) == 8 and all(".attn2.to_" in n for n in model.parameter_groups()["xattn_kv"])
    solve_kv(layers, torch.stack(erase).double(), torch.stack(guide).double(),
             torch.cat(prompt_rows(model, keep)).double(), lamb=cfg.lamb, erase_scale=cfg.erase_scale,
             preserve_scale=cfg.preserve_scale)
    got, want = edited.state_dict(), twin.state_dict()
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert not torch.equal(got[model.parameter_groups()["xattn_kv"][0]],
                           model.state_dict()[model.parameter_groups()["xattn_kv"][0]])
