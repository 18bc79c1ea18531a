"""Where a result came from: versions, git commit, time."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("torch", "diffusers", "transformers", "numpy", "open_clip_torch", "clean-fid", "torchmetrics")
# environment switches that change a step's arithmetic (not just its speed or its log), recorded with
# each step computed under them
CUDA_GRAPH = "CULBENCH_CUDA_GRAPH"  # "1": ToyWorld's UNet training step runs as CUDA graphs (toyworld.train)
SETTINGS = (CUDA_GRAPH,)


def culbench_version() -> str:
    try:
        return metadata.version("culbench")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def settings() -> dict[str, str]:
    """The ``SETTINGS`` set in this process's environment, by name."""
    return {name: os.environ[name] for name in SETTINGS if os.environ.get(name)}


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def git_state() -> tuple[str | None, bool | None]:
    """(commit, dirty) of the source tree culbench is imported from, or (None, None). A copy of
    the tree without ``.git`` (shipped to a GPU machine) names its commit in ``CULBENCH_GIT_HASH``
    (dirty then unknown)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return os.environ.get("CULBENCH_GIT_HASH") or None, None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"],
                              capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        return head or None, bool(dirty)
    except (OSError, subprocess.SubprocessError):
        return None, None


def environment() -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    import torch

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
