"""Run a method whose step is a loop that snapshots itself, and SIGKILL it once mid-step 2.

Usage: python snapshot_run.py OUT MARKER LOG — if MARKER does not exist, the process creates it
and kills itself after the second of step 2's four iterations. Each iteration appends
"step:iteration" to LOG, so a test sees where a resumed step started.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from culbench.api import Method, register_method
from culbench.runner import run

out, marker, log = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])


@register_method("looper")
class Looper(Method):
    """Four seeded noise updates of the cross-attention weights per step, snapshotted after each."""

    @dataclass(frozen=True)
    class Config:
        scale: float = 0.5  # noise scale

    def unlearn(self, model, request, ctx):
        model = model.clone()
        params = list(model.parameters("xattn"))
        gen = ctx.generator()
        first = 0
        saved = ctx.load_snapshot()
        if saved is not None:
            with torch.no_grad():
                for p, value in zip(params, saved["weights"], strict=True):
                    p.copy_(value)
            gen.set_state(saved["generator"])
            first = saved["iteration"]
        for i in range(first, 4):
            with torch.no_grad():
                for p in params:
                    p.add_(self.config.scale * torch.randn(p.shape, generator=gen))
            with log.open("a") as handle:
                handle.write(f"{ctx.step}:{i}\n")
            ctx.save_snapshot({"iteration": i + 1, "generator": gen.get_state(),
                               "weights": [p.detach().clone() for p in params]})
            if ctx.step == 2 and i == 1 and not marker.exists():
                marker.touch()
                os.kill(os.getpid(), signal.SIGKILL)
        return model


print(run("looper", sequence="mock", profile="smoke", out=out, threads=2))
