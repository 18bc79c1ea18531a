"""Saves a PNG contact sheet of canonical ToyWorld renders for visual inspection.

Usage: python benchmarks/render_grid.py OUT.png [SIZE]

Rows: one per object (all colours, solid, dark background); every pattern on every
object; backgrounds x positions; each character next to its plain base shape, then
some characters at the left/right positions, on both backgrounds.
"""

from __future__ import annotations

import sys

import numpy as np
from PIL import Image

from culbench.toyworld.render import (
    BACKGROUNDS,
    CHARACTER_SPECS,
    CHARACTERS,
    COLOURS,
    OBJECTS,
    PATTERNS,
    POSITIONS,
    Scene,
    render,
)

UPSCALE = 4


def grid_scenes() -> list[list[Scene]]:
    """Returns rows of scenes covering every attribute value."""
    rows = []
    # Every object in every colour (solid, dark background).
    for obj in OBJECTS:
        rows.append([Scene(obj, c, "solid", "dark", "center") for c in COLOURS])
    # Every pattern on every object, on the light background.
    for pat in PATTERNS:
        rows.append([Scene(obj, COLOURS[i % len(COLOURS)], pat, "light", "center")
                     for i, obj in enumerate(OBJECTS)])
    # Positions x backgrounds.
    rows.append([Scene("star", "red", "striped", b, p) for b in BACKGROUNDS for p in POSITIONS]
                + [Scene("moon", "brown", "dotted", b, p) for b in BACKGROUNDS
                   for p in ("left", "right")])
    # Characters on both backgrounds, each followed by its plain base shape.
    for bg in BACKGROUNDS:
        for names in (CHARACTERS[:3], CHARACTERS[3:]):
            row = []
            for name in names:
                spec = CHARACTER_SPECS[name]
                row += [Scene.of_character(name, bg, "center"),
                        Scene(spec.shape, spec.colour, spec.pattern, bg, "center")]
            rows.append(row + [Scene.of_character(n, bg, p)
                               for n in names[:2] for p in ("left", "right")])
    return rows


def main(argv: list[str]) -> None:
    """Writes the grid to argv[1]; optional argv[2] is the render size."""
    size = int(argv[2]) if len(argv) > 2 else 32
    rows = grid_scenes()
    cols = max(len(r) for r in rows)
    pad = 2
    sheet = np.full((len(rows) * (size + pad), cols * (size + pad), 3), 128, dtype=np.uint8)
    for i, row in enumerate(rows):
        for j, scene in enumerate(row):
            y, x = i * (size + pad), j * (size + pad)
            sheet[y:y + size, x:x + size] = render(scene, size)
    img = Image.fromarray(sheet).resize(
        (sheet.shape[1] * UPSCALE, sheet.shape[0] * UPSCALE), Image.Resampling.NEAREST)
    img.save(argv[1])


if __name__ == "__main__":
    main(sys.argv)
