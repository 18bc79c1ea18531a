"""A randomly initialised Stable Diffusion v1.5-configured diffusers folder, written offline.

No SD weights can be fetched on culbench's machines, but cost, memory and numerics do not
depend on trained weights: a random model with SD v1.5's exact configuration — the 860 M-parameter
UNet, the CLIP ViT-L/14 text encoder with CLIP's real 49,408-token BPE tokenizer (rebuilt from the
vocabulary open_clip ships), the VAE and the scheduler — exercises the whole ``--model PATH`` path
at real size (``culbench sd make-random-model``). ``size="tiny"`` writes the same layout and the
same tokenizer at a few MB, for tests.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

#: SD v1.5's ``unet/config.json`` values that differ from diffusers' defaults, and the tiny variant's.
UNET = {"full": {"sample_size": 64, "cross_attention_dim": 768, "attention_head_dim": 8},
        "tiny": {"sample_size": 8, "cross_attention_dim": 32, "attention_head_dim": 4, "block_out_channels": (8, 16),
                 "layers_per_block": 1, "norm_num_groups": 4,
                 "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
                 "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D")}}
#: CLIP ViT-L/14's text tower (SD v1.x's text encoder), and the tiny variant's.
TEXT = {"full": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
                 "projection_dim": 768, "hidden_act": "quick_gelu"},
        "tiny": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                 "projection_dim": 32, "hidden_act": "quick_gelu"}}
#: SD v1.5's VAE, and the tiny variant's.
VAE = {"full": {"block_out_channels": (128, 256, 512, 512), "layers_per_block": 2, "sample_size": 512,
                "down_block_types": ("DownEncoderBlock2D",) * 4, "up_block_types": ("UpDecoderBlock2D",) * 4},
       "tiny": {"block_out_channels": (8, 16), "layers_per_block": 1, "sample_size": 16, "norm_num_groups": 4,
                "down_block_types": ("DownEncoderBlock2D",) * 2, "up_block_types": ("UpDecoderBlock2D",) * 2}}


def clip_tokenizer_files(folder: Path) -> tuple[Path, Path]:
    """CLIP's BPE tokenizer as ``vocab.json`` and ``merges.txt`` (the files ``CLIPTokenizer`` reads),
    rebuilt from open_clip's ``bpe_simple_vocab_16e6.txt.gz``: the 256 byte symbols, the same with
    ``</w>``, one token per merge (the first 48,894), then the start and end tokens: 49,408 ids."""
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    with gzip.open(default_bpe()) as handle:
        lines = handle.read().decode("utf-8").split("\n")
    merges = lines[1: 49152 - 256 - 2 + 1]
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merge_file = folder / "vocab.json", folder / "merges.txt"
    vocab.write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False), encoding="utf-8")
    merge_file.write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return vocab, merge_file


def write_random_sd(folder: Path, *, size: str = "full", seed: int = 0) -> Path:
    """Write a random SD v1.5-configured diffusers folder (``size``: ``full`` or ``tiny``) to ``folder``."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    from culbench.errors import CulbenchError

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()

    if size not in UNET:
        raise CulbenchError(f"unknown size '{size}'", "use --size full (SD v1.5) or tiny")
    folder = Path(folder)
    vocab, merges = clip_tokenizer_files(folder / "_bpe")
    tokenizer = CLIPTokenizer(str(vocab), str(merges), model_max_length=77)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**_as_lists(UNET[size]))
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, **_as_lists(VAE[size]))
    torch.manual_seed(seed + 2)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer), max_position_embeddings=77, bos_token_id=49406,
                                        eos_token_id=49407, pad_token_id=1, **TEXT[size]))
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              num_train_timesteps=1000, skip_prk_steps=True, steps_offset=1, set_alpha_to_one=False)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(str(folder))
    for leftover in (vocab, merges):
        leftover.unlink()
    (folder / "_bpe").rmdir()
    return folder


def _as_lists(config: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}
