"""Tasks are data: sequences, concepts and prompt CSVs, validated on load.

Layout of one task folder (see ``tasks/README.md``)::

    tasks/<name>/sequence.yaml     name, version, model, judge, steps, retain sets, eval
    tasks/<name>/concepts.yaml     id, kind, name, anchor, related for every concept
    tasks/<name>/prompts/<id>.csv  split,prompt,mapped   (split: train | val | eval)

Every error names the file, the line and the key, and says how to fix it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from culbench import taskrules, yamlfile
from culbench.api import Concept, ForgetSet, PromptPair, RetainSet, UnlearnRequest
from culbench.errors import TaskError

ROLES = ("forget", "related", "general", "in_domain", "cross_domain", "related_held_out",
         "general_held_out")
# A concept listed under retain.in_domain/cross_domain (and also under general) gets the more
# specific role; general (far) retention averages over all three.
GENERAL_ROLES = ("general", "in_domain", "cross_domain")
# Scored but never given to a method: no prompt a method sees names them (``culbench.leaks``).
HELD_OUT_ROLES = ("related_held_out", "general_held_out")
SPLITS = ("train", "val", "eval")
_ID = r"^[a-z0-9][a-z0-9_\-]*$"


# -- schema ------------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ComponentSpec(_Strict):
    """A registry name plus keyword options, e.g. ``{backend: toyworld}``."""

    options: dict[str, Any] = Field(default_factory=dict)


class ModelSpec(ComponentSpec):
    backend: str


class JudgeSpec(ComponentSpec):
    name: str


class SamplerSpec(_Strict):
    steps: int = Field(ge=1, le=1000)
    guidance: float = Field(ge=0.0)


class ScorerSpec(ComponentSpec):
    name: str


class EvalSpec(_Strict):
    sampler: SamplerSpec
    seeds: list[int] = Field(min_length=1)
    prompts_per_concept: int | None = Field(default=None, ge=1)
    clip: ScorerSpec | None = None        # CLIP-score model (culbench.catalog.CLIP_SCORERS)
    reference: ScorerSpec | None = None   # real images for FID (culbench.catalog.REFERENCES)


class RetainSpec(_Strict):
    general: list[str] = Field(default_factory=list)
    in_domain: list[str] = Field(default_factory=list)
    cross_domain: list[str] = Field(default_factory=list)
    held_out: list[str] = Field(default_factory=list)  # far concepts scored, never given


class SequenceSpec(_Strict):
    name: str = Field(pattern=_ID)
    version: int = Field(ge=1)
    description: str
    citation: str | None = None
    model: ModelSpec
    judge: JudgeSpec
    concepts: str = "concepts.yaml"
    prompts: str = "prompts"
    steps: list[str] = Field(min_length=1)
    retain: RetainSpec = Field(default_factory=RetainSpec)
    eval: EvalSpec
    clean_prompts: bool = False  # refuse given prompts that name a forgotten or held-out concept
    orders: list[list[str]] = Field(default_factory=list)  # deletion orders; orders[0] == steps
    val_order: list[str] | None = None  # the order tuning uses (``culbench tune``)


class ConceptSpec(_Strict):
    id: str = Field(pattern=_ID)
    kind: str = Field(pattern=_ID)
    name: str = Field(min_length=1)
    anchor: str | None = None
    related: list[str] = Field(default_factory=list)
    held_out: list[str] = Field(default_factory=list)  # related concepts scored, never given


class ConceptFile(_Strict):
    concepts: list[ConceptSpec] = Field(min_length=1)


# -- loaded objects ----------------------------------------------------------------------
@dataclass(frozen=True)
class ConceptPrompts:
    """One concept's prompts by split; ``mapped`` is empty where the CSV has none."""

    train: tuple[PromptPair, ...]
    val: tuple[PromptPair, ...]
    eval: tuple[str, ...]


@dataclass(frozen=True)
class EvalItem:
    """One image to generate and judge: concept ``concept`` from ``prompt`` with ``seed``."""

    concept: str
    prompt_index: int
    prompt: str
    seed: int


