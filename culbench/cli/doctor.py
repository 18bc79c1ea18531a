"""``culbench doctor``: what this machine can run, and what to fix before a long run."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass

from culbench.cli.console import console, styled

EXAMPLES = """Examples:

  culbench doctor            # before the first run on a new machine, or when a run fails oddly
"""


@dataclass
class Finding:
    check: str
    ok: bool
    detail: str
    required: bool = True


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return ""


def _torch_info() -> str:
    import torch

    cuda = f"CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s)" if torch.cuda.is_available() \
        else "no GPU visible (ToyWorld runs on CPU; SD needs --device cuda)"
    return f"torch {torch.__version__}, {os.cpu_count()} CPU cores, {cuda}"


def _assets() -> str:
    from culbench.toyworld.assets import ASSETS_DIR, asset_path, expected_sums

    names = sorted(expected_sums())
    if not names:
        raise RuntimeError(f"no SHA256SUMS in {ASSETS_DIR}; fix: reinstall culbench")
    for name in names:
        asset_path(name)
    return f"{len(names)} files match SHA256SUMS ({ASSETS_DIR})"


def _methods() -> str:
    from culbench.catalog import METHODS
    from culbench.errors import CulbenchError

    names, broken = METHODS.names(), []
    for name in names:  # import each: a plugin that fails to load is a finding, not an ok
        try:
            METHODS.get(name)
        except CulbenchError as exc:
            broken.append(exc.args[0])
    if broken:
        raise RuntimeError(f"{len(broken)} of {len(names)} methods fail to load: {'; '.join(broken)}; "
                           "fix: repair or uninstall the package that provides them")
    return f"{len(names)} methods load: {', '.join(names)}"


def _tasks() -> str:
    from culbench.catalog import SEQUENCES
    from culbench.tasks import resolve_sequence

    names = [e.name for e in SEQUENCES.entries()]
    for name in names:
        resolve_sequence(name)
    return f"{len(names)} sequences load: {', '.join(names)}"


def _evaluators() -> str:
    missing = [p for p in ("open_clip_torch", "clean-fid", "timm") if not _version(p)]
    if missing:
        raise RuntimeError(f"missing {', '.join(missing)}; fix: pip install -e .")
    return ", ".join(f"{p} {_version(p)}" for p in ("open_clip_torch", "clean-fid", "timm", "diffusers", "transformers"))


def _offline() -> str:
    flag = os.environ.get("HF_HUB_OFFLINE", "")
    return ("HF_HUB_OFFLINE=1: hub ids must already be cached" if flag in ("1", "true")
            else "HF_HUB_OFFLINE unset: SD hub ids are fetched only with --model-option allow_download=true")


def _inception() -> str:
    from culbench.evaluation.inception import find_weights

    return f"found {find_weights(None)} (for --fid inception)"


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise RuntimeError("not found (only the HTML leaderboard test needs it); fix: apt-get install chromium")
    return found


def _vlm_extra() -> str:
    if not _version("accelerate"):
        raise RuntimeError("not installed (only --judge vlm-yesno needs it); fix: pip install -e '.[vlm]'")
    return f"accelerate {_version('accelerate')}"


def _launcher_extras() -> str:
    found = {name: _version(name) for name in ("ray", "submitit")}
    missing = [name for name, version in found.items() if not version]
    if missing:
        extras = {"ray": "ray", "submitit": "slurm"}
        raise RuntimeError(f"{', '.join(missing)} not installed (only culbench sweep --launcher "
                           f"{' / '.join(extras[m] for m in missing)} needs it); fix: "
                           + " ".join(f"pip install -e '.[{extras[m]}]'" for m in missing))
    return ", ".join(f"{name} {version}" for name, version in found.items())


def _perf_extra() -> str:
    if not _version("bitsandbytes"):
        raise RuntimeError("not installed (only --model-option optimizer=adamw8bit needs it); "
                           "fix: pip install -e '.[perf]'")
    return f"bitsandbytes {_version('bitsandbytes')}"


#: (name, check, required): each check returns a one-line detail or raises with the fix.
CHECKS: tuple[tuple[str, Callable[[], str], bool], ...] = (
    ("torch", _torch_info, True),
    ("ToyWorld weights", _assets, True),
    ("methods (built-in + plugins)", _methods, True),
    ("task files", _tasks, True),
    ("evaluators", _evaluators, True),
    ("hub access", _offline, False),
    ("Inception weights", _inception, False),
    ("headless Chromium", _chromium, False),
    ("vlm extra (accelerate)", _vlm_extra, False),
    ("launcher extras (ray, submitit)", _launcher_extras, False),
    ("perf extra (bitsandbytes)", _perf_extra, False),
)


def findings() -> list[Finding]:
    """Every check, never raising: a failing check is a finding with its fix."""
    out: list[Finding] = []
    for name, fn, required in CHECKS:
        try:
            out.append(Finding(name, True, fn(), required))
        except Exception as exc:  # noqa: BLE001 - report, never crash
            out.append(Finding(name, False, exc.one_line() if hasattr(exc, "one_line") else str(exc), required))
    return out


def doctor() -> None:
    """Check the install: torch and devices, shipped weights (sha256), methods and plugins, task
    files, evaluators and optional extras. Exits 1 if a required check fails."""
    from rich.table import Table

    from culbench.errors import CulbenchError

    table = Table(title="culbench doctor")
    for column in ("check", "", "detail"):
        table.add_column(column, overflow="fold")
    results = findings()
    for f in results:
        mark = ("ok", "green") if f.ok else (("FAIL", "red") if f.required else ("optional", "yellow"))
        table.add_row(f.check, styled(mark), f.detail)  # the consoles read no markup: '.[vlm]' stays
    console.print(table)
    failed = [f.check for f in results if f.required and not f.ok]
    if failed:
        raise CulbenchError(f"{len(failed)} required check(s) failed: {', '.join(failed)}",
                            "see the detail column above")
