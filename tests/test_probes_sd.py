"""The attack and relearn probes on a Stable Diffusion run (tiny random SD, injected tiny CLIP judge):
their training images are the base model's, records are complete and resumable, and soft tokens
work on the CLIP BPE tokenizer."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import HELPERS

from culbench import runfolder as rf
from culbench.errors import CulbenchError
from culbench.probes import load_target, run_probes, seeds_for

sys.path.insert(0, str(HELPERS))
from tiny_sd import write_tiny_clip, write_tiny_sd  # noqa: E402

STEP = 2  # `original` at step 2: the base model's weights, probed for pikachu and brad_pitt
TINY = ["attack.steps=2", "attack.batch=2", "attack.generated=3", "attack.gen_steps=2", "attack.prompts=2",
        "relearn.generated=3", "relearn.gen_steps=2", "relearn.steps=2", "relearn.checkpoints=1",
        "relearn.judged=2", "relearn.batch_size=2"]


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_sd(tmp_path_factory.mktemp("tiny-sd") / "sd")


@pytest.fixture(scope="module")
def sd_run(tiny_sd: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A dfr10-sd15 smoke run of ``original`` on the tiny SD, judged by a tiny CLIP; its judge options."""
    from culbench.runner import run

    root = tmp_path_factory.mktemp("sd-probes")
    config, weights = write_tiny_clip(root / "clip")
    judge = {"model": "tiny-clip-test", "model_config": str(config), "pretrained": str(weights)}
    run_dir = run("original", sequence="dfr10-sd15", model_options={"model": str(tiny_sd)},
                  judge_options=judge, profile="smoke", out=root / "out", threads=1)
    return run_dir, judge


def test_attack_and_relearn_record_sd_runs_from_base_model_images_and_resume(sd_run, tmp_path: Path) -> None:  # noqa: ANN001
    run_dir, judge = sd_run
    run_dir = Path(shutil.copytree(run_dir, tmp_path / "run"))
    logged: list[str] = []
    attack, relearn = run_probes(run_dir, ["attack", "relearn"], [STEP], overrides=TINY, judge_options=judge,
                                 log=logged.append, applicable_only=True)
    assert not any("skipped" in line for line in logged)  # both declare the SD backend
    base_sha = rf.read_step(run_dir, 0)["model_sha256"]
    for record in (attack, relearn):
        assert record["fingerprint"]["data"] == {"images": "base-model", "base_model_sha256": base_sha}
        assert record["fingerprint"]["config"]["generated"] == 3 and record["step"] == STEP
        assert list(record["result"]["concepts"]) == ["pikachu", "brad_pitt"]
    for row in attack["result"]["concepts"].values():
        assert row["n"] == 2 and row["prompt_images"] == [1, 1] and 0 <= row["presence"] <= 1
        assert row["loss"] > 0 and len(row["nearest"]) == 1 and row["own_presence"] is not None
    for row in relearn["result"]["concepts"].values():
        assert row["steps"] == [0, 2] and len(row["presence"]) == 2 and sum(row["prompt_images"]) == 2
    assert set(relearn["result"]["summary"]) == {"final_presence", "auc", "steps_to_half", "reached"}
    paths = [rf.probe_path(run_dir, name, STEP) for name in ("attack", "relearn")]
    stamps = [p.stat().st_mtime_ns for p in paths]
    again = run_probes(run_dir, ["attack", "relearn"], [STEP], overrides=TINY, judge_options=judge)
    assert again == [attack, relearn] and [p.stat().st_mtime_ns for p in paths] == stamps  # skipped
    [more] = run_probes(run_dir, ["attack"], [STEP], overrides=[*TINY, "attack.gen_steps=3"], judge_options=judge)
    assert more["fingerprint"]["config"]["gen_steps"] == 3 and paths[0].stat().st_mtime_ns != stamps[0]


