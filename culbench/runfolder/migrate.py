"""Upgrading a run folder written by an earlier culbench to the current layout (``SCHEMA_VERSION``).

Schema 1 → 2: every step record gains ``record_sha256``. Only the version fields and that hash
change; every number stays. The manifest is upgraded last, so a migration killed midway is
finished by running it again.
"""

from __future__ import annotations

from pathlib import Path

from culbench.errors import RunError
from culbench.runfolder.atomic import read_json, write_json
from culbench.runfolder.layout import DAMAGED, MANIFEST, SCHEMA_VERSION, STEP_RECORD, SUMMARY
from culbench.runfolder.records import seal


def migrate(run_dir: Path) -> int | None:
    """Upgrade one run folder in place; return the schema it had, or ``None`` when it was current."""
    manifest = read_json(run_dir / MANIFEST)
    version = manifest.get("schema_version")
    if version == SCHEMA_VERSION:
        return None
    if version != 1:
        raise RunError(f"{run_dir} has schema_version {version!r}, which this culbench cannot upgrade",
                       f"use the culbench release that wrote it, or one that reads schema {SCHEMA_VERSION}")
    for path in sorted((run_dir / "steps").glob(f"[0-9]*/{STEP_RECORD}")):
        write_json(path, seal({**read_json(path), "schema_version": SCHEMA_VERSION}))
    if (run_dir / SUMMARY).exists():
        write_json(run_dir / SUMMARY, {**read_json(run_dir / SUMMARY), "schema_version": SCHEMA_VERSION})
    write_json(run_dir / MANIFEST, {**manifest, "schema_version": SCHEMA_VERSION})
    return version


def run_folders(root: Path) -> list[Path]:
    """``root`` itself when it is a run folder, else every run folder below it."""
    if (root / MANIFEST).is_file():
        return [root]
    return [p.parent for p in sorted(root.rglob(MANIFEST))
            if not {".cache", DAMAGED} & set(p.relative_to(root).parts)]
