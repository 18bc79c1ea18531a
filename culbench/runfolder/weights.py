"""A step's weights file: the tensors that differ from the base model, in safetensors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from culbench.errors import RunError

_FORMAT = "delta-from-base"


def weights_bytes(state: dict[str, Any], base: dict[str, Any]) -> bytes:
    """The tensors of ``state`` that differ from ``base`` (a cross-attention method on SD stores
    megabytes, not a whole UNet) and any that ``base`` lacks (a replaced text encoder's);
    :func:`load_weights` adds the base back."""
    import torch
    from safetensors.torch import save

    changed = {k: v.contiguous() for k, v in state.items() if k not in base or not torch.equal(v, base[k])}
    # one metadata key: safetensors writes the metadata map in hash order, so two keys would make
    # the bytes (and sha256) of identical weights differ from run to run
    return save(changed, metadata={"culbench": _FORMAT})


def load_weights(path: Path, base: dict[str, Any]) -> dict[str, Any]:
    """A step's full state: its stored tensors over the base model's."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
        stored = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise RunError(f"checkpoint {path} is corrupt ({exc})",
                       f"delete {path.parent} and rerun to redo that step") from None
    if meta.get("culbench") != _FORMAT:
        raise RunError(f"checkpoint {path} is not a culbench step delta",
                       f"delete {path.parent} and rerun to redo that step")
    return {**base, **stored}
