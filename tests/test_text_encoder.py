"""A method may replace the text encoder (``retrain`` does): the model's prompt cache follows, the
runner stores and reloads it, the shipped one is never touched, and the contract checks it."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from culbench import runfolder as rf
from culbench.api import Method
from culbench.catalog import METHODS, MODELS
from culbench.contract import run_contract
from culbench.runfolder import load_weights
from culbench.runfolder import weights_bytes as _weights_bytes
from culbench.runner import run
from culbench.tasks import resolve_sequence
from culbench.validate import validate_run


def _model():  # noqa: ANN202
    spec = resolve_sequence("mock").spec.model
    return MODELS.get(spec.backend)(device="cpu", **spec.options)


def _trained_copy(encoder: torch.nn.Module, scale: float = 1.1) -> torch.nn.Module:
    twin = copy.deepcopy(encoder)
    with torch.no_grad():
        for p in twin.parameters():
            p.mul_(scale)
    return twin


def test_a_replaced_encoder_gets_its_own_prompt_cache_and_is_stored() -> None:
    model = _model()
    shipped_sha, prompts = model.weights_sha256(), ["a zorb", "a red star"]
    before = model.encode(prompts)  # fills the cache the clone starts out sharing
    twin = model.clone()
    twin.text_encoder = _trained_copy(twin.text_encoder)
    after = twin.encode(prompts)
    assert not torch.allclose(before, after)
    assert torch.equal(model.encode(prompts), before)  # the original keeps its encoder and cache
    with torch.no_grad():  # an in-place update of a replaced encoder also refreshes the cache
        next(iter(twin.text_encoder.parameters())).add_(0.5)
    assert not torch.allclose(twin.encode(prompts), after)

    state = twin.state_dict()
    text_keys = [k for k in state if k.startswith("text_encoder.")]
    assert text_keys and not any(k.startswith("text_encoder.") for k in model.state_dict())
    assert model.weights_sha256() == shipped_sha != twin.weights_sha256()
    other = _model()
    other.load_state_dict(state)  # the shipped encoder is copied, not overwritten
    assert torch.equal(other.encode(prompts), twin.encode(prompts))
    assert other.weights_sha256() == twin.weights_sha256()
    other.load_state_dict(model.state_dict())  # a UNet-only state puts the shipped encoder back
    assert other.weights_sha256() == shipped_sha and torch.equal(other.encode(prompts), before)


def test_a_checkpoint_delta_carries_the_encoder(tmp_path: Path) -> None:
    model = _model()
    base = model.state_dict()
    twin = model.clone()
    twin.text_encoder = _trained_copy(twin.text_encoder)
    blob = _weights_bytes(twin.state_dict(), base)
    from safetensors.torch import load

    assert set(load(blob)) == {k for k in twin.state_dict() if k.startswith("text_encoder.")}
    path = tmp_path / "model.safetensors"
    path.write_bytes(blob)
    restored = _model()
    restored.load_state_dict(load_weights(path, base))
    assert restored.weights_sha256() == twin.weights_sha256()


class _SwapsEncoder(Method):
    """Replaces the text encoder with a seeded perturbation of it (declared, or not)."""

    @dataclass(frozen=True)
    class Config:
        scale: float = 0.05

    trains = ("xattn", "text_encoder")

    def unlearn(self, model, request, ctx):  # noqa: ANN001, ANN201
        twin = model.clone()
        encoder = copy.deepcopy(model.text_encoder)
        with torch.no_grad():
            for p in encoder.parameters():
                p.add_(torch.randn(p.shape, generator=ctx.generator()) * self.config.scale)
        twin.text_encoder = encoder
        return twin


class _Undeclared(_SwapsEncoder):
    trains = ("xattn",)


class _InPlace(_SwapsEncoder):
    """Edits the shared (shipped) encoder in place: the base model changes, nothing is stored."""

    def unlearn(self, model, request, ctx):  # noqa: ANN001, ANN201
        with torch.no_grad():
            for p in model.text_encoder.parameters():
                p.mul_(1.1)
        return model.clone()


@pytest.mark.parametrize(("cls", "failing"), [(_SwapsEncoder, set()), (_Undeclared, {"returns"}),
                                              (_InPlace, {"returns", "frozen"})])
def test_the_contract_allows_only_a_declared_replaced_encoder(cls: type, failing: set[str]) -> None:
    METHODS.register("encoder-test-only")(cls)
    try:
        checks = {c.name: c for c in run_contract("encoder-test-only")}
    finally:
        METHODS._entries.pop("encoder-test-only", None)
    assert {name for name, c in checks.items() if not c.ok} == failing, {n: c.detail for n, c in checks.items()}


class _StopsAtTwo(_SwapsEncoder):
    stop = True

    def unlearn(self, model, request, ctx):  # noqa: ANN001, ANN201
        if ctx.step == 2 and _StopsAtTwo.stop:
            raise RuntimeError("stopped here by the test")
        return super().unlearn(model, request, ctx)


def test_a_run_with_a_replaced_encoder_resumes_and_evaluates_it(tmp_path: Path) -> None:
    """Step 2 starts from step 1's stored weights, encoder included: same numbers as one go."""
    METHODS.register("encoder-run-test-only")(_StopsAtTwo)
    try:
        _StopsAtTwo.stop = False
        whole = run("encoder-run-test-only", sequence="mock", profile="smoke", out=tmp_path / "a", threads=1)
        _StopsAtTwo.stop = True
        with pytest.raises(RuntimeError, match="stopped here"):
            run("encoder-run-test-only", sequence="mock", profile="smoke", out=tmp_path / "b", threads=1)
        _StopsAtTwo.stop = False
        part = run("encoder-run-test-only", sequence="mock", profile="smoke", out=tmp_path / "b", threads=1)
    finally:
        METHODS._entries.pop("encoder-run-test-only", None)
    assert validate_run(part) == []
    record = lambda d, k: json.loads((rf.step_dir(d, k) / "step.json").read_text())  # noqa: E731
    assert record(whole, 1)["model_sha256"] != record(whole, 0)["model_sha256"]
    for k in (1, 2):
        assert record(part, k)["model_sha256"] == record(whole, k)["model_sha256"]
        assert record(part, k)["cells"] == record(whole, k)["cells"]
        assert record(part, k)["drift"] == record(whole, k)["drift"]


@pytest.mark.parametrize(("setting", "own"), [("retrain", True), ("frozen", False)])
def test_retrain_trains_its_own_encoder_unless_told_to_keep_the_shipped_one(setting: str, own: bool) -> None:
    checks = {c.name: c for c in run_contract("retrain", (f"retrain.text_encoder={setting}",))}
    assert all(c.ok for c in checks.values()), {n: c.detail for n, c in checks.items()}
    assert ("with its own text encoder" in checks["returns"].detail) == own
    assert "keeps no state, so its steps can also be computed alone" in checks["from_scratch"].detail
