"""The method contract suite: every built-in passes; a method that breaks a rule is caught."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
import torch

from culbench.api import Method, StepContext, T2IModel, UnlearnRequest
from culbench.catalog import METHODS
from culbench.contract import run_contract
from conftest import run_cli


# retrain's contract runs in tests/test_text_encoder.py, both ways of its text encoder
@pytest.mark.parametrize("name", [e.name for e in METHODS.entries() if e.source == "builtin" and e.name != "retrain"])
def test_builtin_methods_pass_the_contract(name: str) -> None:
    failed = [f"{c.name}: {c.detail}" for c in run_contract(name) if not c.ok]
    assert not failed, failed


class _Sloppy(Method):
    """Declares xattn but nudges every UNet weight, in place, nondeterministically."""

    @dataclass(frozen=True)
    class Config:
        scale: float = 1e-3

    trains = ("xattn",)

    def unlearn(self, model: T2IModel, request: UnlearnRequest, ctx: StepContext) -> T2IModel:
        twin = model.clone()
        unseeded = torch.Generator().manual_seed(int.from_bytes(os.urandom(4), "little"))
        with torch.no_grad():
            for p in twin.unet.parameters():
                p.add_(torch.randn(p.shape, generator=unseeded) * self.config.scale)
            for p in model.unet.parameters():  # and damages its input
                p.mul_(0.5)
        return twin


def test_contract_catches_a_sloppy_method() -> None:
    METHODS.register("sloppy-test-only")(_Sloppy)
    try:
        verdict = {c.name: c.ok for c in run_contract("sloppy-test-only")}
    finally:
        METHODS._entries.pop("sloppy-test-only", None)
    assert verdict["config"] and verdict["returns"] and verdict["smoke"]
    assert not verdict["groups"] and not verdict["frozen"] and not verdict["deterministic"]


class _Pretender(_Sloppy):
    """Claims ``from_scratch`` but edits the weights it is handed (seeded, cleanly)."""

    from_scratch = True

    def unlearn(self, model: T2IModel, request: UnlearnRequest, ctx: StepContext) -> T2IModel:
        twin = model.clone()
        with torch.no_grad():
            for p in twin.parameters("xattn"):
                p.add_(torch.randn(p.shape, generator=ctx.generator()) * self.config.scale)
        return twin


def test_contract_catches_a_false_from_scratch_claim() -> None:
    METHODS.register("pretender-test-only")(_Pretender)
    try:
        checks = {c.name: c for c in run_contract("pretender-test-only")}
    finally:
        METHODS._entries.pop("pretender-test-only", None)
    assert checks["groups"].ok and checks["frozen"].ok and checks["deterministic"].ok
    assert not checks["from_scratch"].ok and "depends on the input weights" in checks["from_scratch"].detail
    assert "from_scratch" not in {c.name for c in run_contract("uce")}  # checked only where declared


def test_check_method_cli() -> None:
    done = run_cli("check-method", "uce")
    assert done.returncode == 0 and "pass" in done.stdout and "FAIL" not in done.stdout
    bad = run_cli("check-method", "ucee")
    assert bad.returncode != 0 and "did you mean" in bad.stderr.lower()


def test_retrain_refuses_a_non_toyworld_model(tmp_path) -> None:  # noqa: ANN001
    done = run_cli("run", "--method", "retrain", "--sequence", "mock", "--profile", "smoke", "--out", str(tmp_path))
    assert done.returncode != 0 and "ToyWorld" in done.stderr and "fix:" in done.stderr


def test_retrain_draws_one_training_seed_per_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run seeds give different oracles; a run uses one training seed at every step, derived from
    the run seed (the value earlier versions kept in ctx.state), and keeps no state."""
    from culbench.api import Budget, step_seed
    from culbench.catalog import METHODS, MODELS
    from culbench.profiles import get_profile
    from culbench.tasks import resolve_sequence
    from culbench.toyworld import train as recipe_code

    seq, prof = resolve_sequence("toy10"), get_profile("smoke")
    cls = METHODS.get("retrain")
    drawn: list[int] = []
    render = recipe_code.render_training_set
    monkeypatch.setattr(recipe_code, "render_training_set",
                        lambda recipe, exclude, named=(): drawn.append(recipe.seed) or render(recipe, exclude, named))

    def unet_after(step: int, run_seed: int) -> dict:
        model = MODELS.get(seq.spec.model.backend)(device="cpu", **seq.spec.model.options)
        state: dict = {}
        ctx = StepContext(step=step, seed=step_seed(run_seed, step), run_seed=run_seed,
                          budget=Budget(prof.max_iterations, prof.max_samples), state=state)
        out = cls(cls.Config()).unlearn(model, seq.request(step), ctx)
        assert state == {}  # nothing carried between steps: any step can be computed alone
        return out.state_dict()  # UNet and its own text encoder

    first = unet_after(1, 11)
    unet_after(2, 11)
    assert drawn == [step_seed(11, 1)] * 2  # step 2 trains with the run's seed, not its own
    other = unet_after(1, 21)
    assert any(not torch.equal(first[k], other[k]) for k in first)
    assert all(torch.equal(first[k], v) for k, v in unet_after(1, 11).items())  # deterministic


