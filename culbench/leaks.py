"""Prompts handed to a method that name a concept it must not see: at step k, a mapped or retain
prompt that names a concept forgotten at steps 1..k (by whole words, :func:`culbench.api.mentions`).

A sequence that declares ``clean_prompts: true`` refuses to load with any such prompt; for others
``culbench tasks validate`` counts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from culbench.request import mentions


@dataclass(frozen=True)
class Leak:
    """One prompt given at ``step`` (as a ``mapped`` or ``retain`` prompt of ``owner``'s file) that
    names ``named``, a concept forgotten by then."""

    step: int
    kind: str
    owner: str
    prompt: str
    named: str

    def line(self) -> str:
        return f"step {self.step}: {self.kind} prompt '{self.prompt}' ({self.owner}.csv) names '{self.named}'"


def find_leaks(seq: Any) -> list[Leak]:
    """Every leak of ``seq`` (a :class:`culbench.tasks.TaskSequence`), step by step."""
    leaks = []
    for step in range(1, len(seq.steps) + 1):
        request = seq.request(step)
        gone = [seq.concepts[c] for c in seq.steps[:step]]
        given = [("mapped", t.concept.id, p.mapped) for t in request.all_targets for p in t.pairs if p.mapped]
        given += [("retain", r.concept.id, p) for r in request.related + request.general for p in r.prompts]
        for kind, owner, prompt in given:
            leaks += [Leak(step, kind, owner, prompt, c.id) for c in gone if mentions(prompt, c.name)]
    return leaks


def given_prompts(seq: Any) -> int:
    """How many mapped and retain prompts the sequence hands to methods over all its steps."""
    total = 0
    for step in range(1, len(seq.steps) + 1):
        request = seq.request(step)
        total += len(request.forget) + len(request.retain_prompts("all"))
    return total
