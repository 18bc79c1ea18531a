"""The on-disk result of one run, written atomically, and its validation.

Layout of a run directory (one method × sequence@version × profile × seed)::

    manifest.json          provenance and status (schema: MANIFEST_FIELDS)
    steps/00/step.json     the base model's evaluation (schema: STEP_FIELDS)
    steps/00/samples.jsonl one line per judged image
    steps/00/features.npy  judge features per image (FID), when the judge has features()
    steps/KK/...           after request KK, plus model.safetensors and state.pt
    reference.npy          judge features of the real reference images (FID vs real)
    matrix.csv             step,concept,role,presence,n,ci_low,ci_high (long format)
    summary.json           the presence matrix and stream metrics (schema: SUMMARY_FIELDS)

A step directory is written under a temporary name and renamed into place only when every
expected image was judged, so a directory named ``steps/KK`` is always complete.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from culbench.errors import RunError

SCHEMA_VERSION = 1

MANIFEST_FIELDS: dict[str, str] = {
    "schema_version": "int: version of this layout; bumped on incompatible change",
    "run_id": "str: <sequence>@<version>/<method>[+<config hash>]/<profile>/seed<seed>",
    "status": "str: running | partial | complete",
    "culbench_version": "str: the culbench release that produced the run",
    "git_hash": "str | null: commit of the culbench source tree, if it is a git checkout",
    "git_dirty": "bool | null: the checkout had uncommitted changes",
    "created": "str: ISO-8601 UTC time the run started",
    "updated": "str: ISO-8601 UTC time of the last committed step",
    "argv": "list[str]: the command line that started (or resumed) the run",
    "identity": "dict: everything that must match for a rerun to resume this run (below)",
    "identity.sequence": "dict: id (name@version), content_hash (sha256 of its files)",
    "identity.method": "dict: name, source (builtin | plugin dist==version), config, config_hash",
    "identity.profile": "dict: the evaluation/compute profile",
    "identity.seed": "int: run seed (method randomness; eval noise is fixed by the sequence)",
    "identity.mode": "str: sequential (the benchmark) | independent | simultaneous (reference rows from the base model)",
    "identity.model": "dict: backend, options, base_sha256 (UNet weights of step 0)",
    "identity.evaluators": "list[dict]: fingerprint of every evaluator (name, impl, weights)",
    "device": "str: torch device the run used",
    "threads": "int: torch CPU threads",
    "env": "dict: python, platform and package versions",
    "steps_total": "int: number of requests in the sequence",
    "steps_committed": "list[int]: committed steps, 0 = base model",
    "compute": "dict[str, dict]: per step, unlearn/eval seconds and peak memory (MiB); eval.cached = true "
               "when the evaluation was reused from <out>/.cache/eval (its seconds and memory are the original's); "
               "unlearn.carried_seconds: the part of a step resumed from its snapshot that earlier processes "
               "spent (included in its seconds); unlearn.settings: the switches that change a step's arithmetic "
               "set when it ran (provenance.SETTINGS, e.g. CULBENCH_CUDA_GRAPH)",
}

STEP_FIELDS: dict[str, str] = {
    "schema_version": "int",
    "step": "int: 0 = base model, k = after request k",
    "concept": "str | null: concept forgotten at this step",
    "status": "str: always 'complete' (incomplete steps are never written)",
    "model_sha256": "str: UNet weights after this step",
    "cells": "dict[concept, {role, presence, n, n_expected, ci_low, ci_high}]",
    "files": "dict[name, sha256] of the other files in the step directory",
}

SUMMARY_FIELDS: dict[str, str] = {
    "schema_version": "int",
    "run_id": "str",
    "sequence": "str: name@version",
    "method": "str",
    "mode": "str: sequential | independent | simultaneous",
    "split": "str: eval (the benchmark) | val (tuning on validation prompts; never ranked)",
    "judge": "str | null: the judge used instead of the sequence's own (--judge), else null",
    "config_hash": "str: sha256 of the method's resolved config",
    "seed": "int",
    "profile": "str",
    "concepts": "list[str]: matrix columns",
    "roles": "dict[concept, role]",
    "forget_order": "list[str]: concept forgotten at steps 1..T",
    "presence": "list[list[float]]: P[k][c], rows = steps 0..T",
    "n": "list[list[int]]: images behind each P[k][c]",
    "metrics": "dict[name, list[float] | float]: stream metrics computed from P (see "
               "culbench.evaluation.stream); per-step lists start at step 1 for UA, at step 0 "
               "for retention and collateral damage; re-emergence has one value per concept "
               "forgotten at steps 1..T-1",
    "metrics_ci": "dict[name, list[[low, high]]]: 95 % bootstrap intervals over each "
                  "concept's prompt x seed images (paired across steps), aligned with metrics",
    "quality": "dict: per step 0..T — fid_retained_vs_base / _vs_real (FID in the judge's "
               "feature space on retained concepts' images), clip_retained / clip_forgotten "
               "(mean CLIP score), drift_from_base / drift_from_previous (L2 of UNet weights)",
    "quality_ci": "dict[name, list[[low, high]]]: bootstrap intervals of quality values",
    "compute": "dict: unlearn seconds per request (and median), eval median, peak memory (MB)",
    "evaluators": "list[dict]: fingerprints of the judge, CLIP scorer and reference set",
}


# -- atomic writes -----------------------------------------------------------------------
def variant_label(method: str, mode: str = "sequential", split: str = "eval", judge: str | None = None) -> str:
    """``method`` with a ``~suffix`` for each way a run departs from the benchmark setting.

    >>> variant_label("esd"), variant_label("esd", "independent", "val", "vlm-yesno")
    ('esd', 'esd~independent~val~vlm-yesno')
    """
    suffixes = (mode if mode != "sequential" else None, split if split != "eval" else None, judge)
    return "".join([method, *(f"~{s}" for s in suffixes if s)])


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and ``os.replace`` (never half-written)."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path: Path, data: bytes) -> None:
    """Write through a temporary file, fsync and ``os.replace`` (never half-written)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{path} does not exist", "is this a culbench run directory?") from None
    except json.JSONDecodeError as exc:
        raise RunError(f"{path} is corrupt ({exc.msg} at line {exc.lineno})",
                       "delete the run directory and rerun") from None


