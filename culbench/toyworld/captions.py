"""ToyWorld captions: the templates, the words of each model version and what a caption names.

Model version 1 names every concept by its primary name; version 2 (``caption_v2``) also uses
the synonyms and character paraphrases of ``culbench.toyworld.lexicon``. Every template is
enumerable (``prompt_for``) so that task generators and evaluation can list prompts.

>>> scene = Scene("star", "red", "striped", "dark", "left")
>>> prompt_for(scene, 1)
'striped red star, left, dark background'
>>> with_names(scene, 0, {"colour": "crimson"})
'a crimson striped star on a dark background, left'
>>> part_prompt(Scene.of_character("zorb", "dark", "left"), 0)
'a green circle with eyes on a dark background, left'
>>> part_prompt(Scene.of_character("mipsy", "light", "right"), 1)
'a picture of a pink dotted heart with a hat, right, light background'
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping

import numpy as np

from culbench.toyworld.lexicon import (
    CHARACTER_SPECS,
    MARK_PHRASES,
    PARAPHRASE_RATE,
    PART_TEMPLATES,
    SYNONYM_RATE,
    SYNONYMS,
    check_version,
    concept_of_word,
    extra_words,
)
from culbench.toyworld.render import (
    BACKGROUNDS,
    CHARACTERS,
    COLOURS,
    OBJECTS,
    PATTERNS,
    POSITIONS,
    Scene,
)


def all_scenes() -> list[Scene]:
    """Enumerates the whole (finite) scene space: every object scene and character scene."""
    scenes = [Scene(*combo) for combo in itertools.product(
        OBJECTS, COLOURS, PATTERNS, BACKGROUNDS, POSITIONS)]
    scenes += [Scene.of_character(c, b, p)
               for c, b, p in itertools.product(CHARACTERS, BACKGROUNDS, POSITIONS)]
    return scenes


@functools.cache
def concept_slots() -> dict[str, frozenset[str]]:
    """Every label value of the scene space and the label slots it fills (``Scene.labels``: object,
    colour, pattern, background, position, character; ``"none"`` included).

    >>> sorted(concept_slots()["striped"]), sorted(concept_slots()["quillo"])
    (['pattern'], ['character'])
    """
    slots: dict[str, set[str]] = {}
    for scene in all_scenes():
        for slot, value in scene.labels().items():
            slots.setdefault(value, set()).add(slot)
    return {value: frozenset(found) for value, found in slots.items()}


# Caption templates for object scenes and for character scenes (described by name
# only). Fields: colour, pattern, object, background, position, character and
# pattern_or_blank (the pattern, or nothing for "solid"). Append new templates at the
# end: caption() draws an index, so reordering changes every cached caption.
TEMPLATES: tuple[str, ...] = (
    "a {colour} {pattern} {object} on a {background} background, {position}",
    "{pattern} {colour} {object}, {position}, {background} background",
    "a picture of a {colour} {pattern_or_blank} {object} on a {background} background, {position}",
    "a {object} that is {colour} and {pattern}, {background} background, {position}",
)
CHARACTER_TEMPLATES: tuple[str, ...] = (
    "{character} on a {background} background, {position}",
    "{character}, {position}, {background} background",
    "a picture of {character} on a {background} background, {position}",
    # Added for toy10 v1: a character has only 6 contexts, so its caption variety comes
    # from templates (8 x 6 = 48 distinct captions per character).
    "an image of {character}, {position}, on a {background} background",
    "a drawing of {character}, {background} background, {position}",
    "{character} shown on a {background} background, {position}",
    "a small picture of {character}, {position}, {background} background",
    "the character {character} on a {background} background, {position}",
)


def _templates_for(scene: Scene) -> tuple[str, ...]:
    return CHARACTER_TEMPLATES if scene.character is not None else TEMPLATES


def _fix_articles(words: list[str]) -> list[str]:
    return ["an" if w == "a" and nxt[0] in "aeiou" else w
            for w, nxt in zip(words, words[1:] + ["x"], strict=True)]


def format_template(template: str, scene: Scene, names: Mapping[str, str] | None = None, *,
                    as_parts: bool = False) -> str:
    """Fills a caption template from a scene; ``names`` renames the object/colour/pattern slots
    (synonyms, ``lexicon``); ``as_parts`` allows a character scene's parts in the slots."""
    if scene.character is not None and not as_parts and names:
        raise ValueError("a character caption names the character, not its parts")
    words = {"object": scene.object, "colour": scene.colour, "pattern": scene.pattern, **(names or {})}
    text = template.format(
        colour=words["colour"], pattern=words["pattern"], object=words["object"],
        background=scene.background, position=scene.position, character=scene.character,
        pattern_or_blank="" if scene.pattern == "solid" else words["pattern"],
    )
    return " ".join(_fix_articles(text.split()))


