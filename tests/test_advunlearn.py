"""AdvUnlearn (``methods/advunlearn.py``) does what it claims on the mock world: it trains the text
encoder alone, through the Trainer's ``"text_encoder"`` group (so regularisers compose); the soft
prompt an attacker finds brings the concept back less after it than after the same training without
the attack; its retain term keeps the retain prompts' predictions closer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from culbench import runfolder as rf
from culbench.api import StepContext
from culbench.catalog import METHODS, MODELS
from culbench.runner import run
from culbench.tasks import resolve_sequence
from culbench.training import TEXT_ENCODER, Trainer


def _model():  # noqa: ANN202
    spec = resolve_sequence("mock").spec.model
    return MODELS.get(spec.backend)(device="cpu", **spec.options)


def _module():  # noqa: ANN202 - the method file, found through the registry (no path assumed)
    import sys

    return sys.modules[METHODS.get("advunlearn").__module__]


@pytest.fixture(scope="module")
def edits() -> dict:
    """The base mock model, request 1 and three edits of it: AdvUnlearn, the same without the
    attack (warm-up over every iteration) and without the retain term."""
    model, request = _model(), resolve_sequence("mock").request(1)
    cls = METHODS.get("advunlearn")
    small = {"iterations": 16, "warmup": 4}
    out = {"base": model, "request": request}
    for name, extra in (("adv", {}), ("no_attack", {"warmup": 16}), ("no_retain", {"retain_loss_w": 0.0})):
        out[name] = cls(cls.Config(**{**small, **extra})).unlearn(model, request, StepContext(step=1, seed=0))
    return out


def test_the_soft_prefix_without_tokens_encodes_like_the_model_and_keeps_end_of_text() -> None:
    mod, model = _module(), _model()
    prompts = ["a red square on the left", "a blue circle"]
    plain = mod.soft_prefix(model.tokenizer, prompts, 0)
    assert torch.allclose(plain.encode(model), model.encode(prompts), atol=1e-6)
    three = mod.soft_prefix(model.tokenizer, prompts, 3)
    assert three.slots[:, 1:4].tolist() == [[0, 1, 2]] * 2 and (three.slots[:, 4:] == -1).all()
    long = mod.soft_prefix(model.tokenizer, [" ".join(["red"] * 40)], 2)
    assert long.ids.shape[1] == model.tokenizer.model_max_length
    assert long.ids[0, -1] == model.tokenizer.eos_token_id


def test_only_a_new_text_encoder_moves_and_the_shipped_one_stays(edits: dict) -> None:
    base, adv = edits["base"], edits["adv"]
    assert adv.text_encoder is not base.text_encoder and not adv.text_encoder.training
    unet = zip(adv.unet.state_dict().values(), base.unet.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in unet)
    stored = adv.state_dict()
    assert any(k.startswith("text_encoder.") for k in stored)
    assert not any(p.requires_grad for p in adv.text_encoder.parameters())
    assert not any(k.startswith("text_encoder.") for k in base.state_dict())


def test_the_attack_brings_the_concept_back_less_than_after_training_without_it(edits: dict) -> None:
    """The white-box soft prompt attack (from the same start, with the same budget) against each
    model, aiming at the base model's prediction for the forget prompts: after AdvUnlearn it stays
    farther from it than after the unedited model, and than after the same training without attack."""
    mod, base = _module(), edits["base"]
    forget = [p.prompt for p in edits["request"].forget]
    x_t, t, _, wanted = METHODS.get("advunlearn")()._forget_targets(base, forget, 5, list(range(len(forget))))
    prefix = mod.soft_prefix(base.tokenizer, forget, 1)
    init = mod.random_words(base, 1, torch.Generator().manual_seed(0))
    left = {name: mod.attack(edits[name], prefix, x_t, t, wanted, init, steps=20, lr=1e-2)[1]
            for name in ("base", "adv", "no_attack")}
    assert left["base"] < left["no_attack"] < left["adv"], left


def test_the_retain_term_keeps_retain_predictions_closer(edits: dict) -> None:
    base, request = edits["base"], edits["request"]
    retain = request.retain_prompts()
    x_r, t_r = base.sample_partial(retain, list(range(len(retain))), steps=10, stop=5, guidance=3.0)

    def drift(model) -> float:  # noqa: ANN001
        with torch.no_grad():
            return float(F.mse_loss(model.predict(x_r, t_r, model.encode(retain)),
                                    base.predict(x_r, t_r, base.encode(retain))))

    assert drift(edits["adv"]) < drift(edits["no_retain"])


def test_the_trainer_trains_a_copy_of_the_text_encoder() -> None:
    model = _model()
    shipped = [p.detach().clone() for p in model.text_encoder.parameters()]
    trainer = Trainer(model, TEXT_ENCODER, StepContext(step=1, seed=0), lr=1e-2, iterations=2, description="t")
    assert trainer.params == list(trainer.student.text_encoder.parameters())
    assert trainer.student.text_encoder is not model.text_encoder
    for _ in trainer.iterations():
        prefix = _module().soft_prefix(model.tokenizer, ["a red square"], 0)
        trainer.step(prefix.encode(trainer.student).square().mean(), 1.0)
    out = trainer.finish()
    assert not out.text_encoder.training and not any(p.requires_grad for p in out.text_encoder.parameters())
    assert all(torch.equal(a, b) for a, b in zip(shipped, model.text_encoder.parameters(), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(shipped, out.text_encoder.parameters(), strict=True))


def _text_moved(run_dir: Path) -> float:
    model = _model()
    base = model.state_dict()
    after = rf.load_weights(rf.step_dir(run_dir, 1) / rf.WEIGHTS, base)
    shipped = {f"text_encoder.{k}": v for k, v in model.text_encoder.state_dict().items()}
    return float(sum((after[k].float() - v.float()).norm() ** 2 for k, v in shipped.items()) ** 0.5)


def test_regularisers_compose_and_the_run_stores_the_encoder(tmp_path: Path) -> None:
    """``advunlearn+l2sp`` (anchored at step 0, across the text encoder's parameters) moves the
    encoder less than ``advunlearn``; both runs store it in the step's weights."""
    plain = _text_moved(run("advunlearn", sequence="mock", profile="smoke", out=tmp_path / "a", threads=1))
    anchored = _text_moved(run("advunlearn+l2sp", sequence="mock", profile="smoke", out=tmp_path / "b", threads=1,
                               overrides=("l2sp.weight=1e7", "l2sp.anchor=base")))
    assert 0 < anchored < 0.5 * plain
