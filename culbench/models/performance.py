"""Speed and memory switches of a :class:`~culbench.models.diffusers_t2i.DiffusersT2I` model.

They are backend options (``--model-option KEY=VALUE``, every backend), so they are part of a run's
identity in its manifest, and each step's compute record holds the switches in force
(:meth:`Performance.record`):

* ``autocast=off|bfloat16|float16``: UNet forwards made without gradients (sampling and every
  frozen teacher's prediction) run under ``torch.autocast`` in that dtype; trained forwards stay
  float32. Changes the arithmetic (``benchmarks/sd_cost.py`` measures by how much).
* ``attention=sdpa|classic``: PyTorch's fused scaled-dot-product attention (diffusers'
  ``AttnProcessor2_0``, the default) or the explicit softmax(QKᵀ)V (``AttnProcessor``).
* ``grad_checkpointing=true``: the trained UNet recomputes activations in the backward pass
  instead of storing them (diffusers' gradient checkpointing): less memory, about a third more time.
* ``optimizer=adamw|adamw8bit``: :class:`culbench.training.Trainer`'s optimiser; ``adamw8bit`` is
  bitsandbytes' block-wise 8-bit AdamW (``pip install -e ".[perf]"``): its two moments take a
  quarter of the memory, the update is approximate.
* ``compile=true``: no-gradient UNet forwards go through ``torch.compile`` (compiled once per
  process and shape; pays on long evaluations on a GPU, costs compile time on short runs).

>>> Performance.parse({"autocast": "bfloat16", "grad_checkpointing": True}).record()["autocast"]
'bfloat16'
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from culbench.errors import ConfigError

CHOICES = {"autocast": ("off", "bfloat16", "float16"), "attention": ("sdpa", "classic"),
           "optimizer": ("adamw", "adamw8bit")}
FLAGS = ("grad_checkpointing", "compile")


@dataclass(frozen=True)
class Performance:
    """The switches; the defaults are culbench's plain float32 eager path."""

    autocast: str = "off"
    attention: str = "sdpa"
    grad_checkpointing: bool = False
    optimizer: str = "adamw"
    compile: bool = False

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> Performance:
        """The switches named in ``options`` (other keys are ignored); a bad value is a one-line error."""
        chosen: dict[str, Any] = {}
        for key, allowed in CHOICES.items():
            if key in options:
                value = str(options[key])
                if value not in allowed:
                    raise ConfigError(f"--model-option {key}={value} is not a choice",
                                      f"use {key}=" + " or ".join(allowed))
                chosen[key] = value
        for key in FLAGS:
            if key in options:
                chosen[key] = _flag(key, options[key])
        if chosen.get("optimizer") == "adamw8bit":
            _bitsandbytes()
        return cls(**chosen)

    def dtype(self) -> Any:
        """The autocast dtype, or ``None`` when off."""
        import torch

        return None if self.autocast == "off" else getattr(torch, self.autocast)

    @contextlib.contextmanager
    def inference(self, device: str) -> Iterator[None]:
        """Autocast for a no-gradient forward on ``device`` (a no-op when off)."""
        import torch

        if self.dtype() is None or torch.is_grad_enabled():
            yield
            return
        with torch.autocast(device_type=device.split(":")[0], dtype=self.dtype()):
            yield

    def record(self, **effective: Any) -> dict[str, Any]:
        """The switches, plus what the model reports as in effect (``effective``)."""
        return {**asdict(self), **effective}


def _flag(key: str, value: Any) -> bool:
    from culbench.config import _FALSE, _TRUE  # the words a method's bool setting takes

    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in _TRUE | _FALSE:
        return text in _TRUE
    raise ConfigError(f"--model-option {key}={value} is not true or false", f"use {key}=true or {key}=false")


def _bitsandbytes() -> Any:
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError("optimizer=adamw8bit needs bitsandbytes, which is not installed",
                          'pip install -e ".[perf]" (or drop --model-option optimizer=adamw8bit)')
    import bitsandbytes

    return bitsandbytes


def adamw8bit(params: Any, *, lr: float, weight_decay: float) -> Any:
    """bitsandbytes' 8-bit AdamW over ``params``."""
    return _bitsandbytes().optim.AdamW8bit(params, lr=lr, weight_decay=weight_decay)


def check_options(backend: str, builder: Any, options: Mapping[str, Any]) -> None:
    """Raise a one-line error for an option that neither ``builder`` nor :class:`Performance` takes,
    or for a switch with a bad value (a plugin builder with ``**options`` is trusted with the rest)."""
    import inspect

    Performance.parse(options)
    params = inspect.signature(builder).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()) and not builder.__module__.startswith("culbench."):
        return  # a plugin builder taking **options: only it knows which it uses
    known = {n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)} - {"device"}
    known |= set(Performance.keys())
    for key in options:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ConfigError(f"the {backend} backend has no option '{key}'",
                              f"{hint}its options: {', '.join(sorted(known))}")
