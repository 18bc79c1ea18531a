"""Concepts are put in each other's place by whole words (``culbench.api.substitute``) and found
in token rows by whole words (``culbench.api.token_span``), never by substring: toy10@1's UCE
guide prompts read "a green checkegreen tree" at the red → green step when they were built
with ``str.replace``. The last tests read every method file's syntax so that this cannot return."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from culbench.api import (
    Concept,
    ForgetSet,
    PromptPair,
    UnlearnRequest,
    mentions,
    substitute,
    token_span,
)
from culbench.catalog import builtin_dir
from culbench.models.tokenizer import word_tokenizer

WORDS = ["a", "the", "red", "green", "checkered", "tree", "star", "dark", "light", "left", "on",
         "redwood", "wood"]


def test_a_concept_is_substituted_as_a_word_not_inside_others() -> None:
    assert substitute("a red checkered tree", "red", "green") == "a green checkered tree"
    assert substitute("a red checkered tree", "checkered", "solid") == "a red solid tree"
    assert substitute("a checkered tree", "checker", "solid") == "a checkered tree"
    assert (substitute("a redwood, a red-hot red star", "red", "green")
            == "a redwood, a red-hot green star")
    assert substitute("a RED star. Red tree", "red", "green") == "a green star. Green tree"
    assert (substitute("a photo of Brad  Pitt smiling", "Brad Pitt", "a man")
            == "a photo of a man smiling")
    assert substitute("A dog, a wolf", "a dog", "an animal") == "An animal, a wolf"
    assert substitute("a red, checkered tree", "red", "") == "a checkered tree"
    assert substitute("a red tree", "", "green") == "a red tree"


@pytest.mark.parametrize("text,phrase,expected", [
    ("a red checkered tree", "red", range(2, 3)),
    ("a red checkered tree", "checkered", range(3, 4)),
    ("a checkered tree", "red", None),
    ("a redwood tree", "wood", None),
    ("a dark red tree", "dark red", range(2, 4)),
])
def test_token_span_with_the_word_level_tokenizer(text: str, phrase: str,
                                                   expected: range | None) -> None:
    assert token_span(word_tokenizer(WORDS), text, phrase) == expected


def test_token_span_is_word_level_under_a_bpe_tokenizer(tmp_path: Path) -> None:
    """The SD tier's CLIP BPE (character-level in the tiny test model): the ids of ``wood`` occur
    inside ``redwood``'s, yet ``wood`` is not named there; ``after`` skips earlier mentions."""
    from transformers import CLIPTokenizer

    from tests.helpers.tiny_sd import write_tiny_sd

    tok = CLIPTokenizer.from_pretrained(str(write_tiny_sd(tmp_path / "sd")), subfolder="tokenizer")
    wood = tok("wood", add_special_tokens=False).input_ids
    ids = tok("a redwood tree").input_ids
    assert any(ids[i:i + len(wood)] == wood for i in range(len(ids)))  # a substring match finds it
    assert token_span(tok, "a redwood tree", "wood") is None
    span = token_span(tok, "a red wood", "wood")
    assert span is not None and tok("a red wood").input_ids[span.start:span.stop] == wood
    assert token_span(tok, "green star, green tree", "green") == range(1, 6)  # 5 letters, 5 tokens
    assert token_span(tok, "green star, green tree", "green", after=2) == range(11, 16)


class _RecordingModel:
    """What UCE's erase rows need of a model (a tokenizer and ``encode``), recording the prompts."""

    def __init__(self) -> None:
        import torch

        self.tokenizer = word_tokenizer(WORDS + ["checkegreen"])
        self.encoded: list[str] = []
        self._torch = torch

    def encode(self, prompts: list[str]):
        """Row j of a prompt of n characters holds 100 n + j (rows of "": 0, 1, ...)."""
        self.encoded += prompts
        rows = self._torch.arange(self.tokenizer.model_max_length, dtype=self._torch.float32)
        return self._torch.stack([(rows + 100 * len(p))[:, None].expand(-1, 4) for p in prompts])


