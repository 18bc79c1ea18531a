"""Probe records: what a robustness probe found on one checkpoint of a run.

``probes/<probe>/KK.json`` in the run folder holds one probe's result on step KK's checkpoint,
with the fingerprint it was computed under (probe name, version and config, the checkpoint's
weights, the judge, the probe's data). A record whose fingerprint no longer matches is computed
again; one that cannot be read is set aside (``KK.json.damaged``) and computed again. Records
are written atomically, so a probe killed mid-way leaves no half-written record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from culbench.runfolder.atomic import write_json

PROBES = "probes"


def probe_path(run_dir: Path, probe: str, step: int) -> Path:
    return Path(run_dir) / PROBES / probe / f"{step:02d}.json"


def read_probe(run_dir: Path, probe: str, step: int, set_aside: bool = True) -> dict[str, Any] | None:
    """The record of ``probe`` on step ``step``, or ``None`` (none yet, or unreadable: then set
    aside to be computed again, unless ``set_aside`` is false, as for readers such as the board)."""
    path = probe_path(run_dir, probe, step)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(record, dict) or "fingerprint" not in record or "result" not in record:
            raise ValueError("not a probe record")
        return record
    except (OSError, ValueError, UnicodeDecodeError):
        if set_aside:
            path.replace(path.with_name(path.name + ".damaged"))
        return None


def write_probe(run_dir: Path, probe: str, step: int, record: dict[str, Any]) -> Path:
    path = probe_path(run_dir, probe, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, record)
    return path


def probe_records(run_dir: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """Every readable probe record of the run: ``(probe, step) -> record``."""
    out = {}
    for path in sorted((Path(run_dir) / PROBES).glob("*/[0-9][0-9].json")):
        record = read_probe(run_dir, path.parent.name, int(path.stem), set_aside=False)
        if record is not None:
            out[(path.parent.name, int(path.stem))] = record
    return out
