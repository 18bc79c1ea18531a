"""Speed and memory switches (``--model-option``): what each changes, what it keeps, and that a
run records them."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from conftest import HELPERS

from culbench import run
from culbench.api import Budget, StepContext
from culbench.catalog import MODELS
from culbench.errors import CulbenchError
from culbench.models.performance import Performance
from culbench.training import Trainer

sys.path.insert(0, str(HELPERS))
from tiny_sd import write_tiny_sd  # noqa: E402


def _mock(**switches: object):
    return MODELS.get("mock")(device="cpu", **switches)


def _batch(model, n: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *model.latent_shape, generator=g)
    t = torch.randint(0, model.num_train_timesteps, (n,), generator=g)
    return x, t, model.encode(["a red square"] * n)


@pytest.mark.parametrize("options, fix", [
    ({"autocast": "fp16"}, "autocast=off or bfloat16 or float16"),
    ({"grad_checkpointing": "maybe"}, "grad_checkpointing=true"),
    ({"autocst": "bfloat16"}, "did you mean autocast?"),
])
def test_a_bad_switch_is_a_one_line_error_naming_the_fix(tmp_path: Path, options, fix) -> None:
    with pytest.raises(CulbenchError) as err:
        run("finetune", sequence="mock", profile="smoke", out=tmp_path, model_options=options)
    assert fix in str(err.value) and "\n" not in str(err.value)
    assert not any(tmp_path.iterdir())  # refused before the run folder exists


def test_autocast_changes_only_no_gradient_forwards_and_only_slightly() -> None:
    plain, cast = _mock(), _mock(autocast="bfloat16")
    x, t, emb = _batch(plain)
    with torch.no_grad():
        exact, approx = plain.predict(x, t, emb), cast.predict(x, t, emb)
    assert approx.dtype == torch.float32 and not torch.equal(exact, approx)
    assert (approx - exact).abs().max() < 0.05 * exact.abs().max()
    assert torch.equal(plain.predict(x, t, emb), cast.predict(x, t, emb))  # gradients on: float32
    images = cast.sample(["a red square"], [0], steps=2)
    assert images.dtype == torch.float32 and (images - plain.sample(["a red square"], [0], steps=2)).abs().max() < 0.05


def test_classic_attention_agrees_with_sdpa_and_is_recorded() -> None:
    sdpa, classic = _mock(), _mock(attention="classic")
    x, t, emb = _batch(sdpa)
    with torch.no_grad():
        assert torch.allclose(sdpa.predict(x, t, emb), classic.predict(x, t, emb), atol=1e-5)
    assert classic.performance_record()["attention_processors"] == ["AttnProcessor"]
    assert sdpa.performance_record()["attention_processors"] == ["AttnProcessor2_0"]
    classic.set_performance(Performance())  # back to the default: SDPA again
    assert classic.performance_record()["attention_processors"] == ["AttnProcessor2_0"]


def test_gradient_checkpointing_gives_the_same_gradients_and_reaches_the_clones() -> None:
    grads = []
    for model in (_mock(), _mock(grad_checkpointing=True)):
        student = model.clone()
        student.unet.train()
        x, t, emb = _batch(student)
        student.predict(x, t, emb).pow(2).mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in student.parameters("full") if p.grad is not None]))
        assert student.unet.is_gradient_checkpointing == model.performance.grad_checkpointing
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="bitsandbytes not installed")
def test_the_8bit_optimiser_trains_close_to_adamw() -> None:
    moved = []
    for model in (_mock(), _mock(optimizer="adamw8bit")):
        ctx = StepContext(step=1, seed=0, budget=Budget(None, None), base_model=lambda model=model: model)
        trainer = Trainer(model, "full", ctx, lr=1e-3, iterations=3, description="test")
        before = [p.detach().clone() for p in trainer.params]
        for _ in trainer.iterations():
            x, t, emb = _batch(trainer.student)
            trainer.step(trainer.student.predict(x, t, emb).pow(2).mean(), 1.0)
        moved.append(torch.cat([(p.detach() - b).flatten() for p, b in zip(trainer.params, before, strict=True)]))
        assert type(trainer.opt).__name__ == ("AdamW8bit" if model.performance.optimizer == "adamw8bit" else "AdamW")
    cosine = torch.nn.functional.cosine_similarity(moved[0], moved[1], dim=0)
    assert cosine > 0.95 and moved[1].abs().max() > 0


def test_the_8bit_switch_hands_the_trainer_bitsandbytes_optimiser(monkeypatch) -> None:
    """The wiring, where bitsandbytes is not installed (the perf extra): a stand-in module records
    what the Trainer builds."""
    import types

    class AdamW8bit(torch.optim.AdamW):
        made: list[dict] = []

        def __init__(self, params, lr, weight_decay):  # noqa: ANN001
            AdamW8bit.made.append({"lr": lr, "weight_decay": weight_decay})
            super().__init__(params, lr=lr, weight_decay=weight_decay)

    fake = types.ModuleType("bitsandbytes")
    fake.optim = types.SimpleNamespace(AdamW8bit=AdamW8bit)
    monkeypatch.setitem(sys.modules, "bitsandbytes", fake)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name == "bitsandbytes" else real(name, *a))
    model = _mock(optimizer="adamw8bit")
    ctx = StepContext(step=1, seed=0, budget=Budget(None, None), base_model=lambda: model)
    trainer = Trainer(model, "xattn", ctx, lr=3e-4, iterations=1, description="test", weight_decay=0.01)
    assert isinstance(trainer.opt, AdamW8bit) and AdamW8bit.made == [{"lr": 3e-4, "weight_decay": 0.01}]
    assert type(Trainer(_mock(), "xattn", ctx, lr=3e-4, iterations=1, description="test").opt) is torch.optim.AdamW


def test_the_8bit_optimiser_without_bitsandbytes_names_the_install(monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "bitsandbytes" else real(name, *a))
    with pytest.raises(CulbenchError, match=r'pip install -e "\.\[perf\]"'):
        Performance.parse({"optimizer": "adamw8bit"})


def test_sampling_halves_its_batch_when_memory_runs_out(monkeypatch) -> None:
    model = _mock()
    prompts, seeds = ["a red square", "a blue circle"] * 3, list(range(6))
    expected = model.sample(prompts, seeds, steps=2)
    denoise = model._denoise

    def small_memory(prompts, *args, **kwargs):
        if len(prompts) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return denoise(prompts, *args, **kwargs)

    monkeypatch.setattr(model, "_denoise", small_memory)
    assert torch.allclose(model.sample(prompts, seeds, steps=2), expected, atol=1e-5)
    assert model.batch_size == 2
    monkeypatch.setattr(model, "_denoise", lambda *a, **k: (_ for _ in ()).throw(torch.OutOfMemoryError("x")))
    with pytest.raises(torch.OutOfMemoryError):  # one image that does not fit is not retried forever
        model.sample(prompts[:1], seeds[:1], steps=2)


def test_a_run_records_its_switches_per_step(tmp_path: Path) -> None:
    plain = run("finetune", sequence="mock", profile="smoke", out=tmp_path / "a", threads=1)
    switched = run("finetune", sequence="mock", profile="smoke", out=tmp_path / "b", threads=1,
                   model_options={"attention": "classic", "grad_checkpointing": "true"})
    compute = lambda d: json.loads((d / "manifest.json").read_text())["compute"]  # noqa: E731
    assert all("performance" not in part for step in compute(plain).values() for part in step.values())
    record = compute(switched)["1"]["unlearn"]["performance"]
    assert record["attention_processors"] == ["AttnProcessor"] and record["grad_checkpointing"] is True
    assert compute(switched)["0"]["eval"]["performance"] == record
    options = json.loads((switched / "manifest.json").read_text())["identity"]["model"]["options"]
    assert options == {"attention": "classic", "grad_checkpointing": "true"}


def test_the_sd_backend_takes_the_switches(tmp_path: Path) -> None:
    folder = write_tiny_sd(tmp_path / "sd")
    model = MODELS.get("sd")(model=str(folder), device="cpu", sample_steps=2, autocast="bfloat16",
                             attention="classic")
    assert model.performance.autocast == "bfloat16"
    assert model.sample(["a dog"], [0], steps=2).dtype == torch.float32


@pytest.mark.slow
def test_compiled_sampling_agrees_with_eager() -> None:
    eager, compiled = _mock(), _mock(compile=True)
    images = compiled.sample(["a red square", "a blue circle"], [0, 1], steps=2)
    assert compiled._compiled is not None
    assert torch.allclose(images, eager.sample(["a red square", "a blue circle"], [0, 1], steps=2), atol=1e-4)


def test_a_plugin_backend_taking_any_option_is_not_second_guessed() -> None:
    from culbench.models.performance import check_options

    def plugin_builder(*, device: str = "cpu", **options: object) -> None: ...

    check_options("plugin", plugin_builder, {"its_own_option": 3, "autocast": "bfloat16"})
    with pytest.raises(CulbenchError, match="autocast="):
        check_options("plugin", plugin_builder, {"autocast": "fp8"})  # the switches are still checked
    with pytest.raises(CulbenchError, match="the mock backend has no option 'its_own_option'"):
        check_options("mock", MODELS.get("mock"), {"its_own_option": 3})