def test_training_images_are_the_base_models_not_the_checkpoints(sd_run) -> None:  # noqa: ANN001
    from culbench.evaluation.judge_agreement import step_model
    from culbench.probes.images import concept_latents, generation_seeds, image_source

    run_dir, judge = sd_run
    target = load_target(run_dir, STEP, judge_options=judge)
    checkpoint = target.model()
    with torch.no_grad():  # the checkpoint now differs from the base model
        for p in checkpoint.unet.parameters():
            p.add_(0.05)

    def no_render() -> Any:
        raise AssertionError("an SD run has no renderer")

    latents, captions = concept_latents(target, checkpoint, "pikachu", count=3, seed=7, steps=2, render=no_render)
    assert image_source(target) == "base-model"
    assert captions == list(target.seq.prompts["pikachu"].eval[:3]) and all("Pikachu" in c for c in captions)
    seeds = generation_seeds(7, 3)
    assert not set(seeds) & (set(target.seq.spec.eval.seeds) | set(seeds_for(0, 1000)) | set(seeds_for(7, 1000)))
    base = step_model(run_dir, 0, target.manifest, target.seq, "cpu")
    drawn = dict(steps=2, guidance=target.sampler["guidance"], output="latent")
    assert torch.allclose(latents, base.sample(captions, seeds, **drawn), atol=1e-5)
    assert not torch.allclose(latents, checkpoint.sample(captions, seeds, **drawn), atol=1e-3)


def test_soft_tokens_on_the_clip_tokenizer_replace_the_name_and_refuse_a_cut_off_name(sd_run) -> None:  # noqa: ANN001
    from culbench.probes.attack import encode_soft, soft_prompts, word_vector

    run_dir, judge = sd_run
    model = load_target(run_dir, 0, judge_options=judge).model()
    vocabulary = len(model.tokenizer)
    soft = soft_prompts(model.tokenizer, ["a photo of Pikachu in a park"], "Pikachu", 2)
    assert soft.prompts == ["a photo of softtokenslot softtokenslot in a park"]
    start = 1 + len(model.tokenizer("a photo of", add_special_tokens=False).input_ids)
    assert (soft.slots[0] >= 0).nonzero().flatten().tolist() == [start, start + 1]
    assert soft.slots[0, start : start + 2].tolist() == [0, 1]
    rest = model.tokenizer("a photo of in a park", padding="max_length", max_length=30, return_tensors="pt")
    assert torch.equal(soft.ids[0][soft.slots[0] < 0][:30], rest.input_ids[0])  # the other tokens as they were
    one = soft_prompts(model.tokenizer, ["a photo of x in a park"], "x", 1)  # "x" is one BPE token here
    with torch.no_grad():  # the name's own embedding in the soft slot is the prompt itself
        emb = encode_soft(model, one, slice(None), word_vector(model, "x")[None])
    assert torch.allclose(emb, model.encode(["a photo of x in a park"]), atol=1e-6)
    assert len(model.tokenizer) == vocabulary  # the placeholder went to a copy
    late = "an illustration of an old man reading in Van Gogh style"  # past the tiny SD's 32 tokens
    with pytest.raises(CulbenchError, match="'Van Gogh style' falls past the model's 32 text tokens") as err:
        soft_prompts(model.tokenizer, [late], "Van Gogh style", 1)
    assert "\n" not in str(err.value) and "fix:" in str(err.value)


def test_soft_tokens_train_and_sample_with_a_half_precision_text_encoder(tiny_sd: Path) -> None:
    """SD on CUDA keeps the text encoder in float16 and the UNet in float32 (``dtype=auto``)."""
    from culbench.models.sd import build_sd_model
    from culbench.probes.attack import encode_soft, invert, soft_prompts, word_vector

    model = build_sd_model(model=str(tiny_sd), dtype="float16", sample_steps=2)
    assert next(model.text_encoder.parameters()).dtype == torch.float16
    soft = soft_prompts(model.tokenizer, ["a photo of Pikachu in a park", "Pikachu on a beach"], "Pikachu", 1)
    latents = model.sample(soft.prompts, [1, 2], guidance=7.5, output="latent")
    vectors, loss = invert(model, soft, latents, word_vector(model, "a cartoon")[None], steps=2, batch=2,
                           lr=0.1, t_min=500, seed=0)
    cond = encode_soft(model, soft, torch.tensor([0, 1]), vectors)
    assert cond.dtype == torch.float32 and loss is not None and loss > 0
    assert model.sample(soft.prompts, [5, 6], guidance=7.5, embeddings=cond).shape == (2, 3, 16, 16)
