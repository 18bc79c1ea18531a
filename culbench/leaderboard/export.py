"""Results as a Hugging Face–style dataset: parquet files plus a dataset card.

``export(roots, out)`` writes, from every run folder under ``roots`` (a folder holding
``manifest.json``; ``.cache``, ``damaged`` and ``probes`` folders are skipped):

- ``presence.parquet`` — one row per run × step × concept, copied from the run's ``matrix.csv``
  (presence, images ``n`` and the 95 % interval) with the run's identity beside it;
- ``runs.parquet`` — one row per run: identity and provenance from ``manifest.json`` and the
  final-step value of every leaderboard metric (``METRICS``) from ``summary.json`` (null for a
  run that has no summary yet, or a metric it does not record);
- ``README.md`` — a dataset card whose ``configs`` let
  ``datasets.load_dataset(out, "presence")`` (or ``"runs"``) read the files.

Nothing is recomputed: the numbers are the run folders' own. ``export_prompts`` writes a task
sequence's prompts the same way (``culbench tasks export``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from culbench.errors import RunError
from culbench.evaluation.metric_info import METRICS
from culbench.runfolder.atomic import read_json
from culbench.runfolder.layout import MANIFEST, MATRIX, SUMMARY, variant_label
from culbench.runfolder.manifest import read_manifest
from culbench.runfolder.records import committed_steps, read_step

SKIPPED = {".cache", "damaged", "probes"}
# probe_* come from probe records, gap_retrain from another row (the oracle's): not in summary.json
FINAL_METRICS = tuple(m.key for m in METRICS if not m.key.startswith("probe_") and "gap_retrain" not in m.key)
PRESENCE_COLUMNS = ("run_id", "sequence", "method", "config_hash", "profile", "seed", "order", "step",
                    "concept", "role", "presence", "n", "ci_low", "ci_high")


def run_dirs(roots: Iterable[Path]) -> list[Path]:
    """Run folders (holding ``manifest.json``) under ``roots``, or the roots themselves, sorted."""
    found: set[Path] = set()
    for root in roots:
        if (root / MANIFEST).is_file():
            found.add(root)
            continue
        found.update(p.parent for p in root.rglob(MANIFEST)
                     if not SKIPPED & set(p.relative_to(root).parts))
    if not found:
        raise RunError(f"no run folders (manifest.json) under {', '.join(map(str, roots))}",
                       "pass a results root, e.g. `culbench leaderboard export results/ --out export/`")
    return sorted(found)


def _order(run_dir: Path, identity: dict[str, Any], summary: dict[str, Any] | None) -> list[str]:
    """The run's deletion order: its summary's, its identity's, else its committed steps' concepts."""
    if summary:
        return list(summary["forget_order"])
    if identity.get("order"):
        return list(identity["order"])
    return [read_step(run_dir, k)["concept"] for k in committed_steps(run_dir) if k]


def run_row(run_dir: Path) -> dict[str, Any]:
    """One ``runs.parquet`` row: identity, provenance and final-step metrics of one run."""
    from culbench.leaderboard.rows import final_value

    manifest = read_manifest(run_dir)
    identity = manifest["identity"]
    summary = read_json(run_dir / SUMMARY) if (run_dir / SUMMARY).is_file() else None
    method = identity["method"]
    mode, split = identity.get("mode", "sequential"), identity.get("split", "eval")
    row = {
        "run_id": manifest["run_id"],
        "sequence": identity["sequence"]["id"],
        "sequence_content_hash": identity["sequence"].get("content_hash"),
        "method": method["name"],
        "variant": variant_label(method["name"], mode, split, identity.get("judge")),
        "config": json.dumps(method.get("config", {}), sort_keys=True),
        "config_hash": method.get("config_hash"),
        "profile": identity["profile"]["name"],
        "seed": int(identity["seed"]),
        "order": ",".join(_order(run_dir, identity, summary)),
        "status": manifest.get("status"),
        "steps_committed": len(manifest.get("steps_committed", [])),
        "steps_total": manifest.get("steps_total"),
        "culbench_version": manifest.get("culbench_version"),
        "git_hash": manifest.get("git_hash"),
        "device": manifest.get("device"),
    }
    for key in FINAL_METRICS:
        value = final_value(summary, key)[0] if summary else None
        row[key] = None if value is None else float(value)
    return row


def presence_rows(run_dir: Path, run: dict[str, Any]) -> list[dict[str, Any]]:
    """``presence.parquet`` rows of one run: its ``matrix.csv`` with the run's identity."""
    if not (run_dir / MATRIX).is_file():
        return []
    with (run_dir / MATRIX).open(newline="", encoding="utf-8") as handle:
        cells = list(csv.DictReader(handle))
    ids = {key: run[key] for key in PRESENCE_COLUMNS[:7]}
    ids["method"] = run["variant"]
    return [{**ids, "step": int(c["step"]), "concept": c["concept"], "role": c["role"],
             "presence": float(c["presence"]), "n": int(c["n"]),
             "ci_low": float(c["ci_low"]), "ci_high": float(c["ci_high"])} for c in cells]


