"""Tests for the ToyWorld renderer (render.py) and captions, sampling and datasets (data.py)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from culbench.toyworld.data import (
    CHARACTER_TEMPLATES,
    LABEL_KEYS,
    TEMPLATES,
    VOCABULARY,
    all_scenes,
    build_dataset,
    caption,
    caption_words,
    exclude_fingerprint,
    prompt_for,
    sample_scenes,
    scene_from_labels,
)
from culbench.toyworld.render import (
    BACKGROUNDS,
    CHARACTER_SPECS,
    CHARACTERS,
    COLOURS,
    OBJECTS,
    PATTERNS,
    POSITIONS,
    RENDER_VERSION,
    Character,
    Scene,
    render,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def n_diff(a: np.ndarray, b: np.ndarray, tol: int = 30) -> int:
    """Number of pixels whose largest channel difference exceeds tol."""
    return int((np.abs(a.astype(int) - b.astype(int)).max(axis=-1) > tol).sum())


def plain_of(name: str, background: str = "dark", position: str = "center") -> Scene:
    spec = CHARACTER_SPECS[name]
    return Scene(spec.shape, spec.colour, spec.pattern, background, position)


# ------------------------------------------------------------------------ concept space

def test_concept_space_sizes_and_specs() -> None:
    assert len(OBJECTS) == 14 and len(COLOURS) == 8 and len(PATTERNS) == 5
    assert len(set(OBJECTS)) == len(OBJECTS)
    # Objects added later are appended, so earlier indices (e.g. class ids) never move.
    assert OBJECTS[:10] == ("circle", "square", "triangle", "star", "heart",
                            "cross", "ring", "moon", "diamond", "hexagon")
    assert OBJECTS[10:] == ("arrow", "house", "bolt", "tree")
    assert set(BACKGROUNDS) == {"dark", "light"}
    assert set(POSITIONS) == {"left", "center", "right"}
    assert len(CHARACTERS) == 6 and set(CHARACTERS) == set(CHARACTER_SPECS)
    for name, spec in CHARACTER_SPECS.items():
        assert isinstance(spec, Character) and name.isalpha() and name.islower()
        assert spec.shape in OBJECTS and spec.colour in COLOURS and spec.pattern in PATTERNS
    assert len({spec.mark for spec in CHARACTER_SPECS.values()}) == len(CHARACTERS)


def test_scene_validation() -> None:
    with pytest.raises(ValueError):
        Scene("blob", "red", "solid", "dark", "left")
    with pytest.raises(ValueError):  # character with the wrong base attributes
        Scene("square", "red", "solid", "dark", "left", "zorb")
    assert Scene.of_character("zorb", "dark", "left").labels()["character"] == "zorb"
    assert Scene("star", "red", "solid", "dark", "left").labels()["character"] == "none"


# ------------------------------------------------------------------------------ render

@pytest.mark.parametrize("size", [32, 16])
def test_every_attribute_renders(size: int) -> None:
    scenes = [Scene(o, COLOURS[i % 8], PATTERNS[i % 5], BACKGROUNDS[i % 2], POSITIONS[i % 3])
              for i, o in enumerate(OBJECTS)]
    scenes += [Scene("square", c, "striped", "light", "left") for c in COLOURS]
    scenes += [Scene("circle", "red", p, b, q)
               for p, b, q in itertools.product(PATTERNS, BACKGROUNDS, POSITIONS)]
    scenes += [Scene.of_character(c, b, "right") for c in CHARACTERS for b in BACKGROUNDS]
    rng = np.random.default_rng(0)
    for scene in scenes:
        for r in (None, rng):
            img = render(scene, size, r)
            assert img.shape == (size, size, 3) and img.dtype == np.uint8
            assert img.std() > 0  # something was drawn


def test_determinism_in_process() -> None:
    scene = Scene("star", "red", "striped", "dark", "left")
    assert np.array_equal(render(scene), render(scene))
    a = render(scene, rng=np.random.default_rng(7))
    b = render(scene, rng=np.random.default_rng(7))
    c = render(scene, rng=np.random.default_rng(8))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, render(scene))  # jitter really changes the image


def test_determinism_across_processes() -> None:
    code = (
        "import hashlib, numpy as np\n"
        "from culbench.toyworld.render import Scene, render\n"
        "s = Scene.of_character('bobo', 'light', 'right')\n"
        "a = render(s, 32, np.random.default_rng(3))\n"
        "print(hashlib.sha256(a.tobytes()).hexdigest())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.strip()
    import hashlib
    here = render(Scene.of_character("bobo", "light", "right"), 32, np.random.default_rng(3))
    assert out == hashlib.sha256(here.tobytes()).hexdigest()


def test_objects_are_distinguishable() -> None:
    # Every pair of objects, for every colour, pattern and background (~0.5 s).
    for colour, pattern, bg in itertools.product(COLOURS, PATTERNS, BACKGROUNDS):
        imgs = {o: render(Scene(o, colour, pattern, bg, "center")) for o in OBJECTS}
        for a, b in itertools.combinations(OBJECTS, 2):
            assert n_diff(imgs[a], imgs[b]) >= 30, (colour, pattern, bg, a, b)


def test_patterns_are_distinguishable() -> None:
    for obj in OBJECTS:
        imgs = {p: render(Scene(obj, "blue", p, "light", "center")) for p in PATTERNS}
        for a, b in itertools.combinations(PATTERNS, 2):
            assert n_diff(imgs[a], imgs[b]) >= 8, (obj, a, b)


def test_colours_are_distinguishable() -> None:
    imgs = {c: render(Scene("circle", c, "solid", "dark", "center")) for c in COLOURS}
    for a, b in itertools.combinations(COLOURS, 2):
        assert n_diff(imgs[a], imgs[b], tol=40) >= 100, (a, b)


def test_positions_shift_the_shape() -> None:
    imgs = {p: render(Scene("square", "green", "solid", "light", p)) for p in POSITIONS}
    ink_x = {p: np.nonzero(n_diff_mask(img))[1].mean() for p, img in imgs.items()}
    assert ink_x["left"] + 4 < ink_x["center"] < ink_x["right"] - 4


def n_diff_mask(img: np.ndarray) -> np.ndarray:
    """Pixels that are not (close to) the light background."""
    return np.abs(img.astype(int) - 215).max(axis=-1) > 30


@pytest.mark.parametrize("size,min_pixels", [(32, 8), (16, 4)])
def test_character_marks_are_visible(size: int, min_pixels: int) -> None:
    for name in CHARACTERS:
        for bg, pos in itertools.product(BACKGROUNDS, POSITIONS):
            char = render(Scene.of_character(name, bg, pos), size)
            plain = render(plain_of(name, bg, pos), size)
            assert n_diff(char, plain) >= min_pixels, (name, bg, pos)
    imgs = {c: render(Scene.of_character(c, "dark", "center")) for c in CHARACTERS}
    for a, b in itertools.combinations(CHARACTERS, 2):
        assert n_diff(imgs[a], imgs[b]) >= 40, (a, b)


class ExtremeJitter:
    """Duck-typed stand-in for np.random.Generator giving the largest allowed jitter."""

    def __init__(self, dx: float, dy: float) -> None:
        self.offset = np.array([dx, dy])

    def uniform(self, low: float, high: float, size: int | None = None) -> object:
        return self.offset if size == 2 else high  # +1 px offsets, +8 % scale

    def integers(self, low: int, high: int, size: int | None = None) -> np.ndarray:
        return np.zeros(size, dtype=int)


def test_jittered_shapes_stay_inside_canvas() -> None:
    scenes = [Scene(o, "red", "solid", b, p)
              for o, b, p in itertools.product(OBJECTS, BACKGROUNDS, POSITIONS)]
    scenes += [Scene.of_character(c, b, p)
               for c, b, p in itertools.product(CHARACTERS, BACKGROUNDS, POSITIONS)]
    rngs = [ExtremeJitter(dx, dy) for dx, dy in itertools.product((-1.0, 1.0), repeat=2)]
    for scene in scenes:
        for rng in rngs:
            img = render(scene, 32, rng).astype(int)  # type: ignore[arg-type]
            border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
            # Even at maximal jitter the outermost pixels are pure background, so no
            # shape or mark is ever cut off.
            assert np.abs(border - border[0]).max() == 0, scene


# ----------------------------------------------------------------------------- captions

def test_vocabulary_is_closed_and_clean() -> None:
    assert list(VOCABULARY) == sorted(set(VOCABULARY))
    assert all(w.isalpha() and w.islower() for w in VOCABULARY)
    for values in (OBJECTS, COLOURS, PATTERNS, BACKGROUNDS, POSITIONS, CHARACTERS):
        assert set(values) <= set(VOCABULARY)


def test_captions_use_vocabulary_and_mention_attributes() -> None:
    vocab = set(VOCABULARY)
    rng = np.random.default_rng(0)
    for scene in sample_scenes(400, seed=1, character_rate=0.3):
        for r in (None, rng, rng, rng):
            text = caption(scene, r)
            assert text == text.lower()
            words = caption_words(text)
            assert set(words) <= vocab, text
            assert scene.background in words and scene.position in words
            if scene.character is not None:
                assert scene.character in words
                assert scene.object not in words  # characters are named, not described
            else:
                assert scene.colour in words and scene.object in words, text
                assert scene.pattern in words or scene.pattern == "solid", text


def test_caption_canonical_template_and_articles() -> None:
    assert (caption(Scene("star", "red", "striped", "dark", "left"))
            == "a red striped star on a dark background, left")
    assert (caption(Scene.of_character("zorb", "light", "center"))
            == "zorb on a light background, center")
    assert caption(Scene("ring", "orange", "solid", "dark", "right")).startswith("an orange")
    rng = np.random.default_rng(0)
    texts = {caption(Scene("heart", "pink", "dotted", "dark", "left"), rng) for _ in range(50)}
    assert len(texts) >= 3  # several templates are in use


def test_prompt_for_enumerates_the_caption_templates() -> None:
    assert isinstance(TEMPLATES, tuple) and isinstance(CHARACTER_TEMPLATES, tuple)
    assert len(TEMPLATES) == 4 and len(CHARACTER_TEMPLATES) == 8
    plain = Scene("house", "orange", "solid", "light", "right")
    char = Scene.of_character("kix", "dark", "left")
    for scene, templates in ((plain, TEMPLATES), (char, CHARACTER_TEMPLATES)):
        prompts = [prompt_for(scene, i) for i in range(len(templates))]
        assert len(set(prompts)) == len(templates)
        assert prompts[0] == caption(scene)
        assert all(set(caption_words(p)) <= set(VOCABULARY) for p in prompts)
        # caption(scene, rng) draws exactly one template index per call.
        rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
        drawn = [caption(scene, rng_a) for _ in range(60)]
        assert drawn == [prompts[int(rng_b.integers(len(templates)))] for _ in range(60)]
        assert set(drawn) == set(prompts)
        for bad in (-1, len(templates)):
            with pytest.raises(IndexError):
                prompt_for(scene, bad)
    assert prompt_for(plain, 1) == "solid orange house, right, light background"
    assert prompt_for(plain, 2) == "a picture of an orange house on a light background, right"
    assert prompt_for(char, 2) == "a picture of kix on a dark background, left"


def test_scene_from_labels_inverts_labels() -> None:
    for scene in all_scenes():
        labels = scene.labels()
        assert tuple(labels) == LABEL_KEYS
        assert scene_from_labels(labels) == scene
    row = {**Scene.of_character("bobo", "light", "left").labels(), "caption": "x"}
    assert scene_from_labels(row).character == "bobo"  # extra keys are ignored
    with pytest.raises(ValueError):
        scene_from_labels({**row, "colour": "red"})  # wrong base colour for bobo
    with pytest.raises(KeyError):
        scene_from_labels({k: v for k, v in row.items() if k != "position"})


# ----------------------------------------------------------------------------- sampling

def test_sample_scenes_deterministic_and_uniform() -> None:
    a = sample_scenes(4000, seed=3)
    assert a == sample_scenes(4000, seed=3) and a != sample_scenes(4000, seed=4)
    plain = [s for s in a if s.character is None]
    assert 0.15 < 1 - len(plain) / len(a) < 0.25
    for field, values in (("object", OBJECTS), ("colour", COLOURS), ("pattern", PATTERNS)):
        counts = Counter(getattr(s, field) for s in plain)
        expected = len(plain) / len(values)
        assert all(abs(counts[v] - expected) < 0.25 * expected for v in values), field
    assert set(s.character for s in a) - {None} == set(CHARACTERS)


def test_sample_scenes_exclude_and_rates() -> None:
    scenes = sample_scenes(500, seed=0, exclude=lambda s: s.colour == "red")
    assert len(scenes) == 500 and all(s.colour != "red" for s in scenes)
    assert all(s.character is None for s in sample_scenes(200, 0, character_rate=0.0))
    assert all(s.character for s in sample_scenes(200, 0, character_rate=1.0))
    with pytest.raises(ValueError):
        sample_scenes(1, seed=0, exclude=lambda s: True)


def test_exclude_fingerprint() -> None:
    assert exclude_fingerprint(None) == "none"
    same_a = exclude_fingerprint(lambda s: s.colour == "red")
    same_b = exclude_fingerprint(lambda s: "red" in (s.colour,))
    assert same_a == same_b != exclude_fingerprint(lambda s: s.object == "star")
    assert len(all_scenes()) == 14 * 8 * 5 * 2 * 3 + 6 * 2 * 3


# ------------------------------------------------------------------------------ dataset

COLUMNS = ["image", "caption", "object", "colour", "pattern", "background", "position",
           "character"]


def test_build_dataset_columns_and_exclude() -> None:
    ds = build_dataset(60, seed=0, exclude=lambda s: s.colour == "red" or s.character == "zorb")
    assert len(ds) == 60 and ds.column_names == COLUMNS
    assert "red" not in ds["colour"] and "zorb" not in ds["character"]
    row = ds[0]
    assert row["image"].size == (32, 32) and row["image"].mode == "RGB"
    assert all(isinstance(row[c], str) for c in COLUMNS[1:])
    scene = scene_from_labels(row)  # rows carry the full scene
    assert caption_words(row["caption"])[-1] == scene.position
    assert np.abs(np.asarray(row["image"]).astype(int) - render(scene)).mean() < 40
    small = build_dataset(8, seed=0, size=16)
    assert small[0]["image"].size == (16, 16)


def test_build_dataset_deterministic_and_cached(tmp_path: Path) -> None:
    first = build_dataset(40, seed=5, cache_dir=tmp_path)
    folders = [p.name for p in tmp_path.iterdir()]
    assert len(folders) == 1 and folders[0].endswith(f"_v{RENDER_VERSION}")
    again = build_dataset(40, seed=5, cache_dir=tmp_path)  # reloaded from disk
    fresh = build_dataset(40, seed=5)  # rebuilt in memory
    assert first["caption"] == again["caption"] == fresh["caption"]
    for i in (0, 17, 39):
        assert np.array_equal(np.asarray(again[i]["image"]), np.asarray(fresh[i]["image"]))
    build_dataset(40, seed=5, cache_dir=tmp_path, exclude=lambda s: s.colour == "red")
    assert len(list(tmp_path.iterdir())) == 2  # a different exclude gets its own folder
