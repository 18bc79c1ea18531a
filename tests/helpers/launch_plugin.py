"""Methods for the launcher tests, installed as a plugin (the ``culbench.methods`` entry points of a
``.dist-info`` folder on ``PYTHONPATH``) so that Ray workers and submitit's processes find them.

* ``stall``: seeded noise on the cross-attention each step (its steps depend on each other). With
  ``CULBENCH_TEST_STALL=FILE`` set and FILE absent, step 1 of seed 0 writes its process id to FILE
  and waits there (to be killed); with FILE present, or the variable unset, it never waits.
* ``scratch``: trains from scratch (a fresh cross-attention from the run seed and step), so a
  launcher runs each of its steps as a job.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from culbench.api import Method

STALL = "CULBENCH_TEST_STALL"


class Stall(Method):
    """Adds seeded noise to the cross-attention weights; waits once at step 1 of seed 0."""

    @dataclass(frozen=True)
    class Config:
        scale: float = 0.5  # noise scale

    def unlearn(self, model, request, ctx):  # noqa: ANN001, ANN201
        model = model.clone()
        with torch.no_grad():
            for p in model.parameters("xattn"):
                p.add_(self.config.scale * torch.randn(p.shape, generator=ctx.generator()))
        marker = os.environ.get(STALL)
        if marker and ctx.step == 1 and ctx.run_seed == 0 and not Path(marker).exists():
            Path(marker).write_text(str(os.getpid()))
            time.sleep(300)  # the test kills this process long before
        return model


class Scratch(Method):
    """A fresh cross-attention drawn from the run seed and step (the weights handed in are ignored)."""

    @dataclass(frozen=True)
    class Config:
        scale: float = 0.1  # noise scale

    from_scratch = True

    def unlearn(self, model, request, ctx):  # noqa: ANN001, ANN201
        fresh, base = ctx.base_model(), ctx.base_model()
        gen = torch.Generator().manual_seed(ctx.run_seed * 100 + ctx.step)
        with torch.no_grad():
            for p, b in zip(fresh.parameters("xattn"), base.parameters("xattn"), strict=True):
                p.copy_(b + self.config.scale * torch.randn(p.shape, generator=gen))
        return fresh
