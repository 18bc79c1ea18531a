"""A tiny *random* Stable Diffusion v1.x folder (diffusers layout), built offline for tests.

Same classes and layout as a real SD 1.5 download — UNet2DConditionModel, AutoencoderKL,
CLIPTextModel, a BPE CLIPTokenizer, DDPM/PNDM scheduler config — at a few hundred KB.
"""

from __future__ import annotations

import json
import string
from pathlib import Path


def write_tiny_sd(folder: Path, seed: int = 0) -> Path:
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab_dir = folder / "_vocab"
    vocab_dir.mkdir(exist_ok=True)
    symbols = list(string.ascii_lowercase + string.digits + ",.'-")
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for s in symbols + [s + "</w>" for s in symbols]:
        vocab.setdefault(s, len(vocab))
    (vocab_dir / "vocab.json").write_text(json.dumps(vocab))
    (vocab_dir / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(vocab_dir / "vocab.json"), str(vocab_dir / "merges.txt"), model_max_length=32)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16, attention_head_dim=4, norm_num_groups=4)
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        norm_num_groups=4)
    torch.manual_seed(seed + 2)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32,
                                        num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=32,
                                        bos_token_id=0, eos_token_id=1, pad_token_id=1))
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              num_train_timesteps=1000, clip_sample=False, steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(str(folder))
    return folder


def write_tiny_clip(folder: Path) -> tuple[Path, Path]:
    """A tiny open_clip architecture (``tiny-clip-test``, default BPE tokenizer) and random weights."""
    import open_clip
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "tiny-clip-test.json"
    config.write_text(json.dumps({
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }))
    open_clip.add_model_config(str(config))
    torch.manual_seed(0)
    model = open_clip.create_model("tiny-clip-test")
    weights = folder / "tiny-clip-test.pt"
    torch.save(model.state_dict(), weights)
    return config, weights
