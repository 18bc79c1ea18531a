"""What a deletion request carries: the concept to forget with its prompts, the concepts to keep,
and the requests already served; and word-level matching of a concept's name in a prompt
(:func:`mentions`, :func:`substitute`, :func:`token_span`, :func:`concept_positions`). Methods see these through
:mod:`culbench.api`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Concept:
    """A concept of the task.

    Attributes:
        id: stable identifier, e.g. ``"red"`` or ``"van_gogh_style"``.
        kind: ``object``, ``colour``, ``pattern``, ``character``, ``style``, ``identity``, ...
        name: the words used for it in prompts, e.g. ``"red"`` or ``"Van Gogh"``.
        anchor: the concept a *fixed* mapping steers towards (e.g. ``"circle"``), if any.
        related: ids of confusable concepts (near retention set).
    """

    id: str
    kind: str
    name: str
    anchor: str | None = None
    related: tuple[str, ...] = ()


@dataclass(frozen=True)
class PromptPair:
    """A forget prompt and its context-preserving mapped prompt.

    Example: ``PromptPair("a red star on the left", "a red circle on the left")``.
    """

    prompt: str
    mapped: str


@dataclass(frozen=True)
class ForgetSet:
    """A concept to forget with its training prompts (never the evaluation prompts)."""

    concept: Concept
    pairs: tuple[PromptPair, ...]
    anchor: Concept | None = None  # the concept's anchor (target of a fixed mapping), if declared

    @property
    def prompts(self) -> tuple[str, ...]:
        return tuple(pair.prompt for pair in self.pairs)


@dataclass(frozen=True)
class RetainSet:
    """A concept to keep with its training prompts."""

    concept: Concept
    prompts: tuple[str, ...]


@dataclass(frozen=True)
class UnlearnRequest:
    """One deletion request of a sequence.

    Attributes:
        step: 1-based position in the sequence.
        target: the concept to forget now, with forget/mapped prompt pairs.
        related: confusable concepts to keep (near retention), with prompts.
        general: far concepts to keep (general retention), with prompts.
        previous: the requests already served, oldest first (for methods that re-visit them).
        anchor: the concept's anchor (the target of a *fixed* mapping), if it declares one.
        targets: every concept to erase in this request when there are several (the
            ``simultaneous`` reference mode erases concepts 1..k at once); empty = ``(target,)``.
            Methods that handle one concept at a time should iterate over :attr:`all_targets`.
    """

    step: int
    target: ForgetSet
    related: tuple[RetainSet, ...] = ()
    general: tuple[RetainSet, ...] = ()
    previous: tuple[ForgetSet, ...] = ()
    anchor: Concept | None = None
    targets: tuple[ForgetSet, ...] = ()

    @property
    def concept(self) -> Concept:
        """The concept being forgotten now (the newest one when there are several)."""
        return self.target.concept

    @property
    def all_targets(self) -> tuple[ForgetSet, ...]:
        """Every concept to erase in this request (usually just ``target``)."""
        return self.targets or (self.target,)

    @property
    def forget(self) -> tuple[PromptPair, ...]:
        """Forget prompts paired with their context-preserving mapped prompts (all targets)."""
        return tuple(pair for target in self.all_targets for pair in target.pairs)

    def retain_prompts(self, which: str = "all") -> list[str]:
        """Flattened retain prompts: ``"related"``, ``"general"`` or ``"all"``."""
        sets = {"related": self.related, "general": self.general}
        chosen = self.related + self.general if which == "all" else sets[which]
        return [prompt for retain in chosen for prompt in retain.prompts]


def _word_pattern(phrase: str) -> re.Pattern[str]:
    words = [re.escape(w) for w in phrase.split()]
    return re.compile(r"(?<![\w-])" + r"\s+".join(words) + r"(?![\w-])", re.IGNORECASE)


def mentions(text: str, phrase: str) -> bool:
    """Whether ``text`` names ``phrase`` as whole words (case-insensitive).

    >>> mentions("a red checkered tree", "red"), mentions("a checkered tree", "checker")
    (True, False)
    >>> mentions("a Van  Gogh style", "van gogh"), mentions("a redwood", "red")
    (True, False)
    """
    return bool(phrase.strip()) and _word_pattern(phrase).search(text) is not None


def substitute(text: str, phrase: str, replacement: str) -> str:
    """``text`` with every whole-word occurrence of ``phrase`` replaced by ``replacement``.

    The one way methods put another concept in a concept's place (guide, mapped and candidate
    prompts): whole words only, case-insensitive, any run of spaces between a multi-word
    phrase's words, punctuation and hyphens respected (``red`` is not replaced in ``redwood``,
    ``checkered`` or ``red-hot``). ``replacement`` is literal text; it takes a capital first
    letter where it replaces a capitalised phrase at the start of a sentence. An empty
    replacement drops the phrase and tidies the spaces and commas it leaves. An empty
    ``phrase`` names nothing: ``text`` is returned unchanged.

    >>> substitute("a red checkered tree", "red", "green")
    'a green checkered tree'
    >>> substitute("a red checkered tree", "checker", "dotted")
    'a red checkered tree'
    >>> substitute("Red star, red-hot, redwood. Red tree", "red", "green")
    'Green star, red-hot, redwood. Green tree'
    >>> substitute("A dog on a beach with a   Dog", "a dog", "an animal")
    'An animal on a beach with an animal'
    >>> substitute("a red, checkered tree", "red", "")
    'a checkered tree'
    >>> substitute("a Van Gogh style sky", "van gogh style", r"a \\1 style")
    'a a \\\\1 style sky'
    """
    if not phrase.strip():
        return text

    def replace(match: re.Match[str]) -> str:
        before = text[: match.start()].rstrip()
        starts_sentence = not before or before.endswith((".", "!", "?"))
        if replacement and starts_sentence and match.group(0)[0].isupper():
            return replacement[0].upper() + replacement[1:]
        return replacement

    if replacement:
        return _word_pattern(phrase).sub(replace, text)
    # dropped: the phrase goes with the spaces and the comma after it ("a red, dotted" → "a dotted")
    out = re.sub(r"\s*\x00[,;:]?\s*", " ", _word_pattern(phrase).sub("\x00", text))
    return re.sub(r"\s+([,.;:!?])", r"\1", out).strip(" ,;:")


def token_span(tokenizer: Any, text: str, phrase: str, after: int = 0) -> range | None:
    """Token positions of ``phrase`` in ``text`` as ``tokenizer(text)`` encodes it (start token
    included), for the first whole-word occurrence (:func:`mentions`) starting at token
    ``after`` or later; ``None`` if there is none or truncation cut it off.

    The token-level counterpart of :func:`substitute` for methods that edit token rows (UCE):
    a match of the phrase's token ids anywhere in the prompt's would also find ``wood`` inside
    ``redwood`` under a BPE tokenizer, this does not. It assumes, as CLIP's BPE and culbench's
    word-level tokenizer do, that tokens never span a space.
    """
    if not phrase.strip():
        return None
    ids = list(tokenizer(text, truncation=True, max_length=tokenizer.model_max_length).input_ids)
    offset = 1 if ids and ids[0] == getattr(tokenizer, "bos_token_id", None) else 0
    end_limit = len(ids) - (1 if ids and ids[-1] == getattr(tokenizer, "eos_token_id", None) else 0)

    def count(part: str) -> int:
        return len(tokenizer(part, add_special_tokens=False).input_ids)

    for match in _word_pattern(phrase).finditer(text):
        start = offset + count(text[: match.start()])
        stop = start + count(match.group(0))
        if start < after:
            continue
        if stop > end_limit:
            return None
        return range(start, stop)
    return None


def end_of_text(tokenizer: Any, text: str) -> int:
    """Position of the end-of-text token in ``tokenizer(text)`` (the last position where truncation
    cut it off): the row that, in a causal text encoder, has read the whole prompt."""
    ids = list(tokenizer(text, truncation=True, max_length=tokenizer.model_max_length).input_ids)
    eos = getattr(tokenizer, "eos_token_id", None)
    return ids.index(eos, 1) if eos in ids[1:] else len(ids) - 1


def concept_positions(tokenizer: Any, text: str, phrase: str, after: int = 0) -> tuple[list[int], int] | None:
    """The token positions of ``phrase`` in ``text`` (:func:`token_span`, from token ``after`` on)
    and the position of the end-of-text token (:func:`end_of_text`); ``None`` where the phrase is
    not found. The rows a method that edits or steers a concept's tokens acts on (UCE, FMN, CURE)."""
    span = token_span(tokenizer, text, phrase, after)
    return None if span is None else (list(span), end_of_text(tokenizer, text))