def _schemas() -> tuple[Any, Any]:
    import pyarrow as pa

    text, integer, real = pa.string(), pa.int64(), pa.float64()
    presence = pa.schema([(name, integer if name in ("seed", "step", "n") else
                           real if name in ("presence", "ci_low", "ci_high") else text)
                          for name in PRESENCE_COLUMNS])
    ints = {"seed", "steps_committed", "steps_total"}
    fields = ["run_id", "sequence", "sequence_content_hash", "method", "variant", "config", "config_hash",
              "profile", "seed", "order", "status", "steps_committed", "steps_total", "culbench_version",
              "git_hash", "device"]
    runs = pa.schema([(name, integer if name in ints else text) for name in fields]
                     + [(key, real) for key in FINAL_METRICS])
    return presence, runs


def export(roots: Sequence[Path], out: Path) -> list[Path]:
    """Write ``presence.parquet``, ``runs.parquet`` and ``README.md`` under ``out``; the paths."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    runs, presence = [], []
    for run_dir in run_dirs(roots):
        run = run_row(run_dir)
        runs.append(run)
        presence.extend(presence_rows(run_dir, run))
    presence_schema, runs_schema = _schemas()
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "presence.parquet", out / "runs.parquet", out / "README.md"]
    pq.write_table(pa.Table.from_pylist(presence, schema=presence_schema), written[0])
    pq.write_table(pa.Table.from_pylist(runs, schema=runs_schema), written[1])
    written[2].write_text(dataset_card(runs, len(presence)), encoding="utf-8")
    return written


def dataset_card(runs: Sequence[dict[str, Any]], presence_rows: int) -> str:
    """The dataset card: ``configs`` for ``datasets`` and what each file holds."""
    sequences = sorted({r["sequence"] for r in runs})
    return f"""---
configs:
- config_name: presence
  data_files: presence.parquet
- config_name: runs
  data_files: runs.parquet
tags:
- machine-unlearning
- text-to-image
---
# culbench results

Continual concept unlearning results exported by `culbench leaderboard export`: {len(runs)} run(s)
on {', '.join(sequences)}; {presence_rows} presence cells. Load with
`datasets.load_dataset("parquet", data_files={{"presence": "presence.parquet", "runs": "runs.parquet"}})`
or `datasets.load_dataset(<this folder>, "runs")`.

- `presence.parquet`: one row per run × step × concept (`{', '.join(PRESENCE_COLUMNS)}`) — the
  fraction `presence` of the `n` evaluation images of `concept` judged to show it after request
  `step` (0 = base model), with its 95 % interval; `method` carries `~mode`/`~split`/`~judge`
  suffixes for runs outside the benchmark setting; `order` is the deletion order, comma-separated.
- `runs.parquet`: one row per run — identity (sequence@version and its content hash, method,
  resolved config as JSON and its hash, profile, seed, order), status, provenance (culbench
  version, git hash, device) and the final-step value of each leaderboard metric from the run's
  `summary.json` (null when the run has no summary yet or does not record it; the probe columns
  and the gap to the retrain oracle depend on other records and rows, so they are not exported).

The numbers are the run folders' own (`matrix.csv`, `summary.json`); see culbench's
docs/evaluation.md for each metric's definition.
"""


def export_prompts(sequence: Any, out: Path) -> Path:
    """Write ``<name>@<version>.prompts.parquet`` under ``out``: one row per prompt of every
    concept of ``sequence`` (a ``TaskSequence``), columns ``sequence, split, concept, role,
    prompt, mapped`` (role: the concept's evaluated role, ``""`` for one only used as an anchor;
    mapped: ``""`` where the CSV has none, always for eval prompts)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    for concept, prompts in sequence.prompts.items():
        role = sequence.roles.get(concept, "")
        for split in ("train", "val"):
            rows.extend({"split": split, "concept": concept, "role": role, "prompt": pair.prompt,
                         "mapped": pair.mapped} for pair in getattr(prompts, split))
        rows.extend({"split": "eval", "concept": concept, "role": role, "prompt": prompt, "mapped": ""}
                    for prompt in prompts.eval)
    table = pa.Table.from_pylist([{"sequence": sequence.id, **r} for r in rows])
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{sequence.id}.prompts.parquet"
    pq.write_table(table, path)
    return path
