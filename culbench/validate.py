"""``culbench validate RUN_DIR``: schema, hashes and completeness of a run directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from culbench import runfolder as rf
from culbench.errors import RunError
from culbench.evaluation.summary import build_summary, presence_json


def validate_run(run_dir: str | Path, *, require_complete: bool = True) -> list[str]:
    """Check a run directory; return a list of problems (empty = valid).

    Checks: manifest fields and schema version; steps 0..K committed without gaps; each
    step's file hashes; every cell has ``n == n_expected`` and agrees with samples.jsonl;
    matrix.csv and summary.json equal what the step files give; the sequence's content
    hash matches the installed sequence when that sequence is available. A records-only run
    (``runfolder.records_only``: the published form) is checked on what it keeps: counts, matrix.csv
    and the summary's presence matrix against the step records.
    """
    run_dir = Path(run_dir)
    problems: list[str] = []
    manifest = rf.read_json(run_dir / "manifest.json")
    missing = [k for k in rf.MANIFEST_FIELDS if "." not in k and k not in manifest]
    if missing:
        return [f"manifest.json lacks {', '.join(missing)}"]
    if manifest["schema_version"] != rf.SCHEMA_VERSION:
        return [f"schema_version {manifest['schema_version']} is not {rf.SCHEMA_VERSION}: "
                f"run `culbench migrate {run_dir}`"]
    steps = rf.committed_steps(run_dir)
    try:
        slim = rf.records_only(run_dir, steps)
    except RunError as exc:
        return [exc.message]
    expected = list(range(manifest["steps_total"] + 1))
    if steps != manifest["steps_committed"]:
        problems.append(f"manifest lists steps {manifest['steps_committed']}, found {steps}")
    if require_complete and (steps != expected or manifest["status"] != "complete"):
        problems.append(f"run is {manifest['status']}: {len(steps)} of {len(expected)} steps")
    may_lack = rf.droppable(manifest["identity"]["method"]["name"])
    for k in steps:
        problems += _check_step(run_dir, k, slim, may_lack)
    if steps:
        matrix = run_dir / rf.MATRIX
        if not matrix.exists() or matrix.read_bytes() != rf.matrix_csv(run_dir, steps).encode("utf-8"):
            problems.append("matrix.csv differs from the step files")
    if steps == expected:
        summary_path = run_dir / "summary.json"
        if not summary_path.exists():
            problems.append("summary.json is missing")
        elif slim:  # no per-image records to recompute it from: check what the records give
            stored = rf.read_json(summary_path)
            _, _, P, N = rf.load_matrix(run_dir, steps)
            if stored.get("presence") != presence_json(P) \
                    or stored.get("n") != N.tolist():
                problems.append("summary.json's presence matrix differs from the step files")
        else:
            problems += _check_summary(run_dir, manifest, steps)
    problems += _check_sequence(manifest)
    return problems


# quality numbers added to summary.json after runs were made: a summary without them is still valid
NEWER_QUALITY = ("kid_retained_vs_base", "kid_retained_vs_real")


def _without_newer_fields(fresh: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """``fresh`` less the quality numbers the stored summary predates (``NEWER_QUALITY``)."""
    quality = {k: v for k, v in fresh.get("quality", {}).items()
               if k not in NEWER_QUALITY or k in stored.get("quality", {})}
    return {**fresh, "quality": quality}


def _check_summary(run_dir: Path, manifest: dict[str, Any], steps: list[int]) -> list[str]:
    """``summary.json`` against the summary its step files give."""
    try:
        stored = rf.read_json(run_dir / rf.SUMMARY)
        fresh = json.loads(json.dumps(build_summary(run_dir, manifest, stored.get("forget_order", []))))
    except RunError as exc:
        return [exc.message]
    if stored == fresh or stored == _without_newer_fields(fresh, stored):
        return []
    if "prompt_hits" not in stored:  # written before summaries recorded per-prompt hits
        return ["summary.json predates per-prompt hit counts: delete it and rerun the same `culbench run` "
                "(it is rebuilt from the step files)"]
    return ["summary.json differs from what the step files give"]


def _check_step(run_dir: Path, k: int, slim: bool = False, may_lack: tuple[str, ...] = ()) -> list[str]:
    folder = rf.step_dir(run_dir, k)
    try:
        record = rf.read_json(folder / rf.STEP_RECORD)
    except RunError as exc:
        return [f"step {k}: {exc.message}"]
    if rf.edited(record):
        return [f"step {k}: {rf.EDITED}"]
    problems = [f"step {k}: {p}" for p in rf.file_problems(folder, {} if slim else record.get("files", {}), may_lack)]
    counts = None if slim else _sample_counts(folder / rf.SAMPLES)
    if counts is None and not slim:
        problems.append(f"step {k}: samples.jsonl is unreadable")
    for concept, cell in record["cells"].items():
        if cell["n"] != cell["n_expected"]:
            problems.append(f"step {k}: {concept} has {cell['n']} of {cell['n_expected']} images")
        if counts is None:
            continue
        n, hits = counts.get(concept, [0, 0])
        if n != cell["n"] or (n and abs(hits / n - cell["presence"]) > 1e-9):
            problems.append(f"step {k}: {concept} disagrees with samples.jsonl")
    return problems


def _sample_counts(path: Path) -> dict[str, list[int]] | None:
    """Images and hits per concept in a step's ``samples.jsonl``; ``None`` when it is unreadable."""
    counts: dict[str, list[int]] = {}
    if not path.exists():
        return counts
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            hit = counts.setdefault(row["concept"], [0, 0])
            hit[0] += 1
            hit[1] += bool(row["present"])
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
        return None
    return counts


def _check_sequence(manifest: dict[str, Any]) -> list[str]:
    from culbench.catalog import SEQUENCE_VERSIONS, SEQUENCES
    from culbench.tasks import load_sequence

    sequence = manifest["identity"]["sequence"]
    name, _, version = sequence["id"].partition("@")
    if name not in SEQUENCES or not version.isdigit() or int(version) not in SEQUENCE_VERSIONS.get(name, {}):
        return []  # not installed here: nothing to compare against
    try:
        installed = load_sequence(SEQUENCE_VERSIONS[name][int(version)])
    except RunError:
        return []
    if installed.id == sequence["id"] and installed.content_hash != sequence["content_hash"]:
        return [f"sequence {installed.id} files differ from the ones the run used (content hash)"]
    return []
