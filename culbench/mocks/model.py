"""A tiny *random* text-to-image model built from the same diffusers parts as Stable Diffusion.

Follows the diffusers test recipe (tiny ``UNet2DConditionModel`` with cross-attention, a
2-layer ``CLIPTextModel``, a seed before each component). Its samples mean nothing; it
exists to run the loop, the method contract and the tests in seconds.
"""

from __future__ import annotations

from typing import Any

import torch

from culbench.models.diffusers_t2i import DiffusersT2I
from culbench.models.performance import Performance
from culbench.models.tokenizer import word_tokenizer

MOCK_WORDS = (
    "a an the of in on at with and photo picture drawing image painting shape "
    "red orange pink blue green yellow purple brown star cross circle square ring triangle "
    "left right center top bottom small big dark light background"
).split()


def build_mock_model(
    *, device: str = "cpu", sample_size: int = 8, seed: int = 0, sample_steps: int = 4,
    guidance: float = 1.0, **switches: Any,
) -> DiffusersT2I:
    """The mock model; identical weights for the same seed and torch version.

    Args:
        device: torch device string.
        sample_size: side of the (pixel-space, 3-channel) images.
        seed: weight initialisation seed.
        sample_steps: default DDIM steps.
        guidance: default guidance scale.
    """
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = word_tokenizer(MOCK_WORDS, max_length=12)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=4,
        norm_num_groups=4,
    )
    torch.manual_seed(seed + 1)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=tokenizer.model_max_length,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    scheduler = DDPMScheduler(
        num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="epsilon"
    )
    model = DiffusersT2I(
        unet, text_encoder, tokenizer, scheduler, device=device,
        sample_steps=sample_steps, guidance=guidance,
    )
    model.backend = "mock"
    return model.set_performance(Performance.parse(switches))
