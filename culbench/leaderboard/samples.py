"""Sample image grids: the base model beside each row's model at its final step, on a few
forgotten and retained concepts, shared by the HTML board and ``culbench report``.

A grid has one row per model (the base model, then each table row's first seed at its last
step) and one column per concept (``pick_concepts``: two forgotten, a near and a far retained
one, held-out ones where the sequence has them). A cell is one small PNG of ``PER_CONCEPT``
images: the concept's first evaluation prompts, each with the sequence's first evaluation seed,
drawn with the run's profile sampler. Models are loaded as the probes load a checkpoint
(``culbench.probes.runner.load_target``). A run that kept no weights (a records-only run, as
published) is not rendered: its row carries a note instead. Cells are cached in a folder, keyed
by the checkpoint's weight hash and everything else the images depend on, so rebuilding a board
renders only what is new.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from culbench.leaderboard.rows import Row
from culbench.leaderboard.tables import is_reference

GRID_VERSION = 1  # bump when a cell's pixels change for the same inputs
PER_CONCEPT = 2  # images per concept and model
CELL_SIDE = 64  # an image is scaled to about this many pixels a side (nearest up, antialiased down)
CAPTIONS = {"forget": "forgotten", "related": "near, given", "related_held_out": "near, held out",
            "general": "far, given", "in_domain": "far (in-domain), given", "cross_domain": "far (cross-domain), given",
            "general_held_out": "far, held out"}
# retained columns: the first concept with the first role found (held-out concepts are the ones H scores)
RETAINED = (("related_held_out", "related"), ("general_held_out", "general", "in_domain", "cross_domain"))


@dataclass
class GridRow:
    """One model of a grid: its label, how the board styles it (``base``, ``ranked``,
    ``reference`` or ``oracle``), its cell PNG per concept, or the note saying why it has none."""

    label: str
    kind: str
    cells: dict[str, Path] = field(default_factory=dict)
    note: str = ""


@dataclass
class SampleGrid:
    """The concepts (id, caption) and the rows of one table's grid, with how the images were drawn."""

    concepts: list[tuple[str, str]]
    rows: list[GridRow]
    how: str


def pick_concepts(seq: Any) -> list[tuple[str, str]]:
    """Two forgotten concepts (the first requests of the sequence), then one near and one far
    retained concept, held-out ones first; each with its caption (``CAPTIONS``)."""
    chosen = [(c, CAPTIONS["forget"]) for c in list(seq.steps)[:2]]
    for roles in RETAINED:
        found = next((c for role in roles for c, r in seq.roles.items() if r == role), None)
        if found is not None:
            chosen.append((found, CAPTIONS[seq.roles[found]]))
    return chosen


def _first_run(row: Row) -> tuple[Path, int]:
    """The run folder of the row's first seed and the step its model is shown at (its last)."""
    i = min(range(len(row.summaries)), key=lambda j: row.summaries[j]["seed"])
    return Path(row.sources[i]).parent, len(row.summaries[i]["presence"]) - 1


def _kind(row: Row) -> str:
    return "oracle" if row.role == "oracle" else "reference" if is_reference(row) else "ranked"


def _prompts(seq: Any, concepts: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    prompts = {}
    for concept, _ in concepts:
        pool = list(seq.prompts[concept].eval)
        prompts[concept] = [pool[j % len(pool)] for j in range(PER_CONCEPT)]
    return prompts


def _cell_key(target: Any, step: int, prompts: dict[str, list[str]], seed: int) -> str:
    """What a checkpoint's cells depend on: its weights' hash, model, prompts, seed and sampler."""
    from culbench.runfolder import read_step

    model = target.identity["model"]
    spec = {"version": GRID_VERSION, "side": CELL_SIDE, "model_sha256": read_step(target.run_dir, step)["model_sha256"],
            "backend": model["backend"], "options": model.get("options", {}), "prompts": prompts, "seed": seed,
            "sampler": target.sampler}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]


