"""The on-disk result of one run, written atomically, and its validation.

Layout of a run directory (one method × sequence@version × profile × seed)::

    manifest.json          provenance and status (schema: MANIFEST_FIELDS)
    steps/00/step.json     the base model's evaluation (schema: STEP_FIELDS)
    steps/00/samples.jsonl one line per judged image
    steps/KK/...           after request KK, plus model.safetensors and state.pt
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
    "identity.model": "dict: backend, options, base_sha256 (UNet weights of step 0)",
    "identity.evaluators": "list[dict]: fingerprint of every evaluator (name, impl, weights)",
    "device": "str: torch device the run used",
    "threads": "int: torch CPU threads",
    "env": "dict: python, platform and package versions",
    "steps_total": "int: number of requests in the sequence",
    "steps_committed": "list[int]: committed steps, 0 = base model",
    "compute": "dict[str, dict]: per step, unlearn/eval seconds and peak memory (MiB)",
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
    "seed": "int",
    "profile": "str",
    "concepts": "list[str]: matrix columns",
    "roles": "dict[concept, role]",
    "forget_order": "list[str]: concept forgotten at steps 1..T",
    "presence": "list[list[float]]: P[k][c], rows = steps 0..T",
    "n": "list[list[int]]: images behind each P[k][c]",
    "metrics": "dict[name, list[float] | float]: stream metrics computed from P (see "
               "culbench.evaluation.metrics); per-step lists start at step 1 for UA and "
               "re-emergence, at step 0 for retention and collateral damage",
}


# -- atomic writes -----------------------------------------------------------------------
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
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(text)
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
    from culbench.evaluation import metrics

    steps = committed_steps(run_dir)
    concepts, roles, P, N = load_matrix(run_dir, steps)
    col = {c: i for i, c in enumerate(concepts)}
    forget_cols = [col[c] for c in forget_order]
    related = [col[c] for c, r in roles.items() if r == "related"]
    general = [col[c] for c, r in roles.items() if r == "general"]

    def scalar(value: float) -> float | None:
        return None if np.isnan(value) else round(float(value), 6)

    def clean(values: np.ndarray) -> list[float | None]:
        return [scalar(v) for v in values]

    ua = metrics.cumulative_ua(P, forget_cols)
    ret_related = metrics.retention(P, related)
    ret_general = metrics.retention(P, general)
    worst, final = metrics.re_emergence(P, forget_cols)
    retained = related + general
    ret_final = np.nanmean([ret_related[-1], ret_general[-1]]) if retained else np.nan
    metric_values = {
        "ua_new": clean(metrics.new_target_ua(P, forget_cols)),
        "ua_cumulative": clean(ua),
        "ua_cumulative_raw": clean(metrics.cumulative_ua(P, forget_cols, normalised=False)),
        "retention_related": clean(ret_related),
        "retention_general": clean(ret_general),
        "retention_related_raw": clean(metrics.retention(P, related, normalised=False)),
        "retention_general_raw": clean(metrics.retention(P, general, normalised=False)),
        "collateral_damage": clean(metrics.collateral_damage(P, retained)),
        "retention_forgetting": clean(metrics.retention_forgetting(P, retained)),
        "re_emergence_worst": clean(worst),
        "re_emergence_final": clean(final),
        "auc_ua_cumulative": scalar(metrics.area_under(ua)),
        "auc_retention_related": scalar(metrics.area_under(ret_related)),
        "auc_retention_general": scalar(metrics.area_under(ret_general)),
        "headline_h": scalar(metrics.harmonic(float(ua[-1]), float(ret_final))
                             if not np.isnan(ret_final) else np.nan),
    }
    identity = manifest["identity"]
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": manifest["run_id"],
        "sequence": identity["sequence"]["id"],
        "method": identity["method"]["name"],
        "seed": identity["seed"],
        "profile": identity["profile"]["name"],
        "concepts": concepts,
        "roles": roles,
        "forget_order": forget_order,
        "presence": [[round(float(v), 6) for v in row] for row in P],
        "n": N.tolist(),
        "metrics": metric_values,
    }
