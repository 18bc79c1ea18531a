"""Evaluation cache: a model's evaluation, addressed by the sha256 of its weights.

Evaluation noise is fixed by the sequence (each image's seed is part of the plan), so two
evaluations of bit-identical weights under the same plan, sampler, evaluators, code and
device are the same computation. Step 0 (the base model) is therefore identical for every
method and run seed, and a step whose weights did not change (``original``) equals the step
before it. The runner stores the base model's evaluation here (the one every run repeats) and reads it
instead of sampling again; a step that left the weights unchanged reuses the previous step's
evaluation in memory. The step records ``"cached": true`` beside the seconds the evaluation
took when it was computed. (Storing every step would cost ~0.7 MB per toy10 checkpoint for
evaluations that, weights being unique per run and step, are never read again.)

The key covers everything the result depends on: the weights' sha256, the model backend and
its options, the device, the torch version, every planned image (concept, prompt, seed), the
sampler, the batch size, every evaluator's fingerprint, and the sha256 of the source files
that sample, judge and featurise. Entries are verified against their stored hashes on read; a
damaged entry is deleted and recomputed. Threads are not in the key: a different CPU thread
count may change the last bits of a float, and either result is an equally valid evaluation.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from culbench.tasks import EvalItem

ENTRY = "entry.json"


def _source_sha(objects: Iterable[Any]) -> list[str]:
    """sha256 of the source of each module given and of every class behind each object."""
    files: set[str] = set()
    for obj in objects:
        targets = [obj] if inspect.ismodule(obj) else [c for c in type(obj).__mro__ if c is not object]
        for target in targets:
            try:
                path = inspect.getsourcefile(target)
            except TypeError:  # built-in
                continue
            if path and os.path.isfile(path):
                files.add(path)
    return sorted(hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in files)  # content, not location


@dataclass(frozen=True)
class Hit:
    """A cached evaluation: cells, the step files it produced, and its original compute."""

    cells: dict[str, dict[str, Any]]
    files: dict[str, bytes]
    compute: dict[str, Any]


class EvalCache:
    """Content-addressed store of evaluations under ``root`` (``<out>/.cache/eval``)."""

    def __init__(self, root: Path, *, items: Sequence[EvalItem], sampler: dict[str, Any],
                 model: Any, backend: dict[str, Any], device: str, evaluators: Sequence[Any],
                 code: Iterable[Any]) -> None:
        import torch

        self.root = Path(root)
        self._context = {
            "items": [[i.concept, i.prompt, i.seed] for i in items],
            "sampler": sampler,
            "backend": backend,
            "device": str(device),
            "torch": torch.__version__,
            "evaluators": [e.fingerprint() for e in evaluators],
            "code": _source_sha([model, *evaluators, *code]),
        }

    def key(self, weights_sha256: str) -> str:
        blob = json.dumps({**self._context, "weights": weights_sha256}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def load(self, key: str) -> Hit | None:
        """The entry for ``key``, or None (absent or damaged; a damaged one is removed)."""
        folder = self.root / key
        if not (folder / ENTRY).is_file():
            return None
        try:
            entry = json.loads((folder / ENTRY).read_text())
            files = {}
            for name, digest in entry["files"].items():
                data = (folder / name).read_bytes()
                if hashlib.sha256(data).hexdigest() != digest:
                    raise ValueError(f"{name} does not match its hash")
                files[name] = data
            return Hit(entry["cells"], files, entry["compute"])
        except (OSError, ValueError, KeyError, TypeError):
            shutil.rmtree(folder, ignore_errors=True)
            return None

    def store(self, key: str, cells: dict[str, dict[str, Any]], files: dict[str, bytes],
              compute: dict[str, Any]) -> None:
        """Write an entry atomically (temp folder, then rename); a concurrent writer's copy wins."""
        folder = self.root / key
        if (folder / ENTRY).is_file():
            return
        tmp = self.root / f".{key}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        entry = {"cells": cells, "compute": compute,
                 "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}}
        (tmp / ENTRY).write_text(json.dumps(entry, sort_keys=True))
        if folder.exists():  # a damaged entry without its entry.json
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process stored the same key first
            shutil.rmtree(tmp, ignore_errors=True)
