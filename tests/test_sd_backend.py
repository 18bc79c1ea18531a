"""The SD backend on a tiny random SD folder: loads offline, samples, trains, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from culbench.catalog import MODELS
from culbench.errors import CulbenchError
from conftest import HELPERS, run_cli

import sys

sys.path.insert(0, str(HELPERS))
from tiny_sd import write_tiny_sd  # noqa: E402


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_sd(tmp_path_factory.mktemp("tiny-sd") / "sd")


def test_loads_samples_and_trains(tiny_sd: Path) -> None:
    model = MODELS.get("sd")(model=str(tiny_sd), device="cpu", sample_steps=2, guidance=2.0)
    images = model.sample(["a red apple", "a dog"], [0, 1], steps=2)
    assert images.shape == (2, 3, 16, 16) and 0 <= images.min() and images.max() <= 1
    again = model.sample(["a dog"], [1], steps=2)
    assert torch.allclose(images[1:], again, atol=1e-5)  # per-seed noise, batch-independent
    assert model.backend == "sd" and model.clone().backend == "sd"
    assert model.prediction_type == "epsilon" and next(model.unet.parameters()).dtype == torch.float32
    kv = model.parameter_groups()["xattn_kv"]
    assert kv and all(".attn2.to_k." in n or ".attn2.to_v." in n for n in kv)
    x_t, t = model.sample_partial(["a dog"], [0], steps=4, stop=2)
    loss = model.predict(x_t, t, model.encode(["a dog"])).pow(2).mean()
    loss.backward()
    assert any(p.grad is not None for p in model.parameters("xattn_kv"))


@pytest.mark.parametrize("method", ["uce", "rece"])
def test_closed_form_methods_edit_exactly_the_cross_attention_kv(method: str, tiny_sd: Path) -> None:
    from culbench.api import StepContext
    from culbench.catalog import METHODS

    model = MODELS.get("sd")(model=str(tiny_sd), device="cpu", sample_steps=2)
    before = model.state_dict()
    request = _apple_request()
    edited = METHODS.get(method)().unlearn(model, request, StepContext(step=1, seed=0))
    changed = {k for k, v in edited.state_dict().items() if not torch.equal(v, before[k])}
    kv = set(model.parameter_groups()["xattn_kv"])
    assert changed and changed <= kv


@pytest.mark.parametrize("method", ["fmn", "cure", "mace"])
def test_new_kv_methods_edit_exactly_the_cross_attention_kv(method: str, tiny_sd: Path) -> None:
    """FMN (attention maps of SD's UNet, soft tokens on the CLIP tokenizer: "apple" is 5 tokens
    here) and CURE on a tiny SD: only attn2.to_k / to_v move."""
    from culbench.api import StepContext
    from culbench.catalog import METHODS

    model = MODELS.get("sd")(model=str(tiny_sd), device="cpu", sample_steps=2)
    before = model.state_dict()
    request = _apple_request()
    small = {"fmn": {"iterations": 2, "bank_size": 2, "bank_steps": 2, "ti_steps": 2, "lr": 1e-2},
             "mace": {"iterations": 2, "bank_size": 2, "bank_steps": 2, "lr": 1e-2}}
    cls = METHODS.get(method)
    edited = cls(cls.Config(**small.get(method, {}))).unlearn(model, request, StepContext(step=1, seed=0))
    changed = {k for k, v in edited.state_dict().items() if not torch.equal(v, before[k])}
    kv = set(model.parameter_groups()["xattn_kv"])
    assert changed and changed <= kv


def test_sculpt_edits_only_the_cross_attention_of_sd(tiny_sd: Path) -> None:
    """Sculpting Memory on a tiny SD: the masks find diffusers' attn2 projections; only attn2 moves."""
    from culbench.api import StepContext
    from culbench.catalog import METHODS

    model = MODELS.get("sd")(model=str(tiny_sd), device="cpu", sample_steps=2)
    before = model.state_dict()
    cls = METHODS.get("sculpt")
    small = cls.Config(bank=4, batch_size=2, epochs=3, sample_steps=2, lr=1e-2)
    edited = cls(small).unlearn(model, _apple_request(), StepContext(step=1, seed=0))
    changed = {k for k, v in edited.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and changed <= set(model.parameter_groups()["xattn"])


def test_advunlearn_trains_only_its_own_text_encoder_on_tiny_sd(tiny_sd: Path) -> None:
    """AdvUnlearn on a tiny SD (CLIP BPE tokenizer, soft prefix after its start token): the UNet is
    unchanged, the weights carry a new text encoder, and a reloaded model encodes like the edited one."""
    from culbench.api import StepContext
    from culbench.catalog import METHODS

    model = MODELS.get("sd")(model=str(tiny_sd), device="cpu", sample_steps=2)
    before = model.state_dict()
    request = _apple_request()
    cls = METHODS.get("advunlearn")
    small = cls.Config(iterations=3, warmup=1, attack_steps=2, batch_size=2, retain_batch=1, ddim_steps=2)
    edited = cls(small).unlearn(model, request, StepContext(step=1, seed=0))
    state = edited.state_dict()
    assert all(torch.equal(state[k], v) for k, v in before.items())
    added = {k for k in state if k not in before}
    assert added and all(k.startswith("text_encoder.") for k in added)
    again = MODELS.get("sd")(model=str(tiny_sd), device="cpu", sample_steps=2)
    again.load_state_dict(state)
    assert torch.equal(again.encode(["an apple"]), edited.encode(["an apple"]))
    assert not torch.equal(model.encode(["an apple"]), edited.encode(["an apple"]))


def test_spm_merges_a_membrane_into_every_transformer_layer_of_sd(tiny_sd: Path) -> None:
    """SPM on a tiny SD (its transformer blocks' proj_in/out are 1x1 convolutions, its text encoder
    CLIP's): exactly the membrane layers' weights move, each by a rank-1 update."""
    from culbench.methods.spm import membrane_layers

    from culbench.api import StepContext
    from culbench.catalog import METHODS

    model = MODELS.get("sd")(model=str(tiny_sd), device="cpu", sample_steps=2)
    request = _apple_request()
    before = model.state_dict()
    for anchors in ("random", "retain"):
        cls = METHODS.get("spm")
        config = cls.Config(iterations=2, batch_size=2, anchor_batch=2, ddim_steps=3, lr=1e-2, anchors=anchors)
        edited = cls(config).unlearn(model, request, StepContext(step=1, seed=0))
        delta = {k: v - before[k] for k, v in edited.state_dict().items() if not torch.equal(v, before[k])}
        assert set(delta) == {f"{name}.weight" for name, _ in membrane_layers(model.unet, "transformer")}
        assert any("proj_in" in k for k in delta)
        for d in delta.values():
            sv = torch.linalg.svdvals(d.flatten(1).double())
            assert len(sv) == 1 or sv[1] < 1e-3 * sv[0]


def test_errors_are_one_line_with_a_fix(tmp_path: Path) -> None:
    with pytest.raises(CulbenchError, match="needs a model"):
        MODELS.get("sd")(device="cpu")
    with pytest.raises(CulbenchError, match="does not exist"):
        MODELS.get("sd")(model=str(tmp_path / "nowhere"))
    (tmp_path / "half").mkdir()
    with pytest.raises(CulbenchError, match="not a diffusers Stable Diffusion folder"):
        MODELS.get("sd")(model=str(tmp_path / "half"))
    with pytest.raises(CulbenchError, match="not in your HF cache|could not load"):
        MODELS.get("sd")(model="someone/not-cached-model")
    if not torch.cuda.is_available():
        with pytest.raises(CulbenchError, match="no CUDA GPU"):
            MODELS.get("sd")(model=str(tmp_path / "half"), device="cuda")


def _sd_methods() -> list[str]:
    from culbench.catalog import METHODS

    def on_mock(backends: tuple[str, ...]) -> bool:  # empty: any backend
        return not backends or "mock" in backends

    return [e.name for e in METHODS.entries() if e.source == "builtin" and on_mock(METHODS.get(e.name).backends)]


@pytest.mark.parametrize("method", [m if m in ("dfr", "uce") else pytest.param(m, marks=pytest.mark.slow)
                                    for m in _sd_methods()])  # all: pytest -m slow (~5 min)
def test_dfr10_smoke_on_tiny_sd_with_injected_clip(method: str, tiny_sd: Path, tmp_path: Path) -> None:
    from tiny_sd import write_tiny_clip

    config, weights = write_tiny_clip(tmp_path / "clip")
    done = run_cli("run", "--method", method, "--sequence", "dfr10-sd15", "--model", str(tiny_sd),
                   "--judge-option", "model=tiny-clip-test", "--judge-option", f"model_config={config}",
                   "--judge-option", f"pretrained={weights}", "--profile", "smoke", "--quiet",
                   "--out", str(tmp_path / "out"), timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = next((tmp_path / "out").rglob("summary.json"))
    assert '"sequence": "dfr10-sd15@1"' in summary.read_text()


def test_sampling_on_several_devices_matches_one_device(tmp_path) -> None:  # noqa: ANN001
    """Two CPU workers stand in for two GPUs: same images, and replicas follow weight updates."""
    import copy

    import torch

    from culbench.models.sd import build_sd_model
    from tests.helpers.tiny_sd import write_tiny_sd

    folder = write_tiny_sd(tmp_path / "sd")
    one = build_sd_model(model=str(folder), sample_steps=3, batch_size=2)
    two = build_sd_model(model=str(folder), sample_steps=3, batch_size=2, devices="cpu,cpu")
    prompts, seeds = ["a photo of a dog"] * 3 + ["a cat"] * 2, [0, 1, 2, 3, 4]
    assert torch.allclose(one.sample(prompts, seeds), two.sample(prompts, seeds), atol=1e-5)
    with torch.no_grad():  # an in-place update (as an optimiser makes) must reach the replica
        for model in (one, two):
            for p in model.unet.parameters():
                p.mul_(1.01)
    assert torch.allclose(one.sample(prompts, seeds), two.sample(prompts, seeds), atol=1e-5)
    student, reference = two.clone(), one.clone()  # another UNet object: the shared replicas re-sync
    with torch.no_grad():
        for model in (student, reference):
            next(iter(model.unet.parameters())).add_(0.1)
    got = student.sample(prompts, seeds, output="latent")
    assert torch.allclose(got, reference.sample(prompts, seeds, output="latent"), atol=1e-5)
    assert not torch.allclose(got, two.sample(prompts, seeds, output="latent"))
    for model in (student, reference):  # a replaced text encoder (retrain's) reaches the replicas too
        encoder = copy.deepcopy(model.text_encoder)
        with torch.no_grad():
            for p in encoder.parameters():
                p.mul_(1.2)
        model.text_encoder = encoder
    swapped = student.sample(prompts, seeds, output="latent")
    assert torch.allclose(swapped, reference.sample(prompts, seeds, output="latent"), atol=1e-5)
    assert not torch.allclose(swapped, got, atol=1e-4)


def test_the_paraphrase_probe_runs_on_an_sd_run(tiny_sd: Path, tmp_path: Path) -> None:
    """dfr10-sd15's probes/ prompts (descriptions without the concept's name) on the tiny SD, judged
    by the run's own (injected) CLIP judge, whose options the probe must be given too."""
    from tiny_sd import write_tiny_clip

    config, weights = write_tiny_clip(tmp_path / "clip")
    judge = ["--judge-option", "model=tiny-clip-test", "--judge-option", f"model_config={config}",
             "--judge-option", f"pretrained={weights}"]
    done = run_cli("run", "--method", "original", "--sequence", "dfr10-sd15", "--model", str(tiny_sd), *judge,
                   "--profile", "smoke", "--quiet", "--out", str(tmp_path / "out"), timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = next((tmp_path / "out").rglob("summary.json")).parent
    probed = run_cli("probe", str(run_dir), "--probe", "paraphrase", *judge, timeout=900)
    assert probed.returncode == 0, probed.stderr[-3000:]
    record = json.loads((run_dir / "probes" / "paraphrase" / "10.json").read_text())
    assert set(record["result"]["concepts"]["dog"]["words"]) <= {"a puppy", "a canine"}
    wrong = run_cli("probe", str(run_dir), "--probe", "paraphrase", "--step", "0", "--judge-option", "model=tiny-clip-test",
                    "--judge-option", f"model_config={config}", "--judge-option", "pretrained=elsewhere.pt")
    assert wrong.returncode != 0 and "fix:" in wrong.stderr


def _apple_request() -> object:
    """Request 1 of a one-concept sequence: forget "apple" (two prompts), keep "dog"."""
    from culbench.api import Concept, ForgetSet, PromptPair, RetainSet, UnlearnRequest

    concept = Concept("apple", "object", "apple", None, ())
    pairs = (PromptPair("a red apple on a table", "a red ball on a table"), PromptPair("an apple", "a ball"))
    return UnlearnRequest(1, ForgetSet(concept, pairs),
                          general=(RetainSet(Concept("dog", "object", "dog", None, ()), ("a dog in a park",)),))
