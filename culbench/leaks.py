"""Prompts a method must not see: in any deletion order of the sequence, at step k,

* a forget, mapped, retain or replayed prompt that names a concept forgotten at steps 1..k
  (a forget prompt may name its own concept; a replayed earlier request's prompts too), and
* any prompt given to a method or used for tuning (train and val splits) that names a
  *held-out* concept (scored only, ``culbench.tasks.HELD_OUT_ROLES``),

by whole words (:func:`culbench.api.mentions`). A sequence that declares ``clean_prompts: true``
refuses to load with any such prompt; for others ``culbench tasks validate --leaks`` lists them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from culbench.request import mentions

GIVEN_KINDS = ("forget", "mapped", "retain")


@dataclass(frozen=True)
class Leak:
    """One prompt of ``owner``'s file (as its ``kind`` prompt) that names ``named``: a concept
    forgotten by ``step`` of deletion order ``order``, or (step 0) a held-out concept."""

    step: int
    kind: str
    owner: str
    prompt: str
    named: str
    order: int = 0

    def line(self) -> str:
        when = "held out" if self.step == 0 else f"order {self.order}, step {self.step}"
        return f"{when}: {self.kind} prompt '{self.prompt}' ({self.owner}.csv) names '{self.named}'"


class _Names:
    """Which concepts each prompt names, computed once per distinct prompt."""

    def __init__(self, seq: Any) -> None:
        self.concepts = [(cid, c.name) for cid, c in seq.concepts.items()]
        self.cache: dict[str, frozenset[str]] = {}

    def __call__(self, prompt: str) -> frozenset[str]:
        if prompt not in self.cache:
            self.cache[prompt] = frozenset(cid for cid, name in self.concepts if mentions(prompt, name))
        return self.cache[prompt]


def _given(request: Any) -> Iterator[tuple[str, str, str, str | None]]:
    """``(kind, owner, prompt, allowed)`` for every prompt of a request; ``allowed`` is the one
    forgotten concept the prompt may name (a forget prompt's own concept)."""
    for target in (*request.previous, *request.all_targets):
        for pair in target.pairs:
            yield "forget", target.concept.id, pair.prompt, target.concept.id
            if pair.mapped:
                yield "mapped", target.concept.id, pair.mapped, None
    for retain in request.related + request.general:
        for prompt in retain.prompts:
            yield "retain", retain.concept.id, prompt, None


def _order_leaks(seq: Any, order: int, names: _Names) -> list[Leak]:
    leaks: list[Leak] = []
    seen: set[tuple[str, str, str, str]] = set()
    for step in range(1, len(seq.steps) + 1):
        gone = set(seq.steps[:step])
        for kind, owner, prompt, allowed in _given(seq.request(step)):
            for cid in sorted((names(prompt) & gone) - {allowed}):
                key = (kind, owner, prompt, cid)
                if key not in seen:  # report a prompt at the first step it leaks
                    seen.add(key)
                    leaks.append(Leak(step, kind, owner, prompt, cid, order))
    return leaks


def _held_out_leaks(seq: Any, names: _Names) -> list[Leak]:
    held = set(seq.held_out_concepts)
    leaks = []
    for owner, prompts in seq.prompts.items():
        if owner in held:  # its own file holds eval prompts only (the loader checks)
            continue
        kind = "forget" if seq.roles.get(owner) == "forget" else "retain"
        for split, pairs in (("train", prompts.train), ("val", prompts.val)):
            for pair in pairs:
                for what, text in ((kind, pair.prompt), ("mapped", pair.mapped)):
                    leaks += [Leak(0, f"{split} {what}", owner, text, cid)
                              for cid in sorted(names(text) & held)] if text else []
    return leaks


def find_leaks(seq: Any) -> list[Leak]:
    """Every leak of ``seq`` (a :class:`culbench.tasks.TaskSequence`): held-out ones first, then
    order by order, step by step."""
    names = _Names(seq)
    leaks = _held_out_leaks(seq, names)
    orders = seq.orders + ([seq.spec.val_order] if seq.spec.val_order else [])
    for index, order in enumerate(orders):
        leaks += _order_leaks(seq.in_order(order), index, names)
    return leaks


def given_prompts(seq: Any) -> int:
    """How many forget, mapped and retain prompts the sequence hands to methods over all its steps
    (in its first order)."""
    total = 0
    for step in range(1, len(seq.steps) + 1):
        total += sum(1 for _ in _given(seq.request(step)))
    return total
