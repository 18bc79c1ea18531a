"""The manifest and the lock: who made a run, what it is (its identity), what it has committed.

The manifest's ``steps_committed`` and ``status``, ``matrix.csv`` and ``summary.json`` are derived
from the step directories (:func:`sync`); a step's compute is noted in the manifest *before* its
directory commits (:func:`note_compute`), so a process killed between the two loses nothing.
Several processes may share one run folder (``culbench run --step``): every read-modify-write of
the manifest happens under :func:`locked`.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from culbench import provenance
from culbench.errors import RunError
from culbench.runfolder.atomic import read_json, write_bytes, write_json
from culbench.runfolder.layout import MANIFEST, MATRIX, SCHEMA_VERSION, STEP_RECORD, SUMMARY
from culbench.runfolder.records import committed_steps, matrix_csv

#: ``summarise(run_dir, manifest, forget_order) -> summary``: the summary of a complete run.
Summariser = Callable[[Path, dict[str, Any], list[str]], dict[str, Any]]
IDENTITY_KEYS = ("sequence", "method", "profile", "seed", "mode", "model", "evaluators", "order")


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder`` (``.lock`` inside it) for the duration of the block."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """The run's manifest (a one-line error when it is missing, corrupt, or of another schema)."""
    try:
        manifest = read_json(run_dir / MANIFEST)
    except RunError as exc:
        if not (run_dir / MANIFEST).exists():
            raise
        raise RunError(exc.message, f"move {run_dir / MANIFEST} away and rerun: the run resumes from its "
                                    "committed steps (their recorded compute times are lost)") from None
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise RunError(f"{run_dir} has run-folder schema {manifest.get('schema_version')!r}; this culbench "
                       f"writes schema {SCHEMA_VERSION}", f"run `culbench migrate {run_dir}`")
    return manifest


def write_manifest(run_dir: Path, manifest: dict[str, Any]) -> None:
    write_json(run_dir / MANIFEST, manifest)


def new_manifest(run_id: str, identity: dict[str, Any], argv: list[str], device: str, threads: int,
                 steps_total: int) -> dict[str, Any]:
    """The manifest of a run that has committed nothing yet."""
    git_hash, dirty = provenance.git_state()
    return {
        "schema_version": SCHEMA_VERSION, "run_id": run_id, "status": "running",
        "culbench_version": provenance.culbench_version(), "git_hash": git_hash, "git_dirty": dirty,
        "created": provenance.now(), "updated": provenance.now(), "argv": argv, "identity": identity,
        "device": device, "threads": threads, "env": provenance.environment(),
        "steps_total": steps_total, "steps_committed": [], "compute": {},
    }


def check_identity(old: dict[str, Any], new: dict[str, Any], run_dir: Path) -> None:
    """Raise unless a rerun (``new``) is the same run as the one in ``run_dir`` (``old``)."""
    for key in IDENTITY_KEYS:
        if old.get(key) != new.get(key):
            raise RunError(f"{run_dir} was started with a different {key}",
                           "use another --out, or delete that directory to start over")


def note_compute(run_dir: Path, step: int, compute: dict[str, Any], device: str) -> None:
    """Record a step's compute before its directory commits (naming the device when it is not
    the run's: a step computed elsewhere)."""
    with locked(run_dir):
        manifest = read_manifest(run_dir)
        if device != manifest.get("device"):
            compute = {part: {**meter, "device": meter.get("device", device)} for part, meter in compute.items()}
        manifest.setdefault("compute", {})[str(step)] = compute
        write_manifest(run_dir, manifest)


def sync(run_dir: Path, order: list[str], summarise: Summariser) -> tuple[dict[str, Any], list[str]]:
    """Bring the derived files up to date with the committed steps: ``steps_committed`` and
    ``status`` in the manifest, ``matrix.csv``, and once all of ``order``'s steps are committed,
    ``summary.json`` (built when missing or unreadable; removed while the run is unfinished).
    Writes only what changed; returns the manifest and the names of the derived files it rewrote."""
    with locked(run_dir):
        manifest = read_manifest(run_dir)
        done = committed_steps(run_dir)
        complete = bool(done) and done[-1] == len(order)
        started = any((run_dir / "steps").glob(f"[0-9]*/{STEP_RECORD}"))  # committed, or computed ahead
        status = "complete" if complete else ("partial" if started else "running")
        fixed = []
        text = matrix_csv(run_dir, done).encode("utf-8")
        matrix = run_dir / MATRIX
        if not matrix.exists() or matrix.read_bytes() != text:
            if matrix.exists() or done:  # not a new run's first matrix
                fixed.append(MATRIX)
            write_bytes(matrix, text)
        if complete and not _readable(run_dir / SUMMARY):
            write_json(run_dir / SUMMARY, summarise(run_dir, {**manifest, "steps_committed": done}, order))
            fixed.append(SUMMARY)
        elif not complete and (run_dir / SUMMARY).exists():  # the summary of steps that are gone
            (run_dir / SUMMARY).unlink()
        if manifest.get("steps_committed") != done or manifest.get("status") != status:
            manifest.update(steps_committed=done, status=status, updated=provenance.now())
            write_manifest(run_dir, manifest)
        return manifest, fixed


def _readable(path: Path) -> bool:
    try:
        read_json(path)
    except RunError:
        return False
    return True