def test_retrain_resumes_an_interrupted_request_from_its_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    """The production path of a killed retrain request: its snapshot payload (recipe + training
    state, through torch.save as the runner stores it) resumes to the same UNet; a snapshot made
    with another recipe (here: another training seed) is not used."""
    import functools
    import io

    from culbench.api import Budget
    from culbench.catalog import METHODS, MODELS
    from culbench.tasks import resolve_sequence
    from culbench.toyworld import train as recipe_code

    monkeypatch.setattr(recipe_code, "train_unet", functools.partial(recipe_code.train_unet, snapshot_every=1))
    seq = resolve_sequence("toy10")
    cls = METHODS.get("retrain")

    class Stop(Exception):
        pass

    ticks: list[int] = []

    def progress(total: int, description: str):  # noqa: ANN202
        ticks.clear()
        return lambda n=1: ticks.append(n)

    def run_step(seed: int, save=None, load=None) -> dict:  # noqa: ANN001
        model = MODELS.get(seq.spec.model.backend)(device="cpu", **seq.spec.model.options)
        ctx = StepContext(step=1, seed=seed, run_seed=seed, budget=Budget(4, 64), state={}, progress=progress,
                          **({"save_snapshot": save} if save else {}), **({"load_snapshot": load} if load else {}))
        out = cls(cls.Config()).unlearn(model, seq.request(1), ctx)
        return out.state_dict()  # UNet and its own text encoder

    saved: list[bytes] = []

    def save(payload: dict) -> None:
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        saved.append(buffer.getvalue())
        if len(saved) == 2:
            raise Stop

    with pytest.raises(Stop):
        run_step(5, save=save)
    last = lambda: torch.load(io.BytesIO(saved[-1]), weights_only=True)  # noqa: E731
    assert last()["training"]["step"] == 2
    straight = run_step(5)
    resumed = run_step(5, load=last)
    assert ticks == [2, 1, 1]  # it started at step 2 of 4
    assert all(torch.equal(straight[k], v) for k, v in resumed.items())
    other_seed = run_step(6, load=last)  # the snapshot's recipe (seed 5) differs: trained from scratch
    assert ticks == [1, 1, 1, 1]
    assert all(torch.equal(a, b) for a, b in zip(run_step(6).values(), other_seed.values()))


@pytest.mark.parametrize("backend", ["mock", "toyworld"])  # sd: tests/test_sd_backend.py
def test_models_name_their_backend(backend: str) -> None:
    """``T2IModel.backend`` is what a method tied to one backend checks (retrain: toyworld)."""
    from culbench.catalog import MODELS

    model = MODELS.get(backend)(device="cpu")
    assert isinstance(model, T2IModel)
    assert model.backend == backend and model.clone().backend == backend


def test_step_context_seeds_are_the_documented_arithmetic() -> None:
    """Methods take their seeds from ``StepContext``: the values are part of every result."""
    import random

    ctx = StepContext(step=3, seed=12345)
    assert [ctx.rng().random() for _ in range(2)] == [random.Random(12345).random()] * 2  # a fresh stream
    assert ctx.sample_seed() == 12345 * 7919 and ctx.sample_seed(1) == 12345 * 7919 + 10**6
    assert ctx.sample_seed(2, 7) == 12345 * 7919 + 2 * 10**6 + 7
    assert ctx.sample_seeds(3, 3, start=5) == [12345 * 7919 + 3 * 10**6 + 5 + i for i in range(3)]
