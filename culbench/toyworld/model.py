"""The ToyWorld text-to-image model: SD's parts (AutoencoderKL, UNet2DConditionModel with
cross-attention, CLIPTextModel, DDPM/DDIM) at toy size, 32 px images ↔ 8×8 latents."""

from __future__ import annotations

from typing import Any

import torch

from culbench.models.diffusers_t2i import DiffusersT2I
from culbench.models.performance import Performance
from culbench.models.tokenizer import word_tokenizer

IMAGE_SIZE = 32
MAX_TOKENS = 16

VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 8,
    "down_block_types": ["DownEncoderBlock2D"] * 3, "up_block_types": ["UpDecoderBlock2D"] * 3,
    "block_out_channels": [32, 64, 64], "layers_per_block": 1, "norm_num_groups": 16,
    "sample_size": IMAGE_SIZE, "scaling_factor": 1.0,
}
UNET_CONFIG: dict[str, Any] = {
    # one cross-attention level (4x4) plus the cross-attention mid block (speed: benchmarks/toyworld_speed.py)
    "sample_size": 8, "in_channels": 8, "out_channels": 8,
    "block_out_channels": [64, 128], "layers_per_block": 1,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
    "cross_attention_dim": 64, "attention_head_dim": 8, "norm_num_groups": 16,
}
TEXT_CONFIG: dict[str, Any] = {
    "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
    "num_attention_heads": 4, "max_position_embeddings": MAX_TOKENS,
}
SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2",
    "prediction_type": "v_prediction", "clip_sample": False,
}


def tokenizer(version: int = 1) -> Any:
    """The word-level tokenizer of a ToyWorld model version (``data.vocabulary``)."""
    from culbench.toyworld.data import vocabulary

    return word_tokenizer(vocabulary(version), max_length=MAX_TOKENS)


def weights_folder(version: int = 1) -> Any:
    """Where the shipped weights of a ToyWorld model version live (version 1: ``assets/``)."""
    from culbench.toyworld import assets
    from culbench.toyworld.lexicon import check_version

    return assets.ASSETS_DIR if check_version(version) == 1 else assets.ASSETS_DIR / f"v{version}"


def folder_version(folder: Any) -> int:
    """The model version a weights folder declares in its ``toyworld.json`` (absent: 1)."""
    from culbench.toyworld import assets

    return int(assets.load_json("toyworld.json", folder).get("model_version", 1))


def build_parts(latent_channels: int | None = None, version: int = 1) -> dict[str, Any]:
    """Freshly initialised parts (seed torch first for reproducible weights)."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tok = tokenizer(version)
    vae_cfg = dict(VAE_CONFIG)
    unet_cfg = dict(UNET_CONFIG)
    if latent_channels is not None:
        vae_cfg["latent_channels"] = unet_cfg["in_channels"] = unet_cfg["out_channels"] = latent_channels
    text = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id, **TEXT_CONFIG))
    return {
        "vae": AutoencoderKL(**vae_cfg),
        "unet": UNet2DConditionModel(**unet_cfg),
        "text_encoder": text,
        "tokenizer": tok,
        "scheduler": DDPMScheduler(**SCHEDULER_CONFIG),
    }


def build_toyworld_model(
    *, device: str = "cpu", weights: str | None = None, sample_steps: int = 20,
    guidance: float = 1.0, batch_size: int = 64, version: int | None = None, **switches: Any,
) -> DiffusersT2I:
    """The shipped ToyWorld model of ``version`` (default 1), or the one in ``weights`` (a folder
    like ``assets/``, whose ``toyworld.json`` says which version it is)."""
    from pathlib import Path

    from culbench.errors import ConfigError
    from culbench.toyworld import assets

    folder = Path(weights) if weights else weights_folder(version or 1)
    meta = assets.load_json("toyworld.json", folder)
    found = int(meta.get("model_version", 1))
    if version is not None and found != version:
        raise ConfigError(f"the ToyWorld weights in {folder} are model version {found}, not {version}",
                          f"pass weights of version {version} or drop the version option")
    parts = build_parts(meta["latent_channels"], found)
    parts["vae"].register_to_config(scaling_factor=meta["scaling_factor"])
    for name in ("vae", "unet", "text_encoder"):
        parts[name].load_state_dict(assets.load_tensors(f"{name}.safetensors", folder))
    model = DiffusersT2I(
        parts["unet"], parts["text_encoder"], parts["tokenizer"], parts["scheduler"], parts["vae"],
        device=device, sample_steps=sample_steps, guidance=guidance, batch_size=batch_size,
    )
    model.backend = "toyworld"
    model.toyworld_version = found  # the retrain oracle trains this version's text encoder
    return model.set_performance(Performance.parse(switches))


def to_pixels(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] images → [-1, 1] VAE input."""
    return images * 2 - 1
