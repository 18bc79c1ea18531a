"""Shared artefacts: what a method computes once and reuses across the runs of one results root
(``StepContext.shared``): the retrain oracle's prior model, trained once without every concept a
sequence forgets and fine-tuned from at each step.

Entries live in ``<results root>/.cache/shared/<method>/<key>.pt``, written atomically; a key
names everything its payload depends on (the method hashes its recipe into it). ``locked(key)``
serialises processes that would compute the same entry (``culbench run --step K`` fan-outs), so
it is computed once; the others wait and load it.

Some entries ship with culbench (``culbench/published/<method>/<key>.pt``, each listed with its
sha256 in that folder's ``SHA256SUMS``): an entry missing from the results root is read from
there, so a results root never recomputes what was published (the toy10@2 oracle's prior).
"""

from __future__ import annotations

import fcntl
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from culbench.errors import RunError
from culbench.runfolder.atomic import sha256_file, write_bytes

_KEY = re.compile(r"^[A-Za-z0-9._-]{1,120}$")
PUBLISHED = Path(__file__).resolve().parent.parent / "published"
SUMS = "SHA256SUMS"


class SharedStore:
    """File-backed ``load`` / ``save`` / ``discard`` / ``locked`` of payloads by key (torch
    pickles of tensors, numbers, strings, lists and dicts, as ``StepContext.state``); ``published``:
    a read-only folder of shipped entries that ``load`` falls back to."""

    def __init__(self, root: Path, published: Path | None = None) -> None:
        self.root = Path(root)
        self.published = published

    def path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise RunError(f"shared artefact key '{key}' is not a plain file name",
                           "use letters, digits, '.', '_' and '-' (hash long keys)")
        return self.root / f"{key}.pt"

    def load(self, key: str) -> Any:
        """The payload saved under ``key``, or ``None`` (none saved, or unreadable: then it is
        moved aside as ``<key>.pt.damaged`` and computed anew)."""
        import torch

        path = self.path(key)
        if not path.is_file():
            return self._published(key)
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - any unreadable entry is recomputed, never trusted
            path.replace(path.with_name(path.name + ".damaged"))
            return None

    def _published(self, key: str) -> Any:
        """The shipped entry ``key`` after its sha256 check, or ``None`` where none ships."""
        import torch

        if self.published is None or not (self.published / f"{key}.pt").is_file():
            return None
        path = self.published / f"{key}.pt"
        sums = self.published / SUMS
        pairs = (line.split() for line in (sums.read_text().splitlines() if sums.is_file() else []) if line.strip())
        listed = {name: digest for digest, name in pairs}
        if listed.get(path.name) != sha256_file(path):
            raise RunError(f"published artefact {path} is not the one listed in {sums}",
                           "reinstall culbench (shipped files are never edited by hand)")
        return torch.load(path, map_location="cpu", weights_only=True)

    def save(self, key: str, payload: Any) -> None:
        import torch

        buffer = io.BytesIO()
        torch.save(payload, buffer)
        self.root.mkdir(parents=True, exist_ok=True)
        write_bytes(self.path(key), buffer.getvalue())

    def discard(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    @contextmanager
    def locked(self, key: str) -> Iterator[None]:
        """An exclusive lock on ``key`` for the block (other processes wait)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self.path(key).with_suffix(".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
