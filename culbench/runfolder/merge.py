"""Merging copies of one run: steps computed elsewhere (``--step`` jobs on another machine)
copied into the run folder that lacks them."""

from __future__ import annotations

import shutil
from pathlib import Path

from culbench.errors import RunError
from culbench.runfolder.atomic import read_json
from culbench.runfolder.health import first_damaged_step
from culbench.runfolder.layout import MANIFEST, SNAPSHOTS, WEIGHTS, step_dir
from culbench.runfolder.manifest import Summariser, locked, note_compute, read_manifest, sync
from culbench.runfolder.records import computed


def merge_steps(src: Path, dst: Path, order: list[str], summarise: Summariser) -> list[int]:
    """Copy into run ``dst`` the committed steps of ``src`` that it lacks and return them: the same
    run (identity) computed partly elsewhere. Their compute keeps naming the device they ran on;
    ``dst``'s derived files are then brought up to date (:func:`sync`, with ``order`` the
    sequence's forget order). A missing ``dst`` is made a copy of ``src`` (no snapshots)."""
    theirs = read_json(src / MANIFEST)
    steps = sorted(int(p.parent.name) for p in (src / "steps").glob("[0-9]*/step.json"))
    broken = first_damaged_step(src, steps, (WEIGHTS,))
    if broken is not None:
        raise RunError(f"{src}: step {broken[0]}: {broken[1]}", "copy that run again from where it was computed")
    if not (dst / MANIFEST).exists():
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns(SNAPSHOTS, ".lock", ".*.tmp"))
        return steps
    with locked(dst):
        if read_manifest(dst).get("identity") != theirs.get("identity"):
            raise RunError(f"{src} and {dst} are different runs (method, config, seed, sequence or evaluators)",
                           "merge only copies of one run")
        new = [k for k in steps if not computed(dst, k)]
    for k in new:
        note_compute(dst, k, theirs.get("compute", {}).get(str(k), {}), theirs.get("device", "cpu"))
        with locked(dst):
            tmp = step_dir(dst, k).with_name(f".merge-{k:02d}")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(step_dir(src, k), tmp)
            tmp.rename(step_dir(dst, k))
    sync(dst, order, summarise)
    return new