def _cells(target: Any, prompts: dict[str, list[str]], seed: int, cache: Path, step: int) -> dict[str, Path]:
    """The cell PNG per concept of checkpoint ``step`` (``target.step`` or 0, its base model) of
    ``target``'s run, rendered unless cached."""
    import shutil

    from culbench.probes.images import base_model

    folder = cache / _cell_key(target, step, prompts, seed)
    paths = {c: folder / f"{c}.png" for c in prompts}
    if all(p.is_file() for p in paths.values()):
        return paths
    shutil.rmtree(folder, ignore_errors=True)  # an incomplete leftover

    model = base_model(target) if step == 0 else target.model()
    flat = [p for c in prompts for p in prompts[c]]
    images = model.sample(flat, [seed] * len(flat), **target.sampler)
    partial = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    partial.mkdir(parents=True, exist_ok=True)
    for n, concept in enumerate(prompts):
        _save_cell(images[n * PER_CONCEPT : (n + 1) * PER_CONCEPT], partial / f"{concept}.png")
    try:
        partial.rename(folder)
    except OSError:  # another build wrote the same cells meanwhile: they are the same images
        shutil.rmtree(partial, ignore_errors=True)
    return paths


def _save_cell(images: Any, path: Path) -> None:
    """``images`` (N, C, H, W in [0, 1]) side by side, scaled towards ``CELL_SIDE`` pixels a side."""
    import torch.nn.functional as F
    from torchvision.utils import save_image

    side = images.shape[-1]
    if side < CELL_SIDE:
        images = F.interpolate(images, scale_factor=CELL_SIDE // side, mode="nearest")
    elif side > 2 * CELL_SIDE:
        images = F.interpolate(images, size=(CELL_SIDE * 3 // 2,) * 2, mode="bilinear", antialias=True)
    save_image(images.clamp(0, 1), str(path), nrow=len(images), padding=2, pad_value=1.0)


def sample_grid(rows: Sequence[Row], cache: Path) -> SampleGrid | str:
    """The grid of one table's rows (cells rendered into, or read from, ``cache``), or a note
    saying why there is none (no run of the table kept its final weights)."""
    targets: list[tuple[Row, str, Any]] = []  # (row, label, its checkpoint or the note why none)
    for row in rows:
        run_dir, step = _first_run(row)
        label = row.label + (f" (step {step})" if row.partial else "")
        targets.append((row, label, _target(run_dir, step)))
    first = next((t for _, _, t in targets if not isinstance(t, str)), None)
    if first is None:
        return ("No sample images: no run of this table kept its model weights (records-only runs, "
                "as published), so there is nothing to draw them from.")
    concepts = pick_concepts(first.seq)
    prompts, seed = _prompts(first.seq, concepts), int(first.seq.spec.eval.seeds[0])
    grid = SampleGrid(concepts, [GridRow("base model (step 0)", "base", _cells(first, prompts, seed, cache, 0))],
                      _how(first, seed))
    first = None
    while targets:  # popped, so that each checkpoint's model is freed once drawn
        row, label, target = targets.pop(0)
        if isinstance(target, str):
            grid.rows.append(GridRow(label, _kind(row), note=target))
        else:
            grid.rows.append(GridRow(label, _kind(row), _cells(target, prompts, seed, cache, target.step)))
    return grid


def _target(run_dir: Path, step: int) -> Any:
    """Checkpoint ``step`` of the run (``load_target``), or a note saying why it cannot be drawn."""
    from culbench.errors import CulbenchError
    from culbench.probes.runner import load_target
    from culbench.runfolder import WEIGHTS, step_dir

    if step > 0 and not (step_dir(run_dir, step) / WEIGHTS).is_file():
        return "no weights kept (records-only run): not drawn"
    try:
        return load_target(run_dir, step)
    except CulbenchError as exc:  # e.g. its sequence files changed since: say so, draw the others
        return f"not drawn: {exc.message}"


def _how(target: Any, seed: int) -> str:
    sampler = target.sampler
    return (f"Each cell: the concept's first {PER_CONCEPT} evaluation prompts, seed {seed}, "
            f"{sampler['steps']} sampler steps, guidance {sampler['guidance']}; each row's first seed "
            "at its last step.")


def markdown_lines(grid: SampleGrid | str, relative_to: Path) -> list[str]:
    """The grid as a Markdown table whose cells link the cached PNGs (paths relative to
    ``relative_to``, the folder of the Markdown file), or the note."""
    if isinstance(grid, str):
        return [f"_{grid}_", ""]
    lines = ["| model | " + " | ".join(f"{c} ({caption})" for c, caption in grid.concepts) + " |",
             "|" + "---|" * (len(grid.concepts) + 1)]
    for row in grid.rows:
        if row.note:
            cells = [row.note] + [""] * (len(grid.concepts) - 1)
        else:
            cells = [f"![{c}]({row.cells[c].relative_to(relative_to).as_posix()})" for c, _ in grid.concepts]
        lines.append("| " + " | ".join([re.sub(r"\|", "\\|", row.label), *cells]) + " |")
    return [*lines, "", grid.how, ""]
