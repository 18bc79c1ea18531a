"""Shipped ToyWorld weights: safetensors files in ``assets/``, each checked against SHA256SUMS."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from culbench.errors import CulbenchError

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
SUMS_FILE = "SHA256SUMS"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def expected_sums(folder: Path = ASSETS_DIR) -> dict[str, str]:
    sums = folder / SUMS_FILE
    if not sums.is_file():
        return {}
    pairs = (line.split() for line in sums.read_text().splitlines() if line.strip())
    return {name: digest for digest, name in pairs}


def asset_path(name: str, folder: Path = ASSETS_DIR) -> Path:
    """Path of a shipped asset after checking its sha256; raises a one-line error otherwise."""
    path = folder / name
    if not path.is_file():
        raise CulbenchError(
            f"ToyWorld weights {path} are missing",
            "reinstall culbench, or rebuild them with `culbench toyworld train`",
        )
    want = expected_sums(folder).get(name)
    if want is None:
        raise CulbenchError(f"{name} is not listed in {folder / SUMS_FILE}",
                            "rebuild the assets with `culbench toyworld train`")
    got = sha256(path)
    if got != want:
        raise CulbenchError(
            f"ToyWorld weights {path} fail their sha256 check ({got[:12]}… ≠ {want[:12]}…)",
            "reinstall culbench or rebuild with `culbench toyworld train`; never edit assets by hand",
        )
    return path


def load_tensors(name: str, folder: Path = ASSETS_DIR) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(asset_path(name, folder)))


def load_json(name: str, folder: Path = ASSETS_DIR) -> Any:
    return json.loads(asset_path(name, folder).read_text())


def write_sums(folder: Path = ASSETS_DIR) -> None:
    """Rewrite SHA256SUMS for every file in ``folder`` (used by the training recipe)."""
    lines = [f"{sha256(p)}  {p.name}" for p in sorted(folder.iterdir())
             if p.is_file() and p.name != SUMS_FILE and not p.name.startswith(".")]
    (folder / SUMS_FILE).write_text("\n".join(lines) + "\n")
