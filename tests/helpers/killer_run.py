"""Run a method that changes weights and state each step and SIGKILLs itself once at step 2.

Usage: python killer_run.py OUT MARKER  — if MARKER does not exist, the process creates it
and kills itself with SIGKILL in the middle of step 2's unlearning.
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

out, marker = Path(sys.argv[1]), Path(sys.argv[2])


@register_method("killer")
class Killer(Method):
    """Adds seeded noise to the cross-attention weights; dies once at step 2."""

    @dataclass(frozen=True)
    class Config:
        scale: float = 0.5  # noise scale

    def unlearn(self, model, request, ctx):
        model = model.clone()
        gen = ctx.generator()
        with torch.no_grad():
            for p in model.parameters("xattn"):
                p.add_(self.config.scale * torch.randn(p.shape, generator=gen))
        # state carried across steps must survive the kill
        ctx.state["drift"] = ctx.state.get("drift", torch.zeros(())) + 1.0
        if ctx.step == 2 and not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return model


print(run("killer", sequence="mock", profile="smoke", out=out, threads=2))
