"""A tiny open_clip model trained on ToyWorld renders, for a ToyWorld CLIP score.

The model is a stock ``open_clip.model.CLIP`` built from config dataclasses (no hub
config, no download): a ViT with 4-px patches over 32x32 images and a causal text
transformer over culbench's word-level tokenizer (``word_tokenizer(VOCABULARY, 16)``).

Text pooling: open_clip's default ``pool_type="argmax"`` pools the position of the
*largest token id*, which is right for OpenAI's BPE (EOT is the last id) but wrong for
our word vocabulary (BOS=0, EOS=1, words >= 3). We use ``pool_type="eos"`` with
``eos_id`` = our EOS id, which pools the *first* EOS: the real end of the caption, since
padding (also EOS) only follows it. Under the causal mask that token attends to every
word and to no padding, so no pad mask is needed (``pad_id`` is set to EOS anyway).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from culbench.toyworld import render as tw

WEIGHTS_FILE = "clip.safetensors"
CONTEXT_LENGTH = 16  # longest caption is 13 words + BOS + EOS
EMBED_DIM = 64
VISION_CFG: dict[str, Any] = {
    # head_width 32 -> 128 / 32 = 4 heads; 4-px patches keep stripes and dots resolvable.
    "image_size": 32, "patch_size": 4, "width": 128, "head_width": 32, "layers": 4,
}
TEXT_CFG: dict[str, Any] = {"width": 128, "heads": 4, "layers": 3, "pool_type": "eos"}


@functools.lru_cache(maxsize=2)
def clip_tokenizer(version: int = 1):  # -> PreTrainedTokenizerFast
    """The word-level tokenizer of a ToyWorld model version (BOS ... EOS, padded with EOS to 16)."""
    from culbench.models.tokenizer import word_tokenizer
    from culbench.toyworld.data import vocabulary

    return word_tokenizer(vocabulary(version), CONTEXT_LENGTH)


def tokenize(prompts: Sequence[str], version: int = 1) -> torch.Tensor:
    """Token ids ``(N, 16)`` of prompts (unknown words map to UNK; long ones are cut)."""
    return clip_tokenizer(version)(list(prompts), padding="max_length", truncation=True,
                                   max_length=CONTEXT_LENGTH, return_tensors="pt").input_ids


def build_clip(version: int = 1):  # -> open_clip.model.CLIP
    """An untrained ToyWorld CLIP (random init under the current torch seed)."""
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    tok = clip_tokenizer(version)
    text_cfg = CLIPTextCfg(context_length=CONTEXT_LENGTH, vocab_size=len(tok),
                           eos_id=tok.eos_token_id, pad_id=tok.pad_token_id, **TEXT_CFG)
    return CLIP(EMBED_DIM, CLIPVisionCfg(**VISION_CFG), text_cfg)


def _pixels(images: torch.Tensor) -> torch.Tensor:
    """Maps [0, 1] images to the [-1, 1] input range the model is trained on."""
    return images.float() * 2 - 1


def contrastive_loss(model: nn.Module, images: torch.Tensor, tokens: torch.Tensor,
                     scene_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE (as open_clip's ``ClipLoss``) with the model's learnable scale.

    Args:
        model: A CLIP from ``build_clip``.
        images: ``(B, 3, 32, 32)`` in [0, 1].
        tokens: ``(B, 16)`` token ids of the matching captions.
        scene_ids: Optional ``(B,)`` scene ids; other pairs showing the *same* scene are
            masked out of the negatives, since ToyWorld batches often repeat a scene
            (there are only 36 character scenes) and punishing those is label noise.
    """
    img = model.encode_image(_pixels(images), normalize=True)
    txt = model.encode_text(tokens, normalize=True)
    logits = model.logit_scale.exp() * img @ txt.T
    if scene_ids is not None:
        dup = (scene_ids[:, None] == scene_ids[None, :]) & ~torch.eye(
            len(scene_ids), dtype=torch.bool, device=logits.device)
        logits = logits.masked_fill(dup, float("-inf"))
    target = torch.arange(len(images), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def _render(scenes: Sequence[tw.Scene], rng: np.random.Generator) -> torch.Tensor:
    """Jittered renders as uint8 ``(N, 3, 32, 32)`` (uint8 keeps 60k images at 180 MB)."""
    return torch.from_numpy(np.stack([tw.render(s, 32, rng) for s in scenes])).permute(0, 3, 1, 2)


def train_clip(
    *, seed: int = 0, n_images: int = 60_000, steps: int = 300, batch_size: int = 256,
    lr: float = 2e-3, log: Callable[[str], None] = lambda m: None, version: int = 1,
) -> nn.Module:
    """Trains the ToyWorld CLIP contrastively on jittered renders and random captions.

    Deterministic for a seed and thread count. Each step draws a fresh caption template
    per image, so the text tower sees every phrasing of a scene.

    Args:
        seed: Seeds scenes, render jitter, caption templates, init and batch order.
        n_images: Number of distinct renders (reshuffled every pass).
        steps: Optimiser steps (~1.4 s each at batch 256 on one shared core; est. ~0.8 s
            on two idle cores, so the default takes ~4-5 min including rendering).
        batch_size: Images per step (also the number of contrastive negatives + 1).
        lr: Peak AdamW learning rate (linear warmup over 10 %, cosine decay to 0).
        log: Receives a progress line every 50 steps and at the end.
        version: ToyWorld model version (its vocabulary and captions, ``data.caption``).

    Returns:
        The trained model in eval mode.
    """
    from culbench.toyworld.data import caption, sample_scenes

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    render_rng, caption_rng = (np.random.default_rng(s)
                               for s in np.random.SeedSequence(seed).spawn(2))
    scenes = sample_scenes(n_images, seed=seed)
    index: dict[tw.Scene, int] = {}
    scene_ids = torch.tensor([index.setdefault(s, len(index)) for s in scenes])
    images = _render(scenes, render_rng)
    model = build_clip(version)
    # No weight decay on gains, biases, embeddings' positions or the logit scale.
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr)
    warmup = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(
        (s + 1) / warmup, 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))))
    model.train()
    start, order, pos = time.perf_counter(), torch.randperm(n_images, generator=gen), 0
    for step in range(steps):
        if pos + batch_size > n_images and pos > 0:
            order, pos = torch.randperm(n_images, generator=gen), 0
        idx = order[pos : pos + batch_size]
        pos += batch_size
        batch = images[idx].float() / 255
        # Mild noise so scores stay meaningful on (noisy) diffusion samples.
        batch = (batch + 0.03 * torch.randn(batch.shape, generator=gen)).clamp(0, 1)
        tokens = tokenize([caption(scenes[i], caption_rng, version) for i in idx.tolist()], version)
        loss = contrastive_loss(model, batch, tokens, scene_ids[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():  # as open_clip: keep the temperature >= 1/100
            model.logit_scale.clamp_(0, math.log(100))
        if (step + 1) % 50 == 0 or step + 1 == steps:
            log(f"clip step {step + 1}/{steps}: loss {loss.item():.4f} "
                f"scale {model.logit_scale.exp().item():.1f} ({time.perf_counter() - start:.0f} s)")
    return model.eval()


def save_clip(model: nn.Module, folder: str | Path) -> Path:
    """Writes ``clip.safetensors`` into ``folder`` and refreshes its SHA256SUMS."""
    from safetensors.torch import save_file

    from culbench.toyworld import assets

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / WEIGHTS_FILE
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
              str(path))
    assets.write_sums(folder)
    return path


class ToyWorldCLIP:
    """The shipped ToyWorld CLIP: embeddings and torchmetrics-style CLIP scores."""

    name = "toyworld-clip"

    def __init__(self, *, device: str = "cpu", weights: str | Path | None = None,
                 version: int | None = None) -> None:
        """Loads ``clip.safetensors`` from ``weights`` (a folder laid out like assets/, whose
        ``toyworld.json`` gives the model version), else the shipped CLIP of ``version`` (1).

        Raises:
            CulbenchError: If the file is missing or fails its sha256 check.
        """
        from culbench.toyworld import assets
        from culbench.toyworld.model import folder_version, weights_folder

        folder = Path(weights) if weights else weights_folder(version or 1)
        self.version = folder_version(folder) if (folder / "toyworld.json").is_file() else (version or 1)
        self.device = device
        self.sha256 = assets.sha256(assets.asset_path(WEIGHTS_FILE, folder))
        self.model = build_clip(self.version)
        self.model.load_state_dict(assets.load_tensors(WEIGHTS_FILE, folder))
        self.model.to(device).eval()

    def fingerprint(self) -> dict[str, Any]:
        return {"name": self.name, "impl": f"{__name__}.ToyWorldCLIP",
                "weights_sha256": self.sha256}

    @torch.no_grad()
    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        """Unit-norm embeddings ``(B, 64)`` of images ``(B, 3, 32, 32)`` in [0, 1]."""
        return self.model.encode_image(_pixels(images.to(self.device)), normalize=True).cpu()

    @torch.no_grad()
    def embed_texts(self, prompts: Sequence[str]) -> torch.Tensor:
        """Unit-norm embeddings ``(N, 64)`` of prompts."""
        return self.model.encode_text(tokenize(prompts, self.version).to(self.device), normalize=True).cpu()

    def score(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """Per-pair CLIP score ``(B,)``: ``max(100 * cos(image_i, prompt_i), 0)``.

        This is torchmetrics' ``CLIPScore`` definition, without its mean over the batch.
        """
        if len(prompts) != len(images):
            raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
        cos = (self.embed_images(images) * self.embed_texts(prompts)).sum(dim=1)
        return (100 * cos).clamp(min=0)


@torch.no_grad()
def caption_retrieval_accuracy(model: nn.Module | ToyWorldCLIP, n: int = 1000,
                               seed: int = 12_345, version: int = 1) -> float:
    """Top-1 image→caption retrieval accuracy among ``n`` held-out captions.

    Scenes, jitter and templates come from ``seed`` (not the training seed 0). A hit is a
    retrieved caption describing the same scene as the image (scenes repeat, and two
    templates of one scene are equally correct).

    Args:
        model: A CLIP from ``build_clip``/``train_clip`` or a ``ToyWorldCLIP``.
        n: Number of image-caption pairs; every caption is a candidate for every image.
        seed: Seed of the evaluation set.
        version: ToyWorld model version of the captions (a ``ToyWorldCLIP`` knows its own).
    """
    from culbench.toyworld.data import caption, sample_scenes

    net = model.model if isinstance(model, ToyWorldCLIP) else model
    version = model.version if isinstance(model, ToyWorldCLIP) else version
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    render_rng, caption_rng = (np.random.default_rng(s)
                               for s in np.random.SeedSequence(seed).spawn(2))
    scenes = sample_scenes(n, seed=seed)
    images = _render(scenes, render_rng).float().div(255).to(device)
    tokens = tokenize([caption(s, caption_rng, version) for s in scenes], version).to(device)
    img = torch.cat([net.encode_image(_pixels(images[i : i + 500]), normalize=True)
                     for i in range(0, n, 500)])
    txt = torch.cat([net.encode_text(tokens[i : i + 500], normalize=True)
                     for i in range(0, n, 500)])
    best = (img @ txt.T).argmax(dim=1).tolist()
    net.train(was_training)
    return sum(scenes[j] == scenes[i] for i, j in enumerate(best)) / n
