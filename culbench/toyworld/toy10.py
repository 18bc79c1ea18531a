"""Generate the ``toy10`` task files (data) from ToyWorld's templates, deterministically.

Run ``python -m culbench.toyworld.toy10 tasks/toy10`` after changing anything here and
bump ``VERSION``; a test fails if the committed files differ from what this writes.

The sequence mixes kinds the way the DFR sequence mixes characters, celebrities, objects
and styles: characters stand in for IP, colours and patterns for styles, shapes for objects.
Every forget concept has three confusable *related* concepts (never forgotten themselves),
and ten *general* far concepts (five objects, two backgrounds, three positions) are kept.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from culbench.tasks import prompt_csv, write_task_files
from culbench.toyworld import data as twd
from culbench.toyworld import render as tw

VERSION = 1
SEED = 2026
N_TRAIN = {"forget": 120, "retain": 40}
N_VAL = {"forget": 20, "retain": 10}
N_EVAL = 16
EVAL_SEEDS = list(range(1000, 1008))

# (concept, related, fixed anchor) in deletion order
STEPS: tuple[tuple[str, tuple[str, str, str], str], ...] = (
    ("zorb", ("kix", "bobo", "mipsy"), "circle"),
    ("star", ("cross", "diamond", "hexagon"), "circle"),
    ("red", ("orange", "pink", "brown"), "green"),
    ("striped", ("dotted", "outlined", "solid"), "solid"),
    ("moon", ("circle", "ring", "hexagon"), "square"),
    ("blue", ("purple", "green", "pink"), "orange"),
    ("quillo", ("kix", "mipsy", "tangle"), "square"),
    ("heart", ("diamond", "circle", "triangle"), "square"),
    ("yellow", ("orange", "green", "brown"), "purple"),
    ("checkered", ("dotted", "outlined", "solid"), "solid"),
)
ANCHOR = {concept: anchor for concept, _, anchor in STEPS}
GENERAL = ("square", "arrow", "house", "bolt", "tree", "dark", "light", "left", "center", "right")
IN_DOMAIN = ("square", "arrow", "house", "bolt", "tree")
CROSS_DOMAIN = ("dark", "light", "left", "center", "right")

KIND_VALUES = {
    "object": tw.OBJECTS, "colour": tw.COLOURS, "pattern": tw.PATTERNS,
    "character": tw.CHARACTERS, "background": tw.BACKGROUNDS, "position": tw.POSITIONS,
}
FIELD = {"object": "object", "colour": "colour", "pattern": "pattern",
         "background": "background", "position": "position"}


def kind_of(concept: str) -> str:
    for kind, values in KIND_VALUES.items():
        if concept in values:
            return kind
    raise KeyError(concept)


def _random_scene(kind: str, value: str, rng: np.random.Generator) -> tw.Scene:
    pick = lambda values: values[int(rng.integers(len(values)))]  # noqa: E731
    if kind == "character":
        return tw.Scene.of_character(value, pick(tw.BACKGROUNDS), pick(tw.POSITIONS))
    fields = {"object": pick(tw.OBJECTS), "colour": pick(tw.COLOURS), "pattern": pick(tw.PATTERNS),
              "background": pick(tw.BACKGROUNDS), "position": pick(tw.POSITIONS)}
    fields[FIELD[kind]] = value
    return tw.Scene(**fields)


def _template(scene: tw.Scene, concept: str, rng: np.random.Generator) -> int:
    count = len(twd.CHARACTER_TEMPLATES if scene.character else twd.TEMPLATES)
    while True:  # "solid" must be said when it is the concept (template 2 omits it)
        index = int(rng.integers(count))
        if not (concept == "solid" and scene.character is None and "pattern_or_blank" in twd.TEMPLATES[index]):
            return index


def _mapped(scene: tw.Scene, kind: str, index: int, forget: set[str], rng: np.random.Generator) -> str:
    """The same scene with the concept swapped for its anchor (context kept).

    One consistent replacement per concept, as an anchor concept is used by CA and by DFR's
    mapped prompts: in the first draft every prompt drew a random other value of the kind,
    which gave methods contradictory targets (DFR on `red` kept 0.60 presence with two
    alternating replacements vs 0.39 with one, on validation prompts). The random draw is
    still consumed so that the prompts themselves are unchanged.
    """
    if kind == "character":  # the identity goes, the plain shape in its colour stays
        plain = tw.Scene(scene.object, scene.colour, scene.pattern, scene.background, scene.position)
        return twd.prompt_for(plain, index % len(twd.TEMPLATES))
    concept = getattr(scene, FIELD[kind])
    rng.integers(len([v for v in KIND_VALUES[kind] if v not in forget and v != concept]))
    fields = scene.labels()
    fields[FIELD[kind]] = ANCHOR[concept]
    return twd.prompt_for(twd.scene_from_labels(fields), index)


def _character_rows(concept: str, role: str, forget: set[str], rng: np.random.Generator) -> list[tuple[str, str, str]]:
    """A character has only 8 templates × 6 contexts = 48 distinct captions: split them all
    (train 32, val 4, eval 12) instead of sampling, so the splits stay disjoint."""
    scenes = [(tw.Scene.of_character(concept, bg, pos), i) for bg in tw.BACKGROUNDS
              for pos in tw.POSITIONS for i in range(len(twd.CHARACTER_TEMPLATES))]
    order = rng.permutation(len(scenes))
    n_eval, n_val = 12, 4
    rows = []
    for rank, k in enumerate(order):
        scene, index = scenes[k]
        split = "eval" if rank < n_eval else "val" if rank < n_eval + n_val else "train"
        mapped = _mapped(scene, "character", index, forget, rng) if role == "forget" and split != "eval" else ""
        rows.append((split, twd.prompt_for(scene, index), mapped))
    return sorted(rows, key=lambda row: ("train", "val", "eval").index(row[0]))


def prompt_rows(concept: str, role: str, forget: set[str], rng: np.random.Generator) -> list[tuple[str, str, str]]:
    """Distinct prompts per split (train, val, eval) for one concept; mapped prompts for forget."""
    kind = kind_of(concept)
    if kind == "character":
        return _character_rows(concept, role, forget, rng)
    group = "forget" if role == "forget" else "retain"
    wanted = [("train", N_TRAIN[group]), ("val", N_VAL[group]), ("eval", N_EVAL)]
    seen: set[str] = set()
    rows = []
    for split, count in wanted:
        made = 0
        for _ in range(100 * count):
            if made == count:
                break
            scene = _random_scene(kind, concept, rng)
            index = _template(scene, concept, rng)
            prompt = twd.prompt_for(scene, index)
            if prompt in seen:
                continue
            seen.add(prompt)
            mapped = _mapped(scene, kind, index, forget, rng) if role == "forget" and split != "eval" else ""
            rows.append((split, prompt, mapped))
            made += 1
        if made < count:
            raise RuntimeError(f"only {made} distinct {split} prompts for {concept}")
    return rows


def files() -> dict[str, str]:
    """Relative path → content of every toy10 task file."""
    forget = {c for c, _, _ in STEPS}
    roles: dict[str, str] = {c: "forget" for c, _, _ in STEPS}  # ordered: rng use depends on it
    for _, related, _ in STEPS:
        roles.update({r: "related" for r in related if r not in roles})
    roles.update({g: "general" for g in GENERAL if g not in roles})
    related_of = {c: rel for c, rel, _ in STEPS}
    anchor_of = {c: a for c, _, a in STEPS}
    out: dict[str, str] = {}
    lines = ["# Generated by `python -m culbench.toyworld.toy10 tasks/toy10`; do not edit.", "concepts:"]
    for concept in roles:
        extra = ""
        if concept in related_of:
            extra = f", anchor: {anchor_of[concept]}, related: [{', '.join(related_of[concept])}]"
        lines.append(f"  - {{id: {concept}, kind: {kind_of(concept)}, name: {concept}{extra}}}")
    out["concepts.yaml"] = "\n".join(lines) + "\n"
    rng = np.random.default_rng(SEED)
    for concept, role in roles.items():
        out[f"prompts/{concept}.csv"] = prompt_csv(prompt_rows(concept, role, forget, rng))
    out["sequence.yaml"] = f"""# Generated by `python -m culbench.toyworld.toy10 tasks/toy10`; do not edit.
name: toy10
version: {VERSION}
description: ToyWorld 10-step sequence mixing characters, objects, colours and patterns (embedded default)
citation: null
model:
  backend: toyworld
judge:
  name: toyworld
concepts: concepts.yaml
prompts: prompts
steps: [{', '.join(c for c, _, _ in STEPS)}]
retain:
  general: [{', '.join(GENERAL)}]
  in_domain: [{', '.join(IN_DOMAIN)}]
  cross_domain: [{', '.join(CROSS_DOMAIN)}]
eval:
  sampler: {{steps: 10, guidance: 1.0}}
  seeds: [{', '.join(map(str, EVAL_SEEDS))}]
  clip: {{name: toyworld-clip}}
  reference: {{name: toyworld-renders}}
"""
    return out


def write(root: Path) -> None:
    write_task_files(root, files())


if __name__ == "__main__":
    write(Path(sys.argv[1]))
