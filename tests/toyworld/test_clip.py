"""The ToyWorld CLIP builds, trains a few steps, round-trips its weights and scores."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from culbench.errors import CulbenchError
from culbench.toyworld import clip


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained() -> torch.nn.Module:
    logs: list[str] = []
    model = clip.train_clip(seed=0, n_images=48, steps=2, batch_size=16, log=logs.append)
    assert len(logs) == 1 and "step 2/2" in logs[0]
    return model


def test_text_pooling_takes_the_first_eos() -> None:
    tok = clip.clip_tokenizer()
    ids = clip.tokenize(["zorb on a dark background, left",
                         "a red star on a light background, right"])
    assert ids.shape == (2, clip.CONTEXT_LENGTH)
    assert (ids[:, 0] == tok.bos_token_id).all()
    model = clip.build_clip()
    assert model.text_pool_type == "eos" and model.text_eos_id == tok.eos_token_id
    # Pooling reads the first EOS, which (causal mask) sees every word and no padding:
    # anything after it is invisible, anything before it is not.
    first_eos = int((ids[0] == tok.eos_token_id).int().argmax())
    after, before = ids.clone(), ids.clone()
    after[0, first_eos + 1 :] = tok.unk_token_id
    before[0, first_eos - 1] = tok.unk_token_id
    with torch.no_grad():
        base, a, b = (model.encode_text(t) for t in (ids, after, before))
    torch.testing.assert_close(base, a)
    assert not torch.allclose(base[0], b[0])


def test_training_steps_give_a_finite_loss(trained: torch.nn.Module) -> None:
    images = torch.rand(4, 3, 32, 32)
    tokens = clip.tokenize(["zorb, left, dark background"] * 2
                           + ["a red star on a light background, right"] * 2)
    with torch.no_grad():
        loss = clip.contrastive_loss(trained, images, tokens, torch.tensor([0, 0, 1, 1]))
    assert torch.isfinite(loss)
    acc = clip.caption_retrieval_accuracy(trained, n=20, seed=1)
    assert 0.0 <= acc <= 1.0


def test_saved_weights_round_trip_and_score(trained: torch.nn.Module, tmp_path: Path) -> None:
    clip.save_clip(trained, tmp_path)
    assert (tmp_path / "SHA256SUMS").is_file()
    loaded = clip.ToyWorldCLIP(weights=tmp_path)
    fp = loaded.fingerprint()
    assert fp["name"] == "toyworld-clip" and len(fp["weights_sha256"]) == 64
    images = torch.rand(3, 3, 32, 32)
    prompts = ["zorb on a dark background, left", "a red star on a light background, right",
               "a blue ring, center, dark background"]
    scores = loaded.score(images, prompts)
    assert scores.shape == (3,) and (scores >= 0).all() and (scores <= 100).all()
    with torch.no_grad():
        want = trained.encode_image(images * 2 - 1, normalize=True)
    torch.testing.assert_close(loaded.embed_images(images), want)
    assert loaded.embed_texts(prompts).shape == (3, clip.EMBED_DIM)
    with pytest.raises(ValueError):
        loaded.score(images, prompts[:2])


def test_tampered_weights_fail_their_sha256(trained: torch.nn.Module, tmp_path: Path) -> None:
    path = clip.save_clip(trained, tmp_path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CulbenchError, match="sha256"):
        clip.ToyWorldCLIP(weights=tmp_path)


def test_missing_weights_raise_a_culbench_error(tmp_path: Path) -> None:
    with pytest.raises(CulbenchError, match="missing"):
        clip.ToyWorldCLIP(weights=tmp_path)
