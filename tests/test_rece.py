"""RECE (``methods/rece.py``) does what its docstring claims: without rounds it is ``uce``; its
adversarial embedding regenerates the erased concept under UCE's edit; after its rounds that same
embedding is mapped towards the guide instead, while the retain rows' outputs stay close."""

from __future__ import annotations

import sys
from typing import Any

import pytest
import torch

from culbench.api import CulbenchError, StepContext
from culbench.catalog import METHODS, MODELS
from culbench.closed_form import kv_layers, request_rows, solve_kv
from culbench.tasks import resolve_sequence

RECE = METHODS.get("rece")
adversarial_rows = sys.modules[RECE.__module__].adversarial_rows


def _edit(model: Any, request: Any, step: int = 1, **settings: Any) -> Any:
    return RECE(RECE.Config(**settings)).unlearn(model, request, StepContext(step=step, seed=5))


def _weights(model: Any) -> list[torch.Tensor]:
    return [layer.weight.detach().double().clone() for layer in kv_layers(model.unet)]


def _outputs(weights: list[torch.Tensor], rows: torch.Tensor) -> torch.Tensor:
    """Every K and V projection's output for ``rows``, side by side."""
    return torch.cat([rows @ w.T for w in weights], dim=1)


def _gap(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_without_rounds_rece_is_uce() -> None:
    model, request = MODELS.get("mock")(device="cpu"), resolve_sequence("mock").request(1)
    uce = METHODS.get("uce")(METHODS.get("uce").Config(lamb=0.3, guide="null")).unlearn(
        model, request, StepContext(step=1, seed=5))
    rece = _edit(model, request, epochs=0, lamb=0.3, guide="null")
    assert all(torch.equal(a, b) for a, b in zip(_weights(uce), _weights(rece), strict=True))


def test_an_accumulated_round_is_one_solve_on_the_grown_erase_set() -> None:
    """accumulate=True, 1 round: UCE's solve from the weights handed in, on [c; c'] with c' found
    against the UCE edit; accumulate=False: the UCE edit, then a solve on c' alone from there."""
    model, request = MODELS.get("mock")(device="cpu"), resolve_sequence("mock").request(1)
    erase, guide, keep = request_rows(model, request, StepContext(step=1, seed=5).rng(), max_prompts=64,
                                      guide="anchor", preserve="all", method="rece")
    scales = {"lamb": 0.5, "erase_scale": 1.0, "preserve_scale": 1.0}
    start, uce = _weights(model), _edit(model, request, epochs=0)
    found = adversarial_rows(kv_layers(uce.unet), start, erase, 0.1)
    grown = model.clone()
    solve_kv(kv_layers(grown.unet), torch.cat([erase, found]), guide.repeat(2, 1), keep, **scales)
    chained = uce.clone()
    solve_kv(kv_layers(chained.unet), found, guide, keep, **scales)
    for accumulate, expected in ((True, grown), (False, chained)):
        got = _weights(_edit(model, request, epochs=1, reg=0.1, accumulate=accumulate))
        assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(got, _weights(expected), strict=True))


def test_the_adversarial_rows_solve_their_least_squares_problem() -> None:
    gen = torch.Generator().manual_seed(0)
    layers = [torch.nn.Linear(4, n, bias=False).double() for n in (6, 5)]
    start = [torch.randn(n, 4, generator=gen, dtype=torch.float64) for n in (6, 5)]
    rows = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    for reg in (0.0, 0.5):
        found = adversarial_rows(layers, start, rows, reg)
        grad = sum(((found @ layer.weight.T - rows @ w0.T) @ layer.weight
                    for layer, w0 in zip(layers, start, strict=True)), start=reg * found)
        assert grad.abs().max() < 1e-10  # Σ_l W_lᵀ (W_l c' − W₀_l c) + reg c' = 0
    with pytest.raises(CulbenchError, match="must not be negative"):
        _edit(MODELS.get("mock")(device="cpu"), resolve_sequence("mock").request(1), epochs=-1)


@pytest.fixture(scope="module")
def toyworld() -> dict[str, Any]:
    """The first toy10@2 request on ToyWorld: the weights handed in, UCE's edit (rece without rounds),
    the rows, and the adversarial embedding found against UCE's edit."""
    model, request = MODELS.get("toyworld")(device="cpu"), resolve_sequence("toy10@2").request(1)
    erase, guide, keep = request_rows(model, request, StepContext(step=1, seed=5).rng(), max_prompts=64,
                                      guide="anchor", preserve="all", method="rece")
    uce = _edit(model, request, epochs=0)
    start = _weights(model)
    found = adversarial_rows(kv_layers(uce.unet), start, erase, RECE.Config().reg)
    return {"model": model, "request": request, "start": start, "uce": _weights(uce),
            "erase": erase, "guide": guide, "keep": keep, "found": found}


@pytest.mark.parametrize("settings", [{}, {"accumulate": False, "epochs": 1}], ids=["defaults", "reference"])
def test_the_rounds_erase_what_regenerated_the_concept_under_uce(toyworld: dict[str, Any],
                                                                 settings: dict[str, Any]) -> None:
    t = toyworld
    concept_before = _outputs(t["start"], t["erase"])
    # under UCE's edit, c' gives back what the concept gave before (its own rows do not)
    regenerated = _gap(_outputs(t["uce"], t["found"]), concept_before)
    assert regenerated < 0.2 < _gap(_outputs(t["uce"], t["erase"]), concept_before)
    rece = _weights(_edit(t["model"], t["request"], **settings))
    # after the rounds, the same c' no longer regenerates the concept: its outputs go towards the guide's
    assert _gap(_outputs(rece, t["found"]), concept_before) > 3 * regenerated
    to_guide = {name: _gap(_outputs(w, t["found"]), _outputs(w, t["guide"])) for name, w in (("uce", t["uce"]),
                                                                                              ("rece", rece))}
    assert to_guide["rece"] < 0.6 * to_guide["uce"], to_guide
    # the retain rows' outputs stay close to those of the weights handed in
    kept = _outputs(t["start"], t["keep"])
    drift = {"uce": _gap(_outputs(t["uce"], t["keep"]), kept), "rece": _gap(_outputs(rece, t["keep"]), kept)}
    assert drift["rece"] < 0.15 and drift["rece"] < 3 * drift["uce"], drift


def test_a_later_request_edits_the_weights_it_is_handed(toyworld: dict[str, Any]) -> None:
    """Sequential: request 2 starts from request 1's output, and its adversary targets those weights."""
    t = toyworld
    first = _edit(t["model"], t["request"])
    before = _weights(first)
    second = _edit(first, resolve_sequence("toy10@2").request(2), step=2)
    assert all(torch.equal(a, b) for a, b in zip(_weights(first), before, strict=True))  # handed-in model intact
    assert not all(torch.equal(a, b) for a, b in zip(_weights(second), before, strict=True))
    # request 1's concept stays erased: its rows still map near its guide rows after request 2
    after = _weights(second)
    assert _gap(_outputs(after, t["erase"]), _outputs(after, t["guide"])) < 1.5 * _gap(
        _outputs(before, t["erase"]), _outputs(before, t["guide"]))