def prompt_for(scene: Scene, template_index: int) -> str:
    """Returns the caption of a scene written with one chosen template.

    Args:
        scene: The scene to describe.
        template_index: Index into CHARACTER_TEMPLATES for character scenes, else into
            TEMPLATES.

    Returns:
        A lowercase caption whose words (after removing commas) are all in VOCABULARY.

    Raises:
        IndexError: If template_index is not in range(len(templates)).
    """
    templates = _templates_for(scene)
    if not 0 <= template_index < len(templates):
        raise IndexError(f"template_index {template_index} not in range({len(templates)})")
    return format_template(templates[template_index], scene)


def caption(scene: Scene, rng: np.random.Generator | None = None, version: int = 1) -> str:
    """Returns a lowercase templated English caption for a scene.

    Args:
        scene: The scene to describe. Character scenes are described by name only (version 1).
        rng: Chooses uniformly among the templates (TEMPLATES or CHARACTER_TEMPLATES);
            None selects the first template.
        version: ToyWorld model version; 2 also draws synonyms and character paraphrases
            (``lexicon.caption_v2``, needs ``rng``).

    Returns:
        A caption whose words (after removing commas) are all in ``vocabulary(version)``.
    """
    if version == 2 and rng is not None:
        return caption_v2(scene, rng)
    index = 0 if rng is None else int(rng.integers(len(_templates_for(scene))))
    return prompt_for(scene, index)


def named_concepts(scene: Scene) -> set[str]:
    """The concepts a caption of ``scene`` names: every attribute of an object scene; for a
    character scene its name, background and position only (its captions never name its shape,
    colour or pattern). What the retrain oracle leaves out of its data is decided on these."""
    if scene.character is not None:
        return {scene.character, scene.background, scene.position}
    return {scene.object, scene.colour, scene.pattern, scene.background, scene.position}


def caption_words(text: str) -> list[str]:
    """Splits a caption into vocabulary words (commas removed, whitespace split)."""
    return text.replace(",", " ").split()


def _build_vocabulary() -> tuple[str, ...]:
    # Exhaustive over the finite scene space, so the vocabulary is exact by construction.
    words: set[str] = set()
    for scene in all_scenes():
        for index in range(len(_templates_for(scene))):
            words.update(caption_words(prompt_for(scene, index)))
    return tuple(sorted(words))


VOCABULARY: tuple[str, ...] = _build_vocabulary()


def vocabulary(version: int = 1) -> tuple[str, ...]:
    """The closed word list of a ToyWorld model version (version 2 adds synonyms and paraphrases)."""
    if check_version(version) == 1:
        return VOCABULARY
    return tuple(sorted(set(VOCABULARY) | extra_words()))


def caption_concepts(text: str, scene: Scene | None = None) -> set[str]:
    """The concepts a caption names, under any of their names (primary, synonym, paraphrase):
    its words' objects, colours, patterns, characters, backgrounds and positions, plus the
    scene's character when the caption describes that character by its parts."""
    words = caption_words(text)
    named = {c for c in map(concept_of_word, words) if c is not None}
    named |= {w for w in words if w in BACKGROUNDS or w in POSITIONS}
    if scene is not None and scene.character is not None:
        named.add(scene.character)
    return named


def with_names(scene: Scene, template_index: int, names: Mapping[str, str]) -> str:
    """An object-scene prompt from ``TEMPLATES[template_index]`` with some slots renamed
    (``names`` maps "object"/"colour"/"pattern" to the word to use)."""
    return format_template(TEMPLATES[template_index], scene, names)


def part_prompt(scene: Scene, template_index: int, names: Mapping[str, str] | None = None) -> str:
    """A character scene described by its parts (shape, colour, pattern and mark), no name."""
    if scene.character is None:
        raise ValueError(f"{scene} is not a character scene")
    mark = MARK_PHRASES[CHARACTER_SPECS[scene.character].mark]
    template = PART_TEMPLATES[template_index].replace("{mark}", mark)
    return format_template(template, scene, names or {}, as_parts=True)


def caption_v2(scene: Scene, rng: np.random.Generator) -> str:
    """A version-2 training caption: a version-1 template, each object/colour/pattern slot named
    by a synonym with probability SYNONYM_RATE, and a character described by its parts with
    probability PARAPHRASE_RATE."""
    names = {slot: _maybe_synonym(value, rng) for slot, value in
             (("object", scene.object), ("colour", scene.colour), ("pattern", scene.pattern))}
    if scene.character is not None and rng.random() < PARAPHRASE_RATE:
        return part_prompt(scene, int(rng.integers(len(PART_TEMPLATES))), names)
    if scene.character is not None:
        return prompt_for(scene, int(rng.integers(len(CHARACTER_TEMPLATES))))
    return with_names(scene, int(rng.integers(len(TEMPLATES))), names)


def _maybe_synonym(value: str, rng: np.random.Generator) -> str:
    words = SYNONYMS[value]
    if rng.random() < SYNONYM_RATE:
        return words[int(rng.integers(len(words)))]
    return value