def _red_request() -> UnlearnRequest:
    red = Concept("red", "colour", "red", anchor="green")
    prompts = ("a red checkered tree", "a checkered red star", "red tree on the left")
    pairs = tuple(PromptPair(p, p) for p in prompts)
    green = Concept("green", "colour", "green")
    return UnlearnRequest(step=1, target=ForgetSet(red, pairs, anchor=green))


def test_uce_guide_prompts_replace_the_word_only() -> None:
    from culbench.catalog import METHODS

    uce = METHODS.get("uce")(METHODS.get("uce").Config())
    model, request = _RecordingModel(), _red_request()
    erase, guide = uce._erase_pairs(model, request.concept, list(request.target.prompts), "green")
    assert len(erase) == len(guide) == 6
    guides = {"a green checkered tree", "a checkered green star", "green tree on the left"}
    assert guides <= set(model.encoded)
    assert not any("checkegreen" in p for p in model.encoded)


@pytest.mark.parametrize("guide,row", [("null", 1.0), ("start", 0.0)])
def test_uce_null_guides_are_rows_of_the_empty_prompt(guide: str, row: float) -> None:
    """``null``: the end-of-text row of ""; ``start``: its start-token row, as the reference."""
    from culbench.catalog import METHODS

    uce = METHODS.get("uce")(METHODS.get("uce").Config(guide=guide))
    request = _red_request()
    prompts = list(request.target.prompts)
    _, rows = uce._erase_pairs(_RecordingModel(), request.concept, prompts, None)
    assert {float(r[0]) for r in rows} == {row}


def test_dfr_fixed_mapping_replaces_the_word_only() -> None:
    from culbench.catalog import METHODS

    dfr = METHODS.get("dfr")(METHODS.get("dfr").Config(mapping="fixed"))
    mapped = dfr._mapped(_red_request())
    assert mapped == ["a green checkered tree", "a checkered green star", "green tree on the left"]
    assert all(mentions(m, "green") and not mentions(m, "red") for m in mapped)


# -- no method builds prompts by substring replacement -------------------------------------
def _substring_replacements(source: str) -> list[str]:
    """``x.replace(a, b)`` and ``re.sub(a, b, x)`` calls whose ``a`` is not a string literal
    (a concept's name, an anchor...): prompts must go through ``culbench.api.substitute``.
    ``dataclasses.replace`` (keyword arguments) is not a string replacement."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args):
            continue
        receiver = ast.unparse(node.func.value)
        if isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            continue  # a literal: punctuation, a template field, not a concept
        str_replace = (node.func.attr == "replace" and receiver != "dataclasses"
                       and not node.keywords)
        if str_replace or (node.func.attr in ("sub", "subn") and receiver == "re"):
            found.append((node.lineno, ast.unparse(node)))
    return [text for _, text in sorted(found)]


@pytest.mark.parametrize("path", sorted(builtin_dir("methods").glob("*.py")), ids=lambda p: p.name)
def test_method_files_substitute_concepts_by_word(path: Path) -> None:
    found = _substring_replacements(path.read_text(encoding="utf-8"))
    assert not found, f"{path.name}: {found}: put concepts in place with culbench.api.substitute"


def test_the_checker_catches_substring_replacement() -> None:
    bad = ("g = prompt.replace(concept.name, anchor)\n"
           "h = [p.prompt.replace(t.concept.name, n) for n in names]\n"
           "import re\nk = re.sub(name, 'x', prompt)\n")
    assert _substring_replacements(bad) == ["prompt.replace(concept.name, anchor)",
                                            "p.prompt.replace(t.concept.name, n)",
                                            "re.sub(name, 'x', prompt)"]
    fine = ("import dataclasses\nw = text.replace(',', ' ')\n"
            "r = dataclasses.replace(req, previous=())\n"
            "s = substitute(prompt, concept.name, anchor)\n")
    assert _substring_replacements(fine) == []