@dataclass(frozen=True)
class TaskSequence:
    """A validated, versioned deletion sequence with its concepts and prompts."""

    spec: SequenceSpec
    path: Path
    concepts: dict[str, Concept]
    prompts: dict[str, ConceptPrompts]
    content_hash: str
    roles: dict[str, str] = field(default_factory=dict)
    held_out_of: dict[str, tuple[str, ...]] = field(default_factory=dict)  # forget id -> held-out related
    spread_seeds: bool = False  # val split: concepts with few prompts get more seeds each (eval_items)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def version(self) -> int:
        return self.spec.version

    @property
    def id(self) -> str:
        """``name@version``, the identity recorded in every result."""
        return f"{self.spec.name}@{self.spec.version}"

    @property
    def steps(self) -> list[str]:
        return list(self.spec.steps)

    @property
    def general_concepts(self) -> list[str]:
        """Far retain concepts: retain.general, in_domain and cross_domain, each once."""
        return [c for c, role in self.roles.items() if role in GENERAL_ROLES]

    @property
    def held_out_concepts(self) -> list[str]:
        """Concepts scored but never given to a method (held-out related and far)."""
        return [c for c, role in self.roles.items() if role in HELD_OUT_ROLES]

    @property
    def orders(self) -> list[list[str]]:
        """The sequence's deletion orders (``steps`` first); one order when none are declared."""
        return [list(o) for o in self.spec.orders] or [self.steps]

    def order_of_seed(self, seed: int) -> int:
        """The order a run with ``seed`` uses: ``seed mod len(orders)``, so that seeds 0..n-1 cover
        every order once."""
        return seed % len(self.orders)

    def in_order(self, order: int | list[str]) -> TaskSequence:
        """This sequence with its requests in another deletion order (an index into ``orders``, or
        ``"val"``-order list); roles, prompts and evaluation items keep their order and content."""
        steps = self.orders[order] if isinstance(order, int) else list(order)
        if steps == self.steps:
            return self
        return replace(self, spec=self.spec.model_copy(update={"steps": steps}))

    def with_split(self, split: str) -> TaskSequence:
        """This sequence evaluated on another prompt split: ``eval`` (the benchmark) or ``val``
        (hyper-parameter tuning: every concept's validation prompts stand in for its
        evaluation prompts, held-out concepts are not scored, and the requests come in the
        sequence's ``val_order`` when it declares one; seeds and profile limits are unchanged)."""
        if split == "eval":
            return self
        if split != "val":
            raise TaskError(f"unknown split '{split}'", "use --split eval (the benchmark) or val (tuning)")
        roles = {cid: role for cid, role in self.roles.items() if role not in HELD_OUT_ROLES}
        missing = [cid for cid in roles if not self.prompts[cid].val]
        if missing:
            raise TaskError(f"{self.id}: no 'val' prompts for {', '.join(missing)}",
                            "add rows with split=val to those prompt files")
        prompts = {cid: replace(p, eval=tuple(pair.prompt for pair in p.val)) if cid in roles else p
                   for cid, p in self.prompts.items()}
        tuned = replace(self, prompts=prompts, roles=roles, spread_seeds=True)
        return tuned.in_order(self.spec.val_order) if self.spec.val_order else tuned

    def request(self, step: int, *, simultaneous: bool = False) -> UnlearnRequest:
        """The ``step``-th (1-based) deletion request, with training prompts only.

        ``simultaneous``: one request erasing concepts 1..step at once from the base model (the
        reference row), with the related concepts of all of them and no history.
        """
        target = self.spec.steps[step - 1]

        def forget_set(cid: str) -> ForgetSet:
            anchor = self.concepts.get(self.concepts[cid].anchor or "")
            return ForgetSet(self.concepts[cid], self.prompts[cid].train, anchor)

        def retain_set(cid: str) -> RetainSet:
            return RetainSet(
                self.concepts[cid], tuple(pair.prompt for pair in self.prompts[cid].train)
            )

        forgotten = set(self.spec.steps[:step])
        sources = self.spec.steps[:step] if simultaneous else [target]
        related = [c for c in dict.fromkeys(r for s in sources for r in self.concepts[s].related) if c not in forgotten]
        general = [c for c in self.general_concepts if c not in forgotten]
        current = forget_set(target)
        return UnlearnRequest(
            step=step,
            target=current,
            related=tuple(retain_set(c) for c in related),
            general=tuple(retain_set(c) for c in general),
            previous=() if simultaneous else tuple(forget_set(c) for c in self.spec.steps[: step - 1]),
            anchor=current.anchor,
            targets=tuple(forget_set(c) for c in self.spec.steps[:step]) if simultaneous else (),
        )

    def eval_items(self, prompts_per_concept: int | None, seeds_per_prompt: int | None) -> list[EvalItem]:
        """The fixed prompt × seed list of every evaluated concept, in a stable order.

        Every concept gets ``prompts × seeds`` images. With ``spread_seeds`` (the validation split,
        where some concepts have fewer prompts than the profile asks for) a concept with fewer
        prompts fills its count with further seeds of the same prompts, up to the sequence's seeds.
        """
        seeds = self.spec.eval.seeds[:seeds_per_prompt]
        limit = prompts_per_concept or self.spec.eval.prompts_per_concept
        items = []
        for cid in self.roles:
            prompts = self.prompts[cid].eval[:limit]
            if self.spread_seeds and prompts:
                wanted = min((limit or len(prompts)) * len(seeds), len(prompts) * len(self.spec.eval.seeds))
                picks = sorted((j % len(prompts), j // len(prompts)) for j in range(wanted))
                items.extend(EvalItem(cid, i, prompts[i], self.spec.eval.seeds[s]) for i, s in picks)
                continue
            for index, prompt in enumerate(prompts):
                items.extend(EvalItem(cid, index, prompt, seed) for seed in seeds)
        return items


# -- loading -----------------------------------------------------------------------------
def _read_prompts(path: Path, needs_mapping: bool, eval_only: bool = False) -> ConceptPrompts:
    if not path.is_file():
        raise TaskError(f"{path}: prompt file not found", "add it with columns split,prompt,mapped")
    rows: dict[str, list[PromptPair]] = {split: [] for split in SPLITS}
    reader = csv.DictReader(io.StringIO(yamlfile.read_text(path), newline=""))
    if reader.fieldnames is None or not {"split", "prompt"} <= set(reader.fieldnames):
        raise TaskError(f"{path}:1: header must be 'split,prompt,mapped'", "fix the CSV header")
    for line, row in enumerate(reader, start=2):
        split = (row.get("split") or "").strip()
        prompt = (row.get("prompt") or "").strip()
        mapped = (row.get("mapped") or "").strip()
        if split not in SPLITS:
            raise TaskError(
                f"{path}:{line}: split '{split}' is not one of {', '.join(SPLITS)}",
                "fix the split column",
            )
        if not prompt:
            raise TaskError(f"{path}:{line}: empty prompt", "write a prompt or delete the row")
        if needs_mapping and split == "train" and not mapped:
            raise TaskError(
                f"{path}:{line}: forget prompt has no mapped prompt",
                "add the context-preserving mapped prompt in the 'mapped' column",
            )
        if mapped and mapped == prompt:
            raise TaskError(
                f"{path}:{line}: mapped prompt equals the prompt",
                "the mapped prompt must replace the concept",
            )
        rows[split].append(PromptPair(prompt, mapped))
    if eval_only and (rows["train"] or rows["val"]):
        raise TaskError(f"{path}: a held-out concept has train/val prompts",
                        "keep only split=eval rows: held-out concepts are scored, never given or tuned on")
    for split in ("eval",) if eval_only else ("train", "eval"):
        if not rows[split]:
            raise TaskError(f"{path}: no '{split}' prompts", f"add rows with split={split}")
    return ConceptPrompts(
        tuple(rows["train"]), tuple(rows["val"]), tuple(p.prompt for p in rows["eval"])
    )


def load_sequence(path: str | Path) -> TaskSequence:
    """Load and validate a sequence file with its concepts and prompts."""
    path = Path(path)
    if not path.is_file():  # the sequence file itself: _load_yaml's hint is for the files it names
        raise TaskError(
            f"sequence file {path} not found",
            "check the path: a task folder holds a sequence.yaml (built-in sequences: `culbench ls sequences`)",
        )
    spec, lines = yamlfile.parse(SequenceSpec, path)
    concept_path = (path.parent / spec.concepts).resolve()
    concept_file, concept_lines = yamlfile.parse(ConceptFile, concept_path)
    concepts: dict[str, Concept] = {}
    for index, c in enumerate(concept_file.concepts):
        if c.id in concepts:
            where = yamlfile.where(concept_path, concept_lines, ("concepts", index, "id"))
            raise TaskError(f"{where}: duplicate concept id '{c.id}'", "ids must be unique")
        concepts[c.id] = Concept(c.id, c.kind, c.name, c.anchor, tuple(c.related))
    known = set(concepts)
    taskrules.check_concepts(concept_path, concept_lines, concept_file.concepts, known)
    taskrules.check_steps(path, lines, spec, known)
    roles = taskrules.assign_roles(path, lines, spec, {c.id: c for c in concept_file.concepts})

    prompt_dir = (path.parent / spec.prompts).resolve()
    prompts = {
        cid: _read_prompts(prompt_dir / f"{cid}.csv", needs_mapping=roles[cid] == "forget",
                           eval_only=roles[cid] in HELD_OUT_ROLES)
        for cid in roles
    }
    files = [path, concept_path] + [prompt_dir / f"{cid}.csv" for cid in sorted(roles)]
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    held = {c.id: tuple(c.held_out) for c in concept_file.concepts if c.held_out}
    sequence = TaskSequence(spec, path, concepts, prompts, digest.hexdigest(), roles, held)
    if spec.clean_prompts:
        _check_clean(sequence, prompt_dir)
    return sequence


def _check_clean(sequence: TaskSequence, prompt_dir: Path) -> None:
    """Raise on the first prompt handed to a method that names a held-out concept or one
    forgotten by then (``culbench.leaks``), naming file, line and concept."""
    from culbench.leaks import find_leaks

    leaks = find_leaks(sequence)
    if leaks:
        first = leaks[0]
        csv_file = prompt_dir / f"{first.owner}.csv"
        text = yamlfile.read_text(csv_file).splitlines()
        line = next((i for i, row in enumerate(text, 1) if first.prompt in row), 1)
        why = ("a held-out concept" if first.step == 0 else
               f"forgotten by step {first.step} of order {first.order}")
        raise TaskError(f"{csv_file}:{line}: {first.kind} prompt '{first.prompt}' names '{first.named}', "
                        f"{why} ({len(leaks)} such prompts in all)",
                        "rewrite it without that concept (the sequence declares clean_prompts: true)")


def resolve_sequence(name_or_path: str) -> TaskSequence:
    """``"toy10"``, ``"toy10@1"`` or a path to a ``sequence.yaml`` -> a loaded sequence."""
    from culbench.catalog import SEQUENCES

    candidate = Path(name_or_path)
    if name_or_path.endswith((".yaml", ".yml")) or candidate.is_dir():
        file = candidate / "sequence.yaml" if candidate.is_dir() else candidate
        return load_sequence(file)
    from culbench.catalog import SEQUENCE_VERSIONS

    name, _, version = name_or_path.partition("@")
    newest = SEQUENCES.get(name)
    if not version:
        return load_sequence(newest)
    versions = SEQUENCE_VERSIONS.get(name, {})
    if not (re.fullmatch(r"\d+", version) and int(version) in versions):
        installed = ", ".join(f"{name}@{v}" for v in sorted(versions))
        raise TaskError(
            f"sequence {name}@{version} is not available (installed: {installed})",
            f"use one of those or install the culbench release that ships {name}@{version}",
        )
    return load_sequence(versions[int(version)])
