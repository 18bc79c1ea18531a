"""The ToyWorld judge: a small CNN with one head per attribute, trained on renders.

Its penultimate features (128-d) are also the feature extractor for ToyWorld FID.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from culbench.api import Concept
from culbench.evaluation.judge import Judge, JudgeOutput
from culbench.toyworld import render as tw

HEADS: dict[str, tuple[str, ...]] = {
    "object": tw.OBJECTS,
    "colour": tw.COLOURS,
    "pattern": tw.PATTERNS,
    "character": ("none", *tw.CHARACTERS),
    "background": tw.BACKGROUNDS,
    "position": tw.POSITIONS,
}
WEIGHTS_FILE = "judge.safetensors"


class JudgeNet(nn.Module):
    """Conv(32)×2 → pool → Conv(64)×2 → pool → Conv(128) → global average → 128-d features."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]

        self.features = nn.Sequential(
            *block(3, width), *block(width, width), nn.MaxPool2d(2),
            *block(width, 2 * width), *block(2 * width, 2 * width), nn.MaxPool2d(2),
            *block(2 * width, 4 * width), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.heads = nn.ModuleDict({name: nn.Linear(4 * width, len(labels))
                                    for name, labels in HEADS.items()})

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Features ``(B, 128)`` of images ``(B, 3, H, W)`` in [0, 1]."""
        return self.features(images * 2 - 1)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.embed(images)
        return {name: head(feats) for name, head in self.heads.items()}


def label_indices(scene: tw.Scene) -> list[int]:
    labels = scene.labels()
    return [HEADS[name].index(labels[name]) for name in HEADS]


def render_batch(scenes: Sequence[tw.Scene], rng: np.random.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(N, 3, 32, 32)`` in [0, 1] (jittered when ``rng`` is given) and labels ``(N, heads)``."""
    images = np.stack([tw.render(s, 32, rng) for s in scenes]).astype(np.float32) / 255.0
    labels = np.array([label_indices(s) for s in scenes], dtype=np.int64)
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels)


def _augment(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mild noise and blur so the judge reads imperfect samples the way it reads renders."""
    noise = torch.randn(images.shape, generator=gen) * 0.03
    blur = nn.functional.avg_pool2d(images, 3, stride=1, padding=1, count_include_pad=False)
    mix = (torch.rand(images.shape[0], 1, 1, 1, generator=gen) < 0.3).float() * 0.5
    return (images * (1 - mix) + blur * mix + noise).clamp(0, 1)


def train_judge(
    *, seed: int = 0, n_train: int = 40_000, epochs: int = 4, batch_size: int = 128,
    lr: float = 2e-3, log: Callable[[str], None] = lambda m: None,
) -> JudgeNet:
    """Train the judge on jittered renders (deterministic for a seed and thread count)."""
    from culbench.toyworld.data import sample_scenes

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    scenes = sample_scenes(n_train, seed=seed)
    images, labels = render_batch(scenes, np.random.default_rng(seed))
    net = JudgeNet()
    steps = epochs * math.ceil(n_train / batch_size)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss()
    start, step = time.perf_counter(), 0
    for epoch in range(epochs):
        order = torch.randperm(n_train, generator=gen)
        net.train()
        for i in range(0, n_train, batch_size):
            idx = order[i : i + batch_size]
            out = net(_augment(images[idx], gen))
            loss = sum(loss_fn(out[name], labels[idx, h]) for h, name in enumerate(HEADS))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
        log(f"judge epoch {epoch + 1}/{epochs}: loss {loss.item():.4f} "
            f"({time.perf_counter() - start:.0f} s)")
    return net.eval()


@torch.no_grad()
def head_accuracy(net: JudgeNet, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Per-head accuracy of ``net`` on labelled images."""
    net.eval()
    correct = torch.zeros(len(HEADS))
    for i in range(0, len(images), 512):
        out = net(images[i : i + 512])
        for h, name in enumerate(HEADS):
            correct[h] += (out[name].argmax(1) == labels[i : i + 512, h]).sum()
    return {name: float(correct[h] / len(images)) for h, name in enumerate(HEADS)}


class ToyWorldJudge(Judge):
    """Judge for ToyWorld sequences: image i shows concept c if the head of c's kind predicts c.

    Concept kinds map to heads (``object``, ``colour``, ``pattern``, ``character``,
    ``background``, ``position``); concept ids are the head labels.
    """

    name = "toyworld"

    def __init__(self, *, device: str = "cpu", weights: str | None = None, **_: Any) -> None:
        """Load the shipped judge, or the one in ``weights`` (a folder laid out like assets/)."""
        from pathlib import Path

        from culbench.toyworld import assets

        folder = Path(weights) if weights else assets.ASSETS_DIR
        self.device = device
        self.sha256 = assets.sha256(assets.asset_path(WEIGHTS_FILE, folder))
        self.net = JudgeNet()
        self.net.load_state_dict(assets.load_tensors(WEIGHTS_FILE, folder))
        self.net.to(device).eval()
        # (images, features) of the last judged batch: the evaluation asks for the FID features
        # of the very images it just judged, and the conv trunk is most of the judge's cost
        self._last: tuple[torch.Tensor, int, torch.Tensor] | None = None

    def fingerprint(self) -> dict[str, Any]:
        return {"name": self.name, "impl": f"{__name__}.ToyWorldJudge",
                "weights_sha256": self.sha256, "rule": "argmax of the concept kind's head"}

    @torch.no_grad()
    def logits(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.net.embed(images.to(self.device).float())
        self._last = (images, images._version, feats)  # _version: in-place edits invalidate it
        return {name: head(feats).float().cpu() for name, head in self.net.heads.items()}

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """128-d penultimate features (the ToyWorld FID feature space); the same tensor object
        as the last judged batch reuses that pass (identical values, half the cost)."""
        if self._last is not None and self._last[0] is images and images._version == self._last[1]:
            return self._last[2].cpu()
        return self.net.embed(images.to(self.device).float()).cpu()

    def __call__(self, images: torch.Tensor, concepts: Sequence[Concept]) -> JudgeOutput:
        logits = self.logits(images)
        probs = {name: out.softmax(dim=1) for name, out in logits.items()}
        preds = {name: out.argmax(dim=1).tolist() for name, out in logits.items()}
        present, score, detail = [], [], []
        for i, concept in enumerate(concepts):
            labels = HEADS[concept.kind]
            idx = labels.index(concept.id)
            present.append(preds[concept.kind][i] == idx)
            score.append(float(probs[concept.kind][i, idx]))
            detail.append({name: HEADS[name][preds[name][i]] for name in HEADS})
        return JudgeOutput(present, score, detail)
