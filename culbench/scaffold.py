"""``culbench new-method NAME``: a plugin package that already runs and passes the contract."""

from __future__ import annotations

import re
from pathlib import Path

from culbench.errors import ConfigError

_PYPROJECT = '''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "culbench-{dist}"
version = "0.1.0"
description = "The {name} continual-unlearning method for culbench"
dependencies = ["culbench"]

[project.entry-points."culbench.methods"]
{name} = "{module}.method:{cls}"

[tool.setuptools]
packages = ["{module}"]
'''

_METHOD = '''"""{cls}: <one line on what the method does>.

Paper: <authors, title, venue, arXiv id>. Reference code: <repository URL> at commit <hash>.
Re-implemented from the paper; <say whether any code was copied and under which licence>.

Per deletion request, starting from the previous step's model:
<the objective, the trained parameter group, what is frozen>.

Deviations from the reference (each one, with the reason):
1. <e.g. prompts come from the sequence's train split instead of ...>
2. Hyperparameters were chosen on the sequence's *validation* prompts (never the eval prompts).
"""

from __future__ import annotations

# A method file imports culbench.api, culbench.training (the public training helpers) and
# culbench.closed_form (the closed-form cross-attention edits), the standard library and
# third-party libraries (torch, diffusers, numpy), and nothing else from culbench; a method tied to
# one backend (it declares backends) may also import that backend's package, culbench.<backend>
# (retrain: culbench.toyworld).
from dataclasses import dataclass
from typing import Literal

import torch.nn.functional as F

from culbench.api import Method, StepContext, T2IModel, UnlearnRequest, register_method
from culbench.training import Trainer, denoising_loss, noised, pick, sample_bank


@register_method("{name}")
class {cls}(Method):
    """{cls}: steer forget prompts to their mapped prompts, replay retained concepts."""

    @dataclass(frozen=True)
    class Config:
        lr: float = 1e-4                 # AdamW learning rate
        iterations: int = 40             # optimiser steps per request
        batch_size: int = 16
        retain_weight: float = 1.0       # weight of the replay term
        bank: int = 64                   # generated images per side per request
        param_group: Literal["full", "xattn", "xattn_kv", "non_xattn"] = "xattn"

    trains = ("full", "xattn", "xattn_kv", "non_xattn")  # the contract checks only param_group moves

    def unlearn(self, model: T2IModel, request: UnlearnRequest, ctx: StepContext) -> T2IModel:
        cfg = self.config
        rng = ctx.rng()
        gen = ctx.generator()
        size = ctx.budget.samples(cfg.bank)
        forget = [pair.prompt for pair in request.forget]
        mapped = {{pair.prompt: pair.mapped for pair in request.forget}}
        retain = request.retain_prompts("all") or forget
        f_prompts, f_bank = sample_bank(model, forget, size, rng, ctx.sample_seed(0), steps=10)
        r_prompts, r_bank = sample_bank(model, retain, size, rng, ctx.sample_seed(1), steps=10)
        trainer = Trainer(model, cfg.param_group, ctx, lr=cfg.lr, iterations=cfg.iterations,
                          description=f"{name}: forgetting {{request.concept.id}}")
        student = trainer.student
        batch = min(cfg.batch_size, size)
        for _ in trainer.iterations():
            fi, ri = pick(rng, size, batch), pick(rng, size, batch)
            x_t, t, _ = noised(student, f_bank[fi], student.num_train_timesteps, gen)
            target = model.predict(x_t, t, model.encode([mapped[f_prompts[i]] for i in fi])).detach()
            loss = F.mse_loss(student.predict(x_t, t, student.encode([f_prompts[i] for i in fi])), target)
            loss = loss + cfg.retain_weight * denoising_loss(student, r_bank[ri], [r_prompts[i] for i in ri], gen)
            trainer.step(loss, grad_clip=1.0)
        return trainer.finish()
'''

_TEST = '''"""The culbench method contract (`culbench check-method {name}` runs the same checks)."""

from culbench.contract import run_contract


def test_{module}_passes_the_contract() -> None:
    failed = [f"{{c.name}}: {{c.detail}}" for c in run_contract("{name}") if not c.ok]
    assert not failed, failed
'''

_README = '''# culbench-{dist}

The `{name}` method for culbench continual-unlearning benchmarks.

```bash
pip install -e .                      # registers the `{name}` method (entry point culbench.methods)
culbench check-method {name}          # the method contract, seconds
culbench run --method {name} --profile smoke      # the whole toy10 loop, quickly
culbench run --method {name} --profile standard --seed 0   # leaderboard setting; then seeds 1, 2
culbench submit results/toy10@1/{name}/standard/seed* --out submission/
python -m pytest tests/
```

Fill in the docstring of `{module}/method.py` (paper, reference code and commit, deviations)
before submitting; choose hyperparameters on validation prompts only.
'''


def scaffold(name: str, parent: Path) -> Path:
    """Write the plugin package for method ``name`` into ``parent/culbench-<name>``."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ConfigError(f"bad method name '{name}'", "use lowercase letters, digits and _ (e.g. my_method)")
    from culbench.catalog import METHODS

    if name in METHODS.names():
        raise ConfigError(f"a method called '{name}' is already registered", "pick another name")
    dist = name.replace("_", "-")
    module = f"culbench_{name}"
    cls = "".join(part.capitalize() for part in name.split("_")) or "MyMethod"
    root = parent / f"culbench-{dist}"
    if root.exists():
        raise ConfigError(f"{root} already exists", "remove it or choose another --out")
    fields = {"name": name, "dist": dist, "module": module, "cls": cls}
    files = {"pyproject.toml": _PYPROJECT, f"{module}/__init__.py": '"""culbench plugin: the {name} method."""\n',
             f"{module}/method.py": _METHOD, f"tests/test_{module}.py": _TEST, "README.md": _README}
    for relative, template in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**fields), encoding="utf-8")
    return root
