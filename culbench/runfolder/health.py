"""Is a run folder intact? Damaged steps found, set aside (kept, never deleted) and redone.

A committed step is damaged when a file its ``step.json`` lists is missing or fails its sha256,
or when ``step.json`` itself is unreadable. A *records-only* run (the published form in
``leaderboard/results``) keeps its records but none of the files they hash, and is intact by design.
"""

from __future__ import annotations

import os
from pathlib import Path

from culbench.errors import CulbenchError, RunError
from culbench.runfolder.atomic import sha256_file, write_text
from culbench.runfolder.layout import DAMAGED, SUMMARY, WEIGHTS, step_dir
from culbench.runfolder.records import EDITED, committed_steps, computed, edited, matrix_csv, read_step


def droppable(method: str) -> tuple[str, ...]:
    """Files a run of ``method`` may drop and still resume: a from-scratch method's weights."""
    from culbench.catalog import METHODS

    try:
        cls = METHODS.get(method)
    except CulbenchError:  # a plugin not installed here: keep every file required
        return ()
    return (WEIGHTS,) if cls.from_scratch else ()


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
    return _keeps_no_files([(step_dir(run_dir, k), read_step(run_dir, k).get("files", {})) for k in steps])


def first_damaged_step(run_dir: Path, steps: list[int], may_lack: tuple[str, ...] = ()) -> tuple[int, str] | None:
    """The first committed step whose files are missing or fail their sha256, with the reason.

    ``None`` when every step is intact, and for a records-only run. Files named in ``may_lack``
    may be absent (a from-scratch method's weights); when present they must still match.
    """
    listed = []
    for k in steps:
        try:
            record = read_step(run_dir, k)
        except RunError:
            return k, "step.json is corrupt"
        if edited(record):
            return k, EDITED
        listed.append((step_dir(run_dir, k), record.get("files", {})))
    if _keeps_no_files(listed):
        return None
    for k, (folder, files) in zip(steps, listed, strict=True):
        problems = file_problems(folder, files, may_lack)
        if problems:
            return k, problems[0]
    return None


def steps_ahead(run_dir: Path, n_steps: int) -> list[int]:
    """Committed steps past the first gap (computed alone by ``--step`` processes, or left
    behind when a step before them was deleted)."""
    done = committed_steps(run_dir)
    return [k for k in range(len(done) + 1, n_steps + 1) if computed(run_dir, k)]


def to_redo(run_dir: Path, n_steps: int, may_lack: tuple[str, ...], keep_ahead: bool) -> tuple[list[int], str] | None:
    """Committed steps that must be set aside and redone, with the reason, or ``None``: the first
    damaged step and every committed step after it; and, unless ``keep_ahead`` (a from-scratch
    method, whose steps do not depend on each other), any step committed past a gap, which was
    computed from a step that is gone."""
    done = committed_steps(run_dir)
    ahead = [] if keep_ahead else steps_ahead(run_dir, n_steps)
    broken = first_damaged_step(run_dir, done, may_lack)
    if broken is not None:
        k, why = broken
        return [s for s in done if s >= k] + ahead, f"step {k}: {why}"
    if ahead:
        return ahead, f"step {len(done)} is missing, so the steps after it were computed from a step that is gone"
    return None


def set_aside(run_dir: Path, steps: list[int], stamp: str) -> Path:
    """Move committed ``steps`` (and the summary they gave) to ``run_dir/damaged/<stamp>/``,
    kept, never deleted; ``matrix.csv`` is rewritten for the steps that remain."""
    dest = run_dir / DAMAGED / stamp.replace(":", "")
    dest.mkdir(parents=True, exist_ok=True)
    if (run_dir / SUMMARY).exists():
        os.replace(run_dir / SUMMARY, dest / SUMMARY)
    for k in sorted(steps, reverse=True):  # last first: a crash leaves a gap-free prefix
        os.replace(step_dir(run_dir, k), dest / f"{k:02d}")
    write_text(run_dir / "matrix.csv", matrix_csv(run_dir, committed_steps(run_dir)))
    return dest
