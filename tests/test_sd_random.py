"""``culbench sd make-random-model``: SD v1.5's configuration with random weights and CLIP's real tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli


def test_the_tokenizer_is_clips(tmp_path: Path) -> None:
    from open_clip.tokenizer import SimpleTokenizer
    from transformers import CLIPTokenizer

    from culbench.models.sd_random import clip_tokenizer_files

    vocab, merges = clip_tokenizer_files(tmp_path)
    ours, theirs = CLIPTokenizer(str(vocab), str(merges)), SimpleTokenizer()
    assert len(ours) == 49408
    for text in ("a photo of an apple", "Pikachu in Van Gogh's style, oil on canvas", "a red checkered zorb!"):
        assert ours(text).input_ids[1:-1] == theirs.encode(text)


def test_full_size_is_sd15s_parameter_count() -> None:
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from culbench.models.sd_random import TEXT, UNET, VAE, _as_lists

    with torch.device("meta"):  # shapes only: nothing allocated
        unet = UNet2DConditionModel(**_as_lists(UNET["full"]))
        text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, max_position_embeddings=77, **TEXT["full"]))
        vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, **_as_lists(VAE["full"]))
    counts = [sum(p.numel() for p in m.parameters()) for m in (unet, text, vae)]
    assert counts == [859_520_964, 123_060_480, 83_653_863]  # SD v1.5's UNet, CLIP ViT-L/14 text, VAE


def test_make_random_model_writes_a_folder_the_sd_backend_loads(tmp_path: Path) -> None:
    folder = tmp_path / "sd"
    done = run_cli("sd", "make-random-model", str(folder), "--size", "tiny")
    assert done.returncode == 0, done.stderr
    from culbench.models.sd import build_sd_model

    model = build_sd_model(model=str(folder), sample_steps=2)
    assert model.tokenizer("an apple").input_ids == [49406, 550, 3055, 49407]
    again = run_cli("sd", "make-random-model", str(folder), "--size", "tiny")
    assert again.returncode != 0 and "exists and is not empty" in again.stderr


@pytest.mark.slow
def test_a_full_size_random_model_plans_a_dfr10_run(tmp_path: Path) -> None:
    folder = tmp_path / "sd15"
    assert run_cli("sd", "make-random-model", str(folder), timeout=1800).returncode == 0
    plan = run_cli("run", "--method", "uce", "--sequence", "dfr10-sd15", "--model", str(folder), "--profile", "smoke",
                   "--dry-run", "--threads", "2", timeout=1800)
    assert plan.returncode == 0, plan.stderr