def step_dir(run_dir: Path, step: int) -> Path:
    return run_dir / "steps" / f"{step:02d}"


def commit_step(run_dir: Path, step: int, record: dict[str, Any], files: dict[str, bytes | Path]) -> None:
    """Write a step directory atomically: temp dir, fsync'd files, then rename."""
    final = step_dir(run_dir, step)
    tmp = final.with_name(f".tmp-{step:02d}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    hashes = {}
    for name, content in files.items():
        target = tmp / name
        if isinstance(content, Path):
            shutil.move(str(content), target)
        else:
            target.write_bytes(content)
        hashes[name] = sha256_file(target)
    write_json(tmp / "step.json", {**record, "files": hashes, "schema_version": SCHEMA_VERSION})
    if final.exists():  # a stale copy from an identical earlier attempt
        shutil.rmtree(final)
    os.replace(tmp, final)


WEIGHTS = "model.safetensors"  # a step's UNet (a delta from the base model)
SNAPSHOTS = "snapshots"  # run_dir/snapshots/KK.pt: mid-step snapshots, deleted when the step commits


def snapshot_path(run_dir: Path, step: int) -> Path:
    """A step's mid-step snapshot (``StepContext.save_snapshot``), deleted when the step commits."""
    return run_dir / SNAPSHOTS / f"{step:02d}.pt"


def run_progress(root: Path) -> list[dict[str, Any]]:
    """Every run under ``root`` from its manifest: status, steps done of total, compute spent and,
    while unfinished, the time left at the committed requests' mean (``culbench ls runs``)."""
    import time

    rows = []
    for path in sorted(root.rglob("manifest.json")):
        if {".cache", "damaged"} & set(path.relative_to(root).parts):
            continue
        run = str(path.parent.relative_to(root))
        try:
            manifest = read_json(path)
        except RunError as exc:
            rows.append({"run": run, "status": "unreadable", "note": exc.args[0]})
            continue
        compute = manifest.get("compute", {})
        spent = {int(k): sum(part.get("seconds", 0.0) for part in v.values()) for k, v in compute.items()}
        done, total = manifest.get("steps_committed", []), manifest.get("steps_total", 0)
        requests = [seconds for k, seconds in spent.items() if k > 0]
        ahead = sorted(k for k in spent if k > max(done, default=-1))  # computed alone (`--step`), past a gap
        left = total - max(done, default=0) - len([k for k in ahead if k > 0])  # requests to go
        row = {"run": run, "status": manifest.get("status", "?"), "steps": f"{len(done)}/{total + 1}",
               "seconds": sum(spent.values()), "updated": manifest.get("updated", "")}
        if manifest.get("status") != "complete" and requests and 0 < left:
            row["seconds_left"] = sum(requests) / len(requests) * left
        snapshots = sorted((path.parent / SNAPSHOTS).glob("*.pt"))
        if snapshots:
            age = time.time() - snapshots[-1].stat().st_mtime
            row["note"] = f"step {int(snapshots[-1].stem)} in progress, snapshot saved {age / 60:.0f} min ago"
        if ahead:
            row["note"] = "; ".join(filter(None, [row.get("note"), f"steps {', '.join(map(str, ahead))} "
                                                  "computed ahead (counted once the steps before them are)"]))
        rows.append(row)
    return rows


def committed_steps(run_dir: Path) -> list[int]:
    """Steps 0..k that are committed without a gap; removes leftover temp directories."""
    steps_root = run_dir / "steps"
    if not steps_root.is_dir():
        return []
    for leftover in steps_root.glob(".tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    done = []
    while (step_dir(run_dir, len(done)) / "step.json").is_file():
        done.append(len(done))
    return done


def file_problems(folder: Path, files: dict[str, str], may_lack: tuple[str, ...] = ()) -> list[str]:
    """``NAME is missing`` / ``NAME does not match its sha256`` for each listed file that is;
    files named in ``may_lack`` may be absent (a from-scratch method's weights)."""
    problems = []
    for name, digest in files.items():
        if not (folder / name).exists():
            if name not in may_lack:
                problems.append(f"{name} is missing")
        elif sha256_file(folder / name) != digest:
            problems.append(f"{name} does not match its sha256")
    return problems


def _keeps_no_files(listed: list[tuple[Path, dict[str, str]]]) -> bool:
    """Steps ``(folder, files)`` list files but keep none of them: a records-only run."""
    return any(files for _, files in listed) and \
        not any((folder / name).exists() for folder, files in listed for name in files)


def records_only(run_dir: Path, steps: list[int] | None = None) -> bool:
    """A published run that keeps its records (step.json, matrix, summary) but none of the step
    files they hash (weights, per-image records, features): ``leaderboard/results`` keeps these."""
    steps = committed_steps(run_dir) if steps is None else steps
    return _keeps_no_files([(step_dir(run_dir, k), read_json(step_dir(run_dir, k) / "step.json").get("files", {}))
                            for k in steps])


def first_damaged_step(run_dir: Path, steps: list[int], may_lack: tuple[str, ...] = ()) -> tuple[int, str] | None:
    """The first committed step whose files are missing or fail their sha256, with the reason.

    ``None`` when every step is intact, and for a records-only run (the published form in
    ``leaderboard/results``), which is complete by design. Files named in ``may_lack`` may be
    absent (a from-scratch method's weights); when present they must still match.
    """
    listed = []
    for k in steps:
        try:
            listed.append((step_dir(run_dir, k), read_json(step_dir(run_dir, k) / "step.json").get("files", {})))
        except RunError:
            return k, "step.json is corrupt"
    if _keeps_no_files(listed):
        return None
    for k, (folder, files) in zip(steps, listed, strict=True):
        problems = file_problems(folder, files, may_lack)
        if problems:
            return k, problems[0]
    return None


def set_aside(run_dir: Path, first: int, steps: list[int], stamp: str) -> Path:
    """Move committed steps ``first..`` (and the summary they gave) to ``run_dir/damaged/<stamp>/``,
    kept, never deleted; ``matrix.csv`` is rewritten for the steps that remain."""
    dest = run_dir / "damaged" / stamp.replace(":", "")
    dest.mkdir(parents=True, exist_ok=True)
    if (run_dir / "summary.json").exists():
        os.replace(run_dir / "summary.json", dest / "summary.json")
    for k in reversed([k for k in steps if k >= first]):  # last first: a crash leaves a gap-free prefix
        os.replace(step_dir(run_dir, k), dest / f"{k:02d}")
    write_text(run_dir / "matrix.csv", matrix_csv(run_dir, list(range(first))))
    return dest


def repair_derived(run_dir: Path, steps: list[int], manifest: dict[str, Any], order: list[str]) -> list[str]:
    """Rewrite ``matrix.csv`` when it differs from the step files and ``summary.json`` when it is
    missing or unreadable (both are derived from the steps); return the names rewritten."""
    fixed = []
    text = matrix_csv(run_dir, steps)
    matrix = run_dir / "matrix.csv"
    if not matrix.exists() or matrix.read_text() != text:
        write_text(matrix, text)
        fixed.append("matrix.csv")
    try:
        read_json(run_dir / "summary.json")
    except RunError:
        write_json(run_dir / "summary.json", build_summary(run_dir, manifest, order))
        fixed.append("summary.json")
    return fixed


def samples_jsonl(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode()


# -- matrix and summary ------------------------------------------------------------------
def load_matrix(run_dir: Path, steps: list[int]) -> tuple[list[str], dict[str, str], np.ndarray, np.ndarray]:
    """Concept order, roles, presence ``P`` and counts ``N`` from committed step files."""
    records = [read_json(step_dir(run_dir, k) / "step.json") for k in steps]
    concepts = list(records[0]["cells"])
    roles = {c: records[0]["cells"][c]["role"] for c in concepts}
    P = np.array([[r["cells"][c]["presence"] for c in concepts] for r in records], dtype=float)
    N = np.array([[r["cells"][c]["n"] for c in concepts] for r in records], dtype=int)
    return concepts, roles, P, N


def matrix_csv(run_dir: Path, steps: list[int]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["step", "concept", "role", "presence", "n", "ci_low", "ci_high"])
    for k in steps:
        cells = read_json(step_dir(run_dir, k) / "step.json")["cells"]
        for concept, cell in cells.items():
            writer.writerow([k, concept, cell["role"], f"{cell['presence']:.6f}", cell["n"],
                             f"{cell['ci_low']:.6f}", f"{cell['ci_high']:.6f}"])
    return out.getvalue()


def build_summary(run_dir: Path, manifest: dict[str, Any], forget_order: list[str]) -> dict[str, Any]:
    """The summary of a complete run, computed only from its committed step files."""
    from culbench.evaluation.summary import summarise

    steps = committed_steps(run_dir)
    concepts, roles, _, N = load_matrix(run_dir, steps)
    identity = manifest["identity"]
    profile = identity["profile"]
    result = summarise(run_dir, steps, concepts, roles, forget_order,
                       replicates=profile.get("bootstrap", 1000), fid_replicates=profile.get("fid_bootstrap", 0),
                       seed=identity["seed"])
    compute = manifest.get("compute", {})
    unlearn = [compute[str(k)]["unlearn"] for k in steps[1:] if "unlearn" in compute.get(str(k), {})]
    evals = [compute[str(k)]["eval"] for k in steps if "eval" in compute.get(str(k), {})]
    seconds = [u["seconds"] for u in unlearn]
    devices = sorted({m.get("device", manifest.get("device")) for m in unlearn + evals} - {None})
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": manifest["run_id"],
        "sequence": identity["sequence"]["id"],
        "method": identity["method"]["name"],
        "mode": identity.get("mode", "sequential"),
        "split": identity.get("split", "eval"),
        "judge": identity.get("judge"),
        "config_hash": identity["method"]["config_hash"],
        "seed": identity["seed"],
        "profile": profile["name"],
        "concepts": concepts,
        "roles": roles,
        "forget_order": forget_order,
        "presence": [[round(float(v), 6) for v in row] for row in result["P"]],
        "n": N.tolist(),
        "metrics": result["metrics"],
        "metrics_ci": result["ci"],
        "quality": result["quality"],
        "quality_ci": result["quality_ci"],
        "compute": {
            "unlearn_seconds": seconds,
            "unlearn_seconds_median": round(float(np.median(seconds)), 3) if seconds else None,
            "eval_seconds_median": round(float(np.median([e["seconds"] for e in evals])), 3) if evals else None,
            "peak_rss_mb": max((m["peak_rss_mb"] for m in unlearn + evals), default=None),
            "peak_cuda_mb": max((m["peak_cuda_mb"] for m in unlearn + evals if m.get("peak_cuda_mb")), default=None),
            **({"devices": devices} if len(devices) > 1 else {}),  # steps computed on other machines
        },
        "evaluators": identity["evaluators"],
    }
