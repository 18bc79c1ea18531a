"""``culbench validate RUN_DIR``: schema, hashes and completeness of a run directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from culbench import results
from culbench.errors import RunError


def validate_run(run_dir: str | Path, *, require_complete: bool = True) -> list[str]:
    """Check a run directory; return a list of problems (empty = valid).

    Checks: manifest fields and schema version; steps 0..K committed without gaps; each
    step's file hashes; every cell has ``n == n_expected`` and agrees with samples.jsonl;
    matrix.csv and summary.json equal what the step files give; the sequence's content
    hash matches the installed sequence when that sequence is available. A records-only run
    (``results.records_only``: the published form) is checked on what it keeps: counts, matrix.csv
    and the summary's presence matrix against the step records.
    """
    run_dir = Path(run_dir)
    problems: list[str] = []
    manifest = results.read_json(run_dir / "manifest.json")
    missing = [k for k in results.MANIFEST_FIELDS if "." not in k and k not in manifest]
    if missing:
        return [f"manifest.json lacks {', '.join(missing)}"]
    if manifest["schema_version"] != results.SCHEMA_VERSION:
        return [f"schema_version {manifest['schema_version']} is not {results.SCHEMA_VERSION}"]
    steps = results.committed_steps(run_dir)
    slim = results.records_only(run_dir, steps)
    expected = list(range(manifest["steps_total"] + 1))
    if steps != manifest["steps_committed"]:
        problems.append(f"manifest lists steps {manifest['steps_committed']}, found {steps}")
    if require_complete and (steps != expected or manifest["status"] != "complete"):
        problems.append(f"run is {manifest['status']}: {len(steps)} of {len(expected)} steps")
    may_lack = droppable(manifest["identity"]["method"]["name"])
    for k in steps:
        problems += _check_step(run_dir, k, slim, may_lack)
    if steps:
        if (run_dir / "matrix.csv").read_text() != results.matrix_csv(run_dir, steps):
            problems.append("matrix.csv differs from the step files")
    if steps == expected:
        summary_path = run_dir / "summary.json"
        if not summary_path.exists():
            problems.append("summary.json is missing")
        elif slim:  # no per-image records to recompute it from: check what the records give
            stored = results.read_json(summary_path)
            _, _, P, N = results.load_matrix(run_dir, steps)
            if stored.get("presence") != [[round(float(v), 6) for v in row] for row in P] \
                    or stored.get("n") != N.tolist():
                problems.append("summary.json's presence matrix differs from the step files")
        else:
            stored = results.read_json(summary_path)
            order = stored.get("forget_order", [])
            fresh = json.loads(json.dumps(results.build_summary(run_dir, manifest, order)))
            if stored != fresh:
                problems.append("summary.json differs from what the step files give")
    problems += _check_sequence(manifest)
    return problems


def droppable(method: str) -> tuple[str, ...]:
    """Files a run of ``method`` may drop and still resume: a from-scratch method's weights."""
    from culbench.catalog import METHODS
    from culbench.errors import CulbenchError

    try:
        cls = METHODS.get(method)
    except CulbenchError:  # a plugin not installed here: keep every file required
        return ()
    return (results.WEIGHTS,) if getattr(cls, "from_scratch", False) else ()


def _check_step(run_dir: Path, k: int, slim: bool = False, may_lack: tuple[str, ...] = ()) -> list[str]:
    folder = results.step_dir(run_dir, k)
    record = results.read_json(folder / "step.json")
    problems = [f"step {k}: {p}"
                for p in results.file_problems(folder, {} if slim else record.get("files", {}), may_lack)]
    counts: dict[str, list[int]] = {}
    samples = folder / "samples.jsonl"
    if samples.exists():
        for line in samples.read_text().splitlines():
            row = json.loads(line)
            hit = counts.setdefault(row["concept"], [0, 0])
            hit[0] += 1
            hit[1] += bool(row["present"])
    for concept, cell in record["cells"].items():
        if cell["n"] != cell["n_expected"]:
            problems.append(f"step {k}: {concept} has {cell['n']} of {cell['n_expected']} images")
        n, k_hits = counts.get(concept, [0, 0])
        if slim:
            continue
        if n != cell["n"] or (n and abs(k_hits / n - cell["presence"]) > 1e-9):
            problems.append(f"step {k}: {concept} disagrees with samples.jsonl")
    return problems


def _check_sequence(manifest: dict[str, Any]) -> list[str]:
    from culbench.catalog import SEQUENCES
    from culbench.tasks import load_sequence

    sequence = manifest["identity"]["sequence"]
    name = sequence["id"].split("@")[0]
    if name not in SEQUENCES:
        return []  # not installed here: nothing to compare against
    try:
        installed = load_sequence(SEQUENCES.get(name))
    except RunError:
        return []
    if installed.id == sequence["id"] and installed.content_hash != sequence["content_hash"]:
        return [f"sequence {installed.id} files differ from the ones the run used (content hash)"]
    return []
