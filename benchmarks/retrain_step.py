"""Where `retrain`'s time goes, and what would shorten it: one training step of the ToyWorld UNet
(batch 128, frozen text encoder, AdamW, EMA: the body of ``toyworld.train.train_unet``) timed
as the recipe runs it and under three speed-ups, side by side in one process.

    python benchmarks/retrain_step.py [--threads 2] [--repeats 5] [--steps 4] [--compile]

Variants: ``fp32`` (the recipe), ``channels_last`` (memory layout only), ``bf16`` (CPU autocast:
changes the recipe's arithmetic) and, with ``--compile``, ``compile`` (``torch.compile`` of the
UNet; its compile time is printed apart). Rounds interleave the variants so machine drift hits
all alike; each round times ``--steps`` training steps. Prints the median per step (min, max),
the split of a step's time and each variant's speed-up over fp32. Data are random latents: the
step's cost does not depend on them.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import time
from typing import Any

import torch

PHASES = ("batch", "forward", "backward", "optimiser", "ema")


class Trainer:
    """One variant's UNet, optimiser and EMA, stepping as ``train_unet`` does."""

    def __init__(self, variant: str, parts: dict[str, Any], latents: torch.Tensor, ids: torch.Tensor) -> None:
        torch.manual_seed(0)
        self.unet = copy.deepcopy(parts["unet"]).train()
        self.text, self.sched = parts["text_encoder"], parts["scheduler"]
        self.latents, self.ids = latents, ids
        self.channels_last = variant == "channels_last"
        if self.channels_last:
            self.unet = self.unet.to(memory_format=torch.channels_last)
        self.params = list(self.unet.parameters())
        self.opt = torch.optim.AdamW(self.params, lr=1e-3, weight_decay=1e-2)
        self.ema = copy.deepcopy(self.unet).requires_grad_(False)
        self.forward = torch.compile(self.unet) if variant == "compile" else self.unet
        self.autocast = variant == "bf16"
        self.gen = torch.Generator().manual_seed(1)

    def step(self, batch: int = 128) -> list[float]:
        marks = [time.perf_counter()]
        idx = torch.randint(len(self.latents), (batch,), generator=self.gen)
        x0, ids = self.latents[idx], self.ids[idx]
        noise = torch.randn(x0.shape, generator=self.gen)
        t = torch.randint(0, self.sched.config.num_train_timesteps, (batch,), generator=self.gen)
        x_t, target = self.sched.add_noise(x0, noise, t), self.sched.get_velocity(x0, noise, t)
        if self.channels_last:
            x_t = x_t.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            emb = self.text(ids)[0]
        marks.append(time.perf_counter())
        cast = torch.autocast("cpu", dtype=torch.bfloat16) if self.autocast else contextlib.nullcontext()
        with cast:
            pred = self.forward(x_t, t, encoder_hidden_states=emb).sample
        loss = torch.nn.functional.mse_loss(pred.float(), target)
        marks.append(time.perf_counter())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        marks.append(time.perf_counter())
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        marks.append(time.perf_counter())
        with torch.no_grad():
            for p_ema, p in zip(self.ema.parameters(), self.unet.parameters()):
                p_ema.lerp_(p, 1e-3)
        marks.append(time.perf_counter())
        return [b - a for a, b in zip(marks, marks[1:])]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="rounds (each times --steps steps per variant)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (compiles for ~1-2 min)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from culbench.toyworld import model as tw

    torch.manual_seed(0)
    parts = tw.build_parts(8)
    parts["text_encoder"].eval().requires_grad_(False)
    latents = torch.randn(4096, 8, 8, 8)
    ids = parts["tokenizer"](["a red star on a blue background"] * len(latents), padding="max_length",
                             max_length=tw.MAX_TOKENS, truncation=True, return_tensors="pt").input_ids
    variants = ["fp32", "channels_last", "bf16"] + (["compile"] if args.compile else [])
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch 128, "
          f"{args.repeats} rounds × {args.steps} steps per variant")
    trainers = {}
    for name in variants:
        start = time.perf_counter()
        trainers[name] = Trainer(name, parts, latents, ids)
        trainers[name].step()  # warm-up (compiles the compiled variant)
        trainers[name].step()
        if name == "compile":
            print(f"compile + 2 warm-up steps: {time.perf_counter() - start:.0f} s")
    per_step: dict[str, list[float]] = {name: [] for name in variants}
    phases: dict[str, list[list[float]]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name in variants:
            rows = [trainers[name].step() for _ in range(args.steps)]
            per_step[name].append(sum(map(sum, rows)) / args.steps)
            phases[name].extend(rows)
    base = statistics.median(per_step["fp32"])
    print(f"{'variant':14s} {'ms/step':>8s} {'(min, max)':>14s} {'speed-up':>9s}   " + " ".join(f"{p:>9s}" for p in PHASES))
    for name in variants:
        med = statistics.median(per_step[name])
        split = [statistics.median(col) * 1000 for col in zip(*phases[name])]
        print(f"{name:14s} {med * 1000:8.0f} ({min(per_step[name]) * 1000:5.0f}, {max(per_step[name]) * 1000:5.0f}) "
              f"{base / med:8.2f}×   " + " ".join(f"{v:9.0f}" for v in split))
    print(f"fp32 at this speed: {base * 10_000 / 60:.0f} min of training per retrain request (10,000 steps)")


if __name__ == "__main__":
    main()
