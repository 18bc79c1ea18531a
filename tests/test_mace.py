"""MACE (``methods/mace.py``) does what its docstring claims, on the mock backend:

* stage 1 maps the rows a forget prompt shares with its mapping prompt (the words around the
  concept, end-of-text) towards the mapping prompt's outputs, while the retain rows barely move;
* stage 2's LoRA lowers the attention the concept's tokens (and end-of-text) receive;
* stage 3's fusion is the least-squares solution: each LoRA's effect on its own concept's rows is
  kept, the kept rows hold their outputs, and the residual's gradient vanishes.
"""

from __future__ import annotations

import random
import sys
from typing import Any

import torch

from culbench.api import StepContext, substitute
from culbench.catalog import METHODS, MODELS
from culbench.closed_form import kv_layers
from culbench.tasks import resolve_sequence
from culbench.training import prompt_rows

MACE = METHODS.get("mace")
mace = sys.modules[MACE.__module__]


def _edit(model: Any, request: Any, **settings: Any) -> Any:
    return MACE(MACE.Config(**settings)).unlearn(model, request, StepContext(step=1, seed=3))


def _outputs(model: Any, rows: torch.Tensor) -> torch.Tensor:
    """Every K and V projection's output for ``rows``, side by side."""
    return torch.cat([rows.double() @ layer.weight.detach().double().T for layer in kv_layers(model.unet)], dim=1)


