"""Model merging of independently unlearned checkpoints: the ``merged-*`` reference modes.

CUIG (Lee et al., ICLR 2026, arXiv:2511.07970; github.com/justinhylee135/CUIG, ``Regularizers/Merge``,
commit dd2204865147653d73f6c396b272b41b0bc0d40f) compares sequential unlearning with merging
checkpoints each unlearned from the base model alone. In a ``merged-<how>`` run, step k serves
request k from the base model with no history (as ``independent`` does), keeps what that changed
as the step's task vector Δ_k (``task_vector.safetensors``), and evaluates base + merge(Δ_1..Δ_k):

* ``uniform``: the mean of the checkpoints, base + (1/k) Σ Δ_i;
* ``ta`` (task arithmetic): base + λ Σ Δ_i, λ = 1 (CUIG's default);
* ``ties`` (TIES-merging, Yadav et al., NeurIPS 2023): per tensor, each λΔ_i keeps its ``top_k``
  share of largest-magnitude elements, each element's sign is the sign of their sum (a zero sum
  takes the tensor's majority sign), and the elements agreeing with it are averaged; λ 1.75 and
  top-k 0.20, the settings of CUIG's README.

Merging is over every tensor a task vector changed (CUIG filters keys, e.g. to ``attn2``, which
is what a cross-attention method changes anyway). Re-implemented from a reading of CUIG's code;
nothing is copied.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

MERGES = ("uniform", "ta", "ties")
TIES_LAMBDA, TIES_TOP_K, TA_LAMBDA = 1.75, 0.20, 1.0


def how_of(mode: str) -> str | None:
    """The merge a mode names (``"merged-ties"`` -> ``"ties"``), or None for other modes.

    >>> how_of("merged-ties"), how_of("independent")
    ('ties', None)
    """
    return mode.removeprefix("merged-") if mode.startswith("merged-") else None


def task_vector(state: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
    """The tensors of ``state`` that differ from ``base``, minus ``base``."""
    import torch

    return {k: (v - base[k]) for k, v in state.items() if k in base and not torch.equal(v, base[k])}


def merge(how: str, base: Mapping[str, Any], vectors: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``base`` plus the ``how`` merge of task ``vectors`` (a key missing from a vector is a zero there).

    >>> import torch
    >>> base = {"w": torch.zeros(4)}
    >>> tv = [{"w": torch.tensor([1.0, -2.0, 0.0, 4.0])}, {"w": torch.tensor([3.0, 2.0, 0.0, 5.0])}]
    >>> merge("uniform", base, tv)["w"].tolist(), merge("ta", base, tv)["w"].tolist()
    ([2.0, 0.0, 0.0, 4.5], [4.0, 0.0, 0.0, 9.0])
    >>> [round(v, 3) for v in merge("ties", base, tv)["w"].tolist()]  # each keeps its largest: 1.75·(4+5)/2
    [0.0, 0.0, 0.0, 7.875]
    """
    import torch

    merged = dict(base)
    keys = sorted({k for v in vectors for k in v})
    for key in keys:
        stack = torch.stack([v[key] if key in v else torch.zeros_like(base[key]) for v in vectors]).float()
        if how == "uniform":
            delta = stack.mean(dim=0)
        elif how == "ta":
            delta = TA_LAMBDA * stack.sum(dim=0)
        elif how == "ties":
            delta = ties(stack.flatten(1) * TIES_LAMBDA, TIES_TOP_K).view_as(base[key])
        else:
            raise ValueError(f"unknown merge '{how}'")
        merged[key] = (base[key].float() + delta).to(base[key].dtype)
    return merged


def ties(rows: Any, top_k: float) -> Any:
    """TIES on ``(tasks, elements)`` rows: trim each row to its top-``top_k`` magnitudes, elect a
    sign per element, average the elements that agree with it (CUIG's ``apply_ties``, mean).

    >>> import torch
    >>> ties(torch.tensor([[1.0, -3.0], [2.0, 1.0]]), 1.0).tolist()  # signs: +, -
    [1.5, -3.0]
    """
    import torch

    kept = torch.zeros_like(rows)
    for i, row in enumerate(rows):
        k = int(row.numel() * top_k)  # as the reference: fewer than one element still keeps the largest
        if k >= row.numel():
            kept[i] = row
        else:
            threshold = row.abs().kthvalue(row.numel() - k).values
            kept[i] = row * (row.abs() >= threshold)
    sign = torch.sign(kept.sum(dim=0))
    sign[sign == 0] = torch.sign(sign.sum())
    agree = torch.where(sign > 0, kept > 0, kept < 0)
    chosen = kept * agree
    return chosen.sum(dim=0) / agree.sum(dim=0).clamp(min=1)


class TaskVectors:
    """A ``merged-*`` run's task vectors, step by step: read back from committed steps on resume."""

    def __init__(self, how: str) -> None:
        if how not in MERGES:
            raise ValueError(f"unknown merge '{how}'")
        self.how = how
        self.vectors: dict[int, dict[str, Any]] = {}

    def load(self, run_dir: Any, steps: Sequence[int], base: Mapping[str, Any]) -> None:
        """The task vectors of committed ``steps`` (≥ 1) from their ``task_vector.safetensors``."""
        from culbench import runfolder as rf

        for k in steps:
            if k > 0:
                state = rf.load_weights(rf.step_dir(run_dir, k) / rf.TASK_VECTOR, dict(base))
                self.vectors[k] = task_vector(state, base)

    def add(self, step: int, state: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
        """Record step ``step``'s unlearned ``state``; the merge of steps 1..``step``."""
        self.vectors[step] = task_vector(state, base)
        return merge(self.how, base, [self.vectors[k] for k in range(1, step + 1)])
