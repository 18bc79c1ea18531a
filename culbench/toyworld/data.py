"""ToyWorld data: captions and prompts, scene sampling and captioned datasets.

Builds on ``culbench.toyworld.render`` (concepts, ``Scene``, ``render``). Captions are
lowercase templated English over a closed VOCABULARY; ``prompt_for`` exposes every
template deterministically so that evaluation code can enumerate prompts:

>>> scene = Scene("star", "red", "striped", "dark", "left")
>>> prompt_for(scene, 0) == caption(scene)
True
>>> prompts = [prompt_for(scene, i) for i in range(len(TEMPLATES))]
>>> prompts[1]
'striped red star, left, dark background'
>>> prompts[3]
'a star that is red and striped, dark background, left'
>>> prompt_for(Scene("ring", "orange", "solid", "light", "center"), 2)
'a picture of an orange ring on a light background, center'
>>> prompt_for(Scene.of_character("zorb", "dark", "right"), 1)
'zorb, right, dark background'
>>> scene_from_labels(scene.labels()) == scene
True
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from culbench.toyworld.captions import (  # noqa: F401 - re-exported: data is the public face
    CHARACTER_TEMPLATES,
    TEMPLATES,
    VOCABULARY,
    all_scenes,
    caption,
    caption_concepts,
    caption_words,
    concept_slots,
    format_template,
    named_concepts,
    prompt_for,
    vocabulary,
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
    Scene,
    render,
)

if TYPE_CHECKING:  # `datasets` is heavy; only build_dataset imports it at runtime.
    import datasets

LABEL_KEYS: tuple[str, ...] = ("object", "colour", "pattern", "background", "position",
                               "character")


def scene_from_labels(labels: Mapping[str, str]) -> Scene:
    """Rebuilds a scene from its string labels; the inverse of ``Scene.labels()``.

    Args:
        labels: Mapping with (at least) the keys in LABEL_KEYS; character "none" means a
            plain object scene. Other keys are ignored, so a dataset row works as is.

    Returns:
        The scene.

    Raises:
        KeyError: If a label is missing.
        ValueError: If a label value is unknown or a character's base attributes are wrong.
    """
    character = labels["character"]
    return Scene(labels["object"], labels["colour"], labels["pattern"], labels["background"],
                 labels["position"], None if character == "none" else character)


def scene_from_prompt(prompt: str) -> Scene:
    """The scene a ToyWorld caption describes (every caption names all attributes; a
    missing pattern means "solid").

    >>> scene_from_prompt("a picture of a red star on a dark background, left").labels()["pattern"]
    'solid'
    >>> scene_from_prompt("zorb, right, light background").character
    'zorb'
    >>> scene_from_prompt("a green circle with eyes on a dark background, left").character
    'zorb'
    >>> scene_from_prompt("a crimson banded pentagram on a dark background, left").labels()["colour"]
    'red'

    Raises:
        ValueError: If the prompt does not name exactly one value of each attribute.
    """
    from culbench.toyworld.lexicon import concept_of_word, mark_of_words

    words = caption_words(prompt)
    named = [c for c in map(concept_of_word, words) if c is not None]
    character = [c for c in CHARACTERS if c in named]
    labels = {"object": [o for o in OBJECTS if o in named],
              "colour": [c for c in COLOURS if c in named],
              "pattern": [p for p in PATTERNS if p in named] or ["solid"]}
    mark = mark_of_words(words)
    if mark is not None and not character:  # a character described by its parts
        character = [c for c, spec in CHARACTER_SPECS.items() if spec.mark == mark]
        spec = CHARACTER_SPECS[character[0]]
        if labels != {"object": [spec.shape], "colour": [spec.colour], "pattern": [spec.pattern]}:
            raise ValueError(f"prompt {prompt!r} gives {character[0]}'s mark to other parts")
    if len(character) == 1:
        spec = CHARACTER_SPECS[character[0]]
        labels = {"object": [spec.shape], "colour": [spec.colour], "pattern": [spec.pattern]}
    elif character:
        raise ValueError(f"prompt {prompt!r} names several characters {character}")
    labels["background"] = [b for b in BACKGROUNDS if b in words]
    labels["position"] = [p for p in POSITIONS if p in words]
    bad = {k: v for k, v in labels.items() if len(v) != 1}
    if bad:
        raise ValueError(f"prompt {prompt!r} is not a ToyWorld caption (ambiguous or missing: {bad})")
    one = {k: v[0] for k, v in labels.items()}
    return Scene(one["object"], one["colour"], one["pattern"], one["background"], one["position"],
                 character[0] if character else None)


def render_prompts(prompts: Sequence[str], seed: int = 0):  # -> torch.Tensor
    """Real renders ``(N, 3, 32, 32)`` in [0, 1] of the scenes the prompts describe, with
    jitter seeded per image (``seed`` + index): the FID reference of an evaluation set."""
    import torch

    images = [render(scene_from_prompt(p), 32, np.random.default_rng([seed, i]))
              for i, p in enumerate(prompts)]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255)


class ToyWorldRenders:
    """Reference images for ToyWorld prompts: renders of the scene each prompt describes."""

    name = "toyworld-renders"

    def __init__(self, **_: object) -> None:
        self.version = RENDER_VERSION

    def fingerprint(self) -> dict[str, object]:
        return {"name": self.name, "impl": f"{__name__}.ToyWorldRenders", "render_version": self.version}

    def images(self, prompts: Sequence[str], seeds: Sequence[int]) -> object:
        """One jittered render per (prompt, seed); the seed fixes the jitter."""
        import torch

        return torch.cat([render_prompts([p], seed=s) for p, s in zip(prompts, seeds, strict=True)])


# ----------------------------------------------------------------------------- sampling

def sample_scenes(n: int, seed: int, *, exclude: Callable[[Scene], bool] | None = None,
                  character_rate: float = 0.2) -> list[Scene]:
    """Samples scenes uniformly over attributes, deterministically from the seed.

    Args:
        n: Number of scenes to return.
        seed: Seed for numpy's default generator.
        exclude: Predicate; scenes for which it returns True are rejected and redrawn.
        character_rate: Probability that a draw is a character scene.

    Returns:
        A list of n scenes.

    Raises:
        ValueError: If exclude rejects (nearly) everything.
    """
    rng = np.random.default_rng(seed)

    def pick(names: tuple[str, ...]) -> str:
        return names[rng.integers(len(names))]

    scenes: list[Scene] = []
    for _ in range(1000 * n + 10_000):  # bounded: exclude may reject everything
        if len(scenes) == n:
            return scenes
        background, position = pick(BACKGROUNDS), pick(POSITIONS)
        if rng.random() < character_rate:
            scene = Scene.of_character(pick(CHARACTERS), background, position)
        else:
            scene = Scene(pick(OBJECTS), pick(COLOURS), pick(PATTERNS), background, position)
        if exclude is None or not exclude(scene):
            scenes.append(scene)
    if len(scenes) == n:
        return scenes
    raise ValueError("exclude rejects (almost) every scene; cannot sample")


def exclude_fingerprint(exclude: Callable[[Scene], bool] | None) -> str:
    """Fingerprints an exclude predicate by its verdict on every scene.

    The scene space is finite, so two predicates with the same fingerprint exclude
    exactly the same scenes (assuming they are pure functions of the scene).
    """
    if exclude is None:
        return "none"
    bits = "".join("1" if exclude(s) else "0" for s in all_scenes())
    return hashlib.sha256(bits.encode()).hexdigest()[:12]


def _png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def build_dataset(n: int, seed: int, size: int = 32, *,
                  exclude: Callable[[Scene], bool] | None = None,
                  cache_dir: str | os.PathLike[str] | None = None,
                  character_rate: float = 0.2) -> datasets.Dataset:
    """Builds (or reloads) a captioned ToyWorld dataset.

    Args:
        n: Number of rows.
        seed: Seed; scenes, jitter and caption templates are all derived from it.
        size: Image side length in pixels.
        exclude: Optional predicate removing scenes (e.g. a held-out concept).
        cache_dir: If given, the dataset is saved there and reloaded when present.
        character_rate: Fraction of character scenes (see sample_scenes).

    Returns:
        A datasets.Dataset with columns image (PIL), caption, object, colour, pattern,
        background, position and character (all string labels; character "none").
    """
    import datasets  # imported lazily: rendering itself must not depend on it

    path = None
    if cache_dir is not None:
        rate = "" if character_rate == 0.2 else f"_c{character_rate:g}"
        name = (f"toyworld_n{n}_s{seed}_px{size}_x{exclude_fingerprint(exclude)}{rate}"
                f"_v{RENDER_VERSION}")
        path = os.path.join(os.fspath(cache_dir), name)
        if os.path.isfile(os.path.join(path, "dataset_info.json")):
            return datasets.load_from_disk(path)

    scenes = sample_scenes(n, seed, exclude=exclude, character_rate=character_rate)
    # Independent streams so changing caption templates does not change the images.
    render_rng, caption_rng = (np.random.default_rng(s)
                               for s in np.random.SeedSequence(seed).spawn(2))
    columns: dict[str, list] = {key: [] for key in
                                ("image", "caption", "object", "colour", "pattern",
                                 "background", "position", "character")}
    for scene in scenes:
        columns["image"].append({"bytes": _png_bytes(render(scene, size, render_rng)),
                                 "path": None})
        columns["caption"].append(caption(scene, caption_rng))
        for key, value in scene.labels().items():
            columns[key].append(value)
    features = datasets.Features(
        {key: datasets.Image() if key == "image" else datasets.Value("string")
         for key in columns})
    ds = datasets.Dataset.from_dict(columns, features=features)

    if path is not None:
        # Write to a sibling temp dir then rename, so concurrent builders never see a
        # half-written cache.
        os.makedirs(os.fspath(cache_dir), exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".tmp_" + os.path.basename(path), dir=os.fspath(cache_dir))
        ds.save_to_disk(tmp)
        try:
            os.rename(tmp, path)
        except OSError:
            # Another process won the race (its copy is identical); if instead `path`
            # is a stale, broken directory, keep serving our own fresh copy.
            if not os.path.isfile(os.path.join(path, "dataset_info.json")):
                return datasets.load_from_disk(tmp)
            shutil.rmtree(tmp, ignore_errors=True)
        ds = datasets.load_from_disk(path)
    return ds
