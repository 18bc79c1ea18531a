"""Progress of every run under a results root, read from the manifests (``culbench ls runs``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from culbench.errors import RunError
from culbench.runfolder.atomic import read_json
from culbench.runfolder.layout import DAMAGED, MANIFEST, SNAPSHOTS


def run_progress(root: Path) -> list[dict[str, Any]]:
    """Every run under ``root`` from its manifest: status, steps done of total, compute spent and,
    while unfinished, the time left at the committed requests' mean (``culbench ls runs``)."""
    rows = []
    for path in sorted(root.rglob(MANIFEST)):
        if {".cache", DAMAGED} & set(path.relative_to(root).parts):
            continue
        run = str(path.parent.relative_to(root))
        try:
            manifest = read_json(path)
        except RunError as exc:
            rows.append({"run": run, "status": "unreadable", "note": exc.args[0]})
            continue
        row = {"run": run, **manifest_progress(manifest)}
        ahead = row.pop("ahead")
        snapshots = sorted((path.parent / SNAPSHOTS).glob("*.pt"))
        if snapshots:
            age = time.time() - snapshots[-1].stat().st_mtime
            row["note"] = f"step {int(snapshots[-1].stem)} in progress, snapshot saved {age / 60:.0f} min ago"
        if ahead:
            row["note"] = "; ".join(filter(None, [row.get("note"), f"steps {', '.join(map(str, ahead))} "
                                                  "computed ahead (counted once the steps before them are)"]))
        rows.append(row)
    return rows


def manifest_progress(manifest: dict[str, Any]) -> dict[str, Any]:
    """What a run's manifest says of its progress: ``status``, ``steps`` (``"done/total"``), the
    compute ``seconds`` spent, ``updated``, the steps computed ``ahead`` of a gap (``--step``) and,
    while unfinished, ``seconds_left`` at the committed requests' mean."""
    compute = manifest.get("compute", {})
    spent = {int(k): sum(part.get("seconds", 0.0) for part in v.values()) for k, v in compute.items()}
    done, total = manifest.get("steps_committed", []), manifest.get("steps_total", 0)
    requests = [seconds for k, seconds in spent.items() if k > 0]
    ahead = sorted(k for k in spent if k > max(done, default=-1))  # computed alone (`--step`), past a gap
    left = total - max(done, default=0) - len([k for k in ahead if k > 0])  # requests to go
    row = {"status": manifest.get("status", "?"), "steps": f"{len(done)}/{total + 1}",
           "seconds": sum(spent.values()), "updated": manifest.get("updated", ""), "ahead": ahead}
    if manifest.get("status") != "complete" and requests and left > 0:
        row["seconds_left"] = sum(requests) / len(requests) * left
    return row
