"""Committed steps: writing a step directory atomically, finding the committed ones, reading
their records back as the presence matrix (``matrix.csv``)."""

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

from culbench.runfolder.atomic import read_json, sha256_file, write_json
from culbench.runfolder.layout import SCHEMA_VERSION, STEP_RECORD, step_dir


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
    write_json(tmp / STEP_RECORD, seal({**record, "files": hashes, "schema_version": SCHEMA_VERSION}))
    if final.exists():  # a stale copy from an identical earlier attempt
        shutil.rmtree(final)
    os.replace(tmp, final)


def record_digest(record: dict[str, Any]) -> str:
    """sha256 of a step record's canonical JSON, its own ``record_sha256`` left out."""
    body = {k: v for k, v in record.items() if k != "record_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, allow_nan=False).encode("utf-8")).hexdigest()


def seal(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with its ``record_sha256``, as a step record is written."""
    return {**record, "record_sha256": record_digest(record)}


EDITED = "step.json was edited (it does not match its record_sha256)"


def edited(record: dict[str, Any]) -> bool:
    """The record differs from what was written (:data:`EDITED`)."""
    return record.get("record_sha256") != record_digest(record)


def computed(run_dir: Path, step: int) -> bool:
    """Step ``step`` has a committed directory (possibly ahead of a gap)."""
    return (step_dir(run_dir, step) / STEP_RECORD).is_file()


def committed_steps(run_dir: Path) -> list[int]:
    """Steps 0..k that are committed without a gap; removes leftover temp directories."""
    steps_root = run_dir / "steps"
    if not steps_root.is_dir():
        return []
    for leftover in steps_root.glob(".tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    done = []
    while computed(run_dir, len(done)):
        done.append(len(done))
    return done


def read_step(run_dir: Path, step: int) -> dict[str, Any]:
    """The record (``step.json``) of committed step ``step``."""
    return read_json(step_dir(run_dir, step) / STEP_RECORD)


def samples_jsonl(records: list[dict[str, Any]]) -> bytes:
    """Per-image judge records as JSON lines (sorted keys)."""
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode()


def load_matrix(run_dir: Path, steps: list[int]) -> tuple[list[str], dict[str, str], np.ndarray, np.ndarray]:
    """Concept order, roles, presence ``P`` and counts ``N`` from committed step files; a step
    computed but not evaluated (``evaluated: false``) gives a row of NaN presence and zero counts."""
    records = [read_step(run_dir, k) for k in steps]
    first = next((r["cells"] for r in records if r["cells"]), {})
    concepts = list(first)
    roles = {c: first[c]["role"] for c in concepts}
    blank = {"presence": float("nan"), "n": 0}
    P = np.array([[r["cells"].get(c, blank)["presence"] for c in concepts] for r in records], dtype=float)
    N = np.array([[r["cells"].get(c, blank)["n"] for c in concepts] for r in records], dtype=int)
    return concepts, roles, P, N


def evaluated(record: dict[str, Any]) -> bool:
    """Whether a step record carries an evaluation (an ``evaluate="ends"`` run skips the middle steps)."""
    return record.get("evaluated", True)


def matrix_csv(run_dir: Path, steps: list[int]) -> str:
    """``matrix.csv`` of ``steps``: one row per (step, concept), presence with its interval."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["step", "concept", "role", "presence", "n", "ci_low", "ci_high"])
    for k in steps:
        for concept, cell in read_step(run_dir, k)["cells"].items():
            writer.writerow([k, concept, cell["role"], f"{cell['presence']:.6f}", cell["n"],
                             f"{cell['ci_low']:.6f}", f"{cell['ci_high']:.6f}"])
    return out.getvalue()