def _gap(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_shared_rows_are_the_tokens_around_the_concept() -> None:
    tok = MODELS.get("mock")(device="cpu").tokenizer
    prompt, other = "a red square on the left", "a blue square on the left"
    ids = tok(prompt).input_ids
    a, b = mace.shared_rows(tok, prompt, other)
    red = tok("a red").input_ids.index(tok("red", add_special_tokens=False).input_ids[0])
    assert a == b == [i for i in range(len(ids)) if i != red]
    a, b = mace.shared_rows(tok, "a red square", "a big blue square")
    assert len(b) == len(a) and b[-1] == len(tok("a big blue square").input_ids) - 1


def test_refinement_maps_the_context_rows_and_keeps_the_retain_rows() -> None:
    """Without LoRA steps (stage 2 is then ΔW = 0) the edit is stage 1 and its fusion."""
    model, request = MODELS.get("mock")(device="cpu"), resolve_sequence("mock").request(1)
    edited = _edit(model, request, iterations=0)
    name, anchor = request.concept.name, request.anchor.name
    old, new = [], []
    for prompt in request.target.prompts:  # the shared rows that differ: those after the concept
        other = substitute(prompt, name, anchor)
        a, b = model.encode([prompt])[0], model.encode([other])[0]
        pairs = [(i, j) for i, j in zip(*mace.shared_rows(model.tokenizer, prompt, other), strict=True)
                 if not torch.allclose(a[i], b[j])]
        old.append(a[[i for i, _ in pairs]])
        new.append(b[[j for _, j in pairs]])
    old, new = torch.cat(old), torch.cat(new)
    target = _outputs(model, new)
    before, after = _gap(_outputs(model, old), target), _gap(_outputs(edited, old), target)
    keep = torch.cat(prompt_rows(model, request.retain_prompts("all")))
    moved = _gap(_outputs(edited, keep), _outputs(model, keep))
    # mock (d = 16, 200 retain rows span it): 0.128 -> 0.085 while the retain rows move 0.011
    assert after < 0.75 * before and moved < 0.2 * before and moved < 0.02, (before, after, moved)


def test_the_lora_lowers_the_concepts_attention_and_the_fusion_keeps_some_of_it() -> None:
    """Stage 2 alone (its ΔW added to the weights) on the mock: the attention energy of the concept's
    tokens and end-of-text on the renders falls (26.1 -> 22.4); after the fusion, which also holds
    the 200 retain rows that span the mock's 16-dimensional text space, less of it is left."""
    model, request = MODELS.get("mock")(device="cpu"), resolve_sequence("mock").request(1)
    method, ctx = MACE(MACE.Config(iterations=40, lr=1e-2)), StepContext(step=1, seed=0)
    emb, x0, mask = method._bank(model, request.target, list(request.target.prompts), ctx, random.Random(0), 0)
    gen = torch.Generator().manual_seed(0)
    t = torch.full((len(x0),), 300 * model.num_train_timesteps // 1000)
    x_t = model.add_noise(x0, torch.randn(x0.shape, generator=gen), t)
    student = model.clone()
    deltas = method._train_lora(student, (emb, x0, mask), ctx, random.Random(1), torch.Generator().manual_seed(2),
                                "red")
    with torch.no_grad():
        plain = float(mace.attention_energy(student, x_t, t, emb, mask))
        for layer, delta in zip(kv_layers(student.unet), deltas, strict=True):
            layer.weight += delta.to(layer.weight)
        steered = float(mace.attention_energy(student, x_t, t, emb, mask))
        fused = [float(mace.attention_energy(_edit(model, request, iterations=n, lr=1e-2), x_t, t, emb, mask))
                 for n in (0, 30)]
    assert steered < 0.9 * plain, (plain, steered)
    assert fused[1] < fused[0], fused


def _least_squares_case(lamb: float) -> tuple[Any, ...]:
    gen = torch.Generator().manual_seed(1)
    d, out = 12, 5
    layers = [torch.nn.Linear(d, out, bias=False).double() for _ in range(2)]
    for layer in layers:
        torch.nn.init.normal_(layer.weight, generator=gen)
    w1 = [layer.weight.detach().clone() for layer in layers]
    start = [w + 0.1 * torch.randn(w.shape, generator=gen, dtype=torch.float64) for w in w1]
    rows = [torch.randn(3, d, generator=gen, dtype=torch.float64) for _ in range(2)]  # two concepts
    keep = torch.randn(4, d, generator=gen, dtype=torch.float64)
    deltas = [[torch.randn(out, 1, generator=gen, dtype=torch.float64) @ torch.randn(1, d, generator=gen,
                                                                                   dtype=torch.float64)
               for _ in layers] for _ in rows]
    grams = [c.T @ c for c in rows]
    mace.fuse_kv(layers, deltas, grams, keep.T @ keep, start, lamb=lamb, preserve_scale=0.5)
    return layers, w1, start, rows, keep, deltas


def test_fusion_is_the_least_squares_solution() -> None:
    """The objective's gradient vanishes at the fused weights (λ 0.3, s_p 0.5, two concepts)."""
    layers, w1, start, rows, keep, deltas = _least_squares_case(0.3)
    for n, layer in enumerate(layers):
        w = layer.weight.detach()
        grad = 0.3 * (w - w1[n]) + 0.5 * (w - start[n]) @ keep.T @ keep
        for c, delta in zip(rows, deltas, strict=True):
            grad += (w - w1[n] - delta[n]) @ c.T @ c
        assert float(grad.norm()) < 1e-8 * float(w.norm())


def test_fusion_keeps_each_loras_effect_on_its_own_rows() -> None:
    """Two concepts' and the kept rows together span less than d: with λ → 0 every constraint is met."""
    layers, w1, start, rows, keep, deltas = _least_squares_case(1e-9)
    for n, layer in enumerate(layers):
        w = layer.weight.detach()
        for c, delta in zip(rows, deltas, strict=True):
            torch.testing.assert_close(c @ w.T, c @ (w1[n] + delta[n]).T, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(keep @ w.T, keep @ start[n].T, rtol=1e-5, atol=1e-5)


def test_only_the_kv_projections_move_and_earlier_concepts_are_kept() -> None:
    seq = resolve_sequence("mock")
    model = MODELS.get("mock")(device="cpu")
    first = _edit(model, seq.request(1), iterations=2)
    kv = set(model.parameter_groups()["xattn_kv"])
    before, after = model.unet.state_dict(), first.unet.state_dict()
    changed = {n for n in after if not torch.equal(after[n], before[n])}
    assert changed and all(f"unet.{n}" in kv or n in kv for n in changed)
    earlier = torch.cat(prompt_rows(first, list(seq.request(1).target.prompts)))
    drift = {}
    for keep in (True, False):
        second = _edit(first, seq.request(2), iterations=2, keep_previous=keep)
        drift[keep] = _gap(_outputs(second, earlier), _outputs(first, earlier))
    assert drift[True] < drift[False], drift
