"""ToyWorld's words per model version: synonyms, character paraphrases and the vocabulary.

Model version 1 captions name every concept by its primary name (``data.caption``). Version 2
captions (``captions.caption_v2``) also use other words for the same concept, so that the model knows a
concept under more than one name (what a synonym or paraphrase attack on an unlearned model
probes): two synonyms per object, colour and pattern, and characters described by their parts
("a green circle with eyes" is zorb). The images are the same in both versions; only the
captions differ.

>>> SYNONYMS["red"]
('crimson', 'scarlet')
>>> concept_of_word("scarlet"), concept_of_word("red"), concept_of_word("background")
('red', 'red', None)
"""

from __future__ import annotations

from culbench.toyworld.render import CHARACTER_SPECS, COLOURS, OBJECTS, PATTERNS

MODEL_VERSIONS: tuple[int, ...] = (1, 2)

# Two other words per object, colour and pattern; none is a word of another concept or of the
# version-1 vocabulary (checked by tests/test_toyworld_lexicon.py).
SYNONYMS: dict[str, tuple[str, ...]] = {
    # objects
    "circle": ("disc", "orb"), "square": ("box", "block"), "triangle": ("wedge", "delta"),
    "star": ("starburst", "pentagram"), "heart": ("valentine", "locket"),
    "cross": ("plus", "crosslet"), "ring": ("hoop", "loop"), "moon": ("crescent", "lune"),
    "diamond": ("rhombus", "lozenge"), "hexagon": ("hex", "honeycomb"),
    "arrow": ("pointer", "dart"), "house": ("hut", "cottage"), "bolt": ("lightning", "zigzag"),
    "tree": ("pine", "fir"),
    # colours
    "red": ("crimson", "scarlet"), "orange": ("tangerine", "amber"), "yellow": ("golden", "lemon"),
    "green": ("emerald", "lime"), "blue": ("azure", "cobalt"), "purple": ("violet", "lilac"),
    "pink": ("rose", "magenta"), "brown": ("chocolate", "tan"),
    # patterns
    "solid": ("plain", "filled"), "striped": ("banded", "stripy"), "dotted": ("spotted", "polkadot"),
    "checkered": ("chequered", "gridded"), "outlined": ("hollow", "rimmed"),
}
# How a paraphrase names a character's mark.
MARK_PHRASES: dict[str, str] = {
    "eyes": "with eyes", "mouth": "with a mouth", "hat": "with a hat", "sash": "with a sash",
    "antennae": "with antennae", "spot": "with a spot",
}
# A character described by its parts instead of its name (fields as data.TEMPLATES plus mark).
PART_TEMPLATES: tuple[str, ...] = (
    "a {colour} {pattern_or_blank} {object} {mark} on a {background} background, {position}",
    "a picture of a {colour} {pattern_or_blank} {object} {mark}, {position}, {background} background",
)
SYNONYM_RATE = 0.4    # chance that a version-2 caption names an object/colour/pattern by a synonym
PARAPHRASE_RATE = 0.3  # chance that a version-2 character caption describes it by its parts

_WORD_TO_CONCEPT: dict[str, str] = {
    **{name: name for name in (*OBJECTS, *COLOURS, *PATTERNS, *CHARACTER_SPECS)},
    **{word: concept for concept, words in SYNONYMS.items() for word in words},
}


def concept_of_word(word: str) -> str | None:
    """The object, colour, pattern or character a caption word names (primary name or synonym)."""
    return _WORD_TO_CONCEPT.get(word.lower())


def mark_of_words(words: list[str]) -> str | None:
    """The character mark a caption's words describe ("... with a hat" → "hat"), or None."""
    found = [mark for mark in MARK_PHRASES if mark in words]
    return found[0] if len(found) == 1 else None


def extra_words() -> set[str]:
    """Words version 2 adds to the version-1 vocabulary."""
    words = {w for synonyms in SYNONYMS.values() for w in synonyms}
    words |= {w for phrase in MARK_PHRASES.values() for w in phrase.split()}
    for template in PART_TEMPLATES:
        words |= {w for w in template.replace(",", " ").split() if not w.startswith("{")}
    return words


def check_version(version: int) -> int:
    """``version`` if ToyWorld has that model version; else a one-line error naming the choices."""
    from culbench.errors import ConfigError

    if version not in MODEL_VERSIONS:
        raise ConfigError(f"ToyWorld has no model version {version!r}",
                          f"use one of {', '.join(map(str, MODEL_VERSIONS))}")
    return version
