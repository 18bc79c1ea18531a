"""The soft prompt attack probe: soft tokens in the concept name's place, trained on ToyWorld
renders, judged on fresh samples; records resumable and deterministic; one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from culbench import runfolder as rf
from culbench.errors import CulbenchError
from culbench.probes import load_target, run_probes
from culbench.probes.attack import encode_soft, soft_prompts, word_vector
from culbench.tasks import resolve_sequence

TINY = ["attack.steps=2", "attack.batch=4", "attack.renders=1", "attack.prompts=2"]


@pytest.fixture(scope="module")
def base_run(toy10_smoke_run: Path) -> Path:
    """The shared toy10@2 smoke run of ``original`` (seed 1: order 1; conftest)."""
    return toy10_smoke_run


@pytest.fixture(scope="module")
def model(base_run: Path):  # noqa: ANN201
    return load_target(base_run, 0).model()


def test_attack_records_every_probed_concept_deterministically_and_resumes(base_run: Path,
                                                                           tmp_path: Path) -> None:
    run_dir = Path(shutil.copytree(base_run, tmp_path / "run"))
    [record] = run_probes(run_dir, ["attack"], [0], overrides=TINY)
    concepts = record["result"]["concepts"]
    assert list(concepts) == resolve_sequence("toy10").orders[1]  # step 0: every forgotten concept
    for result in concepts.values():
        assert result["n"] == 2 and result["prompt_images"] == [1, 1]
        assert 0 <= result["presence"] <= 1 and result["own_presence"] is not None
        assert result["loss"] > 0 and len(result["nearest"]) == 1
    path = rf.probe_path(run_dir, "attack", 0)
    stamp = path.stat().st_mtime_ns
    assert run_probes(run_dir, ["attack"], [0], overrides=TINY)[0] == record
    assert path.stat().st_mtime_ns == stamp  # skipped
    path.unlink()
    again = run_probes(run_dir, ["attack"], [0], overrides=TINY)[0]
    assert json.dumps(again["result"]) == json.dumps(record["result"])  # same inputs: same result
    other = run_probes(run_dir, ["attack"], [0], overrides=[*TINY, "attack.tokens=2"])[0]
    assert all(len(c["nearest"]) == 2 for c in other["result"]["concepts"].values())  # recomputed


def test_the_attack_finds_a_concept_its_start_word_does_not_show(base_run: Path,
                                                                  tmp_path: Path) -> None:
    """Step 1 of ``original`` is the base model and probes its first concept (yellow, anchor brown):
    the untrained soft token (the anchor's embedding) does not draw yellow; the default budget
    does, and so does the untrained token started at the name (the prompt itself)."""
    run_dir = Path(shutil.copytree(base_run, tmp_path / "run"))
    [start] = run_probes(run_dir, ["attack"], [1], overrides=["attack.prompts=8", "attack.steps=0"])
    [attacked] = run_probes(run_dir, ["attack"], [1], overrides=["attack.prompts=8"])
    assert list(attacked["result"]["concepts"]) == ["yellow"]
    assert start["result"]["concepts"]["yellow"]["presence"] <= 0.25
    assert start["result"]["concepts"]["yellow"]["nearest"] == ["brown"]
    assert attacked["result"]["summary"]["presence"] >= 0.75
    untrained_name = ["attack.prompts=8", "attack.steps=0", "attack.init=name"]
    [named] = run_probes(run_dir, ["attack"], [1], overrides=untrained_name)
    assert named["result"]["concepts"]["yellow"]["nearest"] == ["yellow"]  # the prompt itself
    assert named["result"]["summary"]["presence"] >= 0.75


def test_soft_positions_replace_the_name_and_reproduce_the_prompt(model) -> None:  # noqa: ANN001
    prompts = ["a red star on a dark background, left", "dotted red square, center, red background"]
    soft = soft_prompts(model.tokenizer, prompts, "red", 2)
    assert soft.prompts[0] == "a softtokenslot softtokenslot star on a dark background, left"
    assert soft.slots[1][soft.slots[1] >= 0].tolist() == [0, 1, 0, 1]  # every token per occurrence
    one = soft_prompts(model.tokenizer, prompts, "red", 1)
    with torch.no_grad():  # the name's own embedding in the soft slot is the prompt itself
        emb = encode_soft(model, one, slice(None), word_vector(model, "red")[None])
    assert torch.allclose(emb, model.encode(prompts), atol=1e-6)
    assert not model.text_encoder.get_input_embeddings()._forward_hooks  # the hook is removed


def test_sampling_with_given_embeddings_equals_sampling_the_prompts(model) -> None:  # noqa: ANN001
    twin = model.clone()
    twin.batch_size = 2  # several jobs
    prompts, seeds = ["a red star on a dark background, left"] * 3, [5, 6, 7]
    plain = twin.sample(prompts, seeds, steps=2)
    assert torch.equal(twin.sample(prompts, seeds, steps=2, embeddings=twin.encode(prompts)), plain)


def test_attack_inputs_that_cannot_work_fail_with_one_line(base_run: Path, model) -> None:  # noqa: ANN001
    with pytest.raises(CulbenchError, match="attack.tokens must be at least 1"):
        run_probes(base_run, ["attack"], [0], overrides=["attack.tokens=0"])
    with pytest.raises(CulbenchError, match="attack.prompts >= 1"):
        run_probes(base_run, ["attack"], [0], overrides=["attack.prompts=0"])
    with pytest.raises(CulbenchError, match="'purplish' is not in the model's vocabulary"):
        run_probes(base_run, ["attack"], [0], overrides=["attack.init=purplish"])
    with pytest.raises(CulbenchError, match="leaves none of the model.s 1000 timesteps"):
        run_probes(base_run, ["attack"], [0], overrides=["attack.t_min=1000"])
    with pytest.raises(CulbenchError, match="does not name 'red'"):
        soft_prompts(model.tokenizer, ["a blue star on a dark background, left"], "red", 1)
    with pytest.raises(CulbenchError, match="longer than 16 tokens"):
        soft_prompts(model.tokenizer, ["a picture of a red star on a dark background, left"], "red",
                     8)
