"""The structural rules of a sequence's files, checked on load by :func:`culbench.tasks.load_sequence`:
concept ids exist, steps and orders list each forget concept once, a concept has one role
(forgotten, retained and given, or held out), and every concept's role.

Each error names the file, line and key, and says how to fix it. Whether a prompt names a
concept it must not is ``culbench.leaks``'s question.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from culbench import yamlfile
from culbench.errors import TaskError

Lines = dict[tuple[Any, ...], int]
RETAIN_KEYS = ("general", "in_domain", "cross_domain")


def check_ids(path: Path, lines: Lines, loc: tuple[Any, ...], ids: list[str], known: set[str]) -> None:
    """Raise on the first id in ``ids`` that is not a defined concept (with a close match)."""
    for index, cid in enumerate(ids):
        if cid not in known:
            close = difflib.get_close_matches(cid, sorted(known), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise TaskError(
                f"{yamlfile.where(path, lines, loc + (index,))}: {yamlfile.dotted(loc + (index,))}: "
                f"unknown concept '{cid}'{hint}",
                "define it in the concepts file or fix the id",
            )


def check_concepts(path: Path, lines: Lines, concept_specs: list[Any], known: set[str]) -> None:
    """Every ``related``, ``held_out`` and ``anchor`` of the concepts file names a concept; no
    concept is both a given and a held-out related concept of the same forget concept."""
    for index, c in enumerate(concept_specs):
        check_ids(path, lines, ("concepts", index, "related"), c.related, known)
        check_ids(path, lines, ("concepts", index, "held_out"), c.held_out, known)
        if c.anchor is not None:
            check_ids(path, lines, ("concepts", index, "anchor"), [c.anchor], known)
        both = set(c.related) & set(c.held_out)
        if both:
            raise TaskError(f"{yamlfile.where(path, lines, ('concepts', index, 'held_out'))}: "
                            f"{sorted(both)} both related (given) and held out",
                            "a held-out concept is never given to a method: list it in one place")


def check_steps(path: Path, lines: Lines, spec: Any, known: set[str]) -> None:
    """Steps, orders and retain sets name known concepts; steps/orders are permutations of each
    other; no forget concept is retained; eval seeds are distinct."""
    check_ids(path, lines, ("steps",), spec.steps, known)
    for key in (*RETAIN_KEYS, "held_out"):
        check_ids(path, lines, ("retain", key), getattr(spec.retain, key), known)
    if len(set(spec.steps)) != len(spec.steps):
        raise TaskError(f"{yamlfile.where(path, lines, ('steps',))}: steps repeat a concept", "list each once")
    orders = [("orders", i) for i in range(len(spec.orders))] + ([("val_order",)] if spec.val_order else [])
    for loc in orders:
        order = spec.orders[loc[1]] if loc[0] == "orders" else spec.val_order
        if sorted(order) != sorted(spec.steps) or len(order) != len(spec.steps):
            raise TaskError(f"{yamlfile.where(path, lines, loc)}: {yamlfile.dotted(loc)} is not an order of "
                            f"the steps", "list every concept of `steps` exactly once")
    if spec.orders and spec.orders[0] != spec.steps:
        raise TaskError(f"{yamlfile.where(path, lines, ('orders', 0))}: orders[0] differs from steps",
                        "the first order is the one `steps` lists")
    for key in (*RETAIN_KEYS, "held_out"):
        clash = set(spec.steps) & set(getattr(spec.retain, key))
        if clash:
            raise TaskError(
                f"{yamlfile.where(path, lines, ('retain', key))}: retain.{key} contains forget "
                f"concept(s) {sorted(clash)}",
                "a concept is either forgotten or retained",
            )
    if len(set(spec.eval.seeds)) != len(spec.eval.seeds):
        raise TaskError(f"{yamlfile.where(path, lines, ('eval', 'seeds'))}: eval.seeds repeat", "make them distinct")


def assign_roles(path: Path, lines: Lines, spec: Any, concept_specs: dict[str, Any]) -> dict[str, str]:
    """Each evaluated concept's role, in evaluation order: forget concepts (in ``steps`` order),
    their related concepts, their held-out related concepts, the far retain sets, the far held-out
    set. A held-out concept must not be forgotten or given in any other role."""
    roles: dict[str, str] = {cid: "forget" for cid in spec.steps}
    given = {rid for cid in spec.steps for rid in concept_specs[cid].related}
    given |= {cid for key in RETAIN_KEYS for cid in getattr(spec.retain, key)}
    held = {rid for cid in spec.steps for rid in concept_specs[cid].held_out} | set(spec.retain.held_out)
    for cid in sorted(held & (given | set(spec.steps))):
        raise TaskError(f"{path}: concept '{cid}' is held out and also forgotten or given to methods",
                        "a held-out concept is scored only: remove it from steps, related and retain")
    for cid in spec.steps:
        for rid in concept_specs[cid].related:
            roles.setdefault(rid, "related")
    for cid in spec.steps:
        for rid in concept_specs[cid].held_out:
            roles.setdefault(rid, "related_held_out")
    for cid in [*spec.retain.general, *spec.retain.in_domain, *spec.retain.cross_domain]:
        if cid not in roles:  # first mention fixes the order of evaluation
            roles[cid] = ("in_domain" if cid in spec.retain.in_domain else
                          "cross_domain" if cid in spec.retain.cross_domain else "general")
    for cid in spec.retain.held_out:
        roles.setdefault(cid, "general_held_out")
    return roles
