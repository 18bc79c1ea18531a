"""Tasks are data: sequences, concepts and prompt CSVs, validated on load.

Layout of one task folder (see ``tasks/README.md``)::

    tasks/<name>/sequence.yaml     name, version, model, judge, steps, retain sets, eval
    tasks/<name>/concepts.yaml     id, kind, name, anchor, related for every concept
    tasks/<name>/prompts/<id>.csv  split,prompt,mapped   (split: train | val | eval)

Every error names the file, the line and the key, and says how to fix it.
"""

from __future__ import annotations

import csv
import difflib
import io
import hashlib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from culbench.api import Concept, ForgetSet, PromptPair, RetainSet, UnlearnRequest
from culbench import yamlfile
from culbench.errors import TaskError

ROLES = ("forget", "related", "general", "in_domain", "cross_domain")
# A concept listed under retain.in_domain/cross_domain (and also under general) gets the more
# specific role; general (far) retention averages over all three.
GENERAL_ROLES = ("general", "in_domain", "cross_domain")
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
    clean_prompts: bool = False  # refuse mapped/retain prompts that name a concept forgotten by then


class ConceptSpec(_Strict):
    id: str = Field(pattern=_ID)
    kind: str = Field(pattern=_ID)
    name: str = Field(min_length=1)
    anchor: str | None = None
    related: list[str] = Field(default_factory=list)


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

    def with_split(self, split: str) -> TaskSequence:
        """This sequence evaluated on another prompt split: ``eval`` (the benchmark) or ``val``
        (hyper-parameter tuning: every concept's validation prompts stand in for its
        evaluation prompts; seeds and profile limits are unchanged)."""
        if split == "eval":
            return self
        if split != "val":
            raise TaskError(f"unknown split '{split}'", "use --split eval (the benchmark) or val (tuning)")
        missing = [cid for cid in self.roles if not self.prompts[cid].val]
        if missing:
            raise TaskError(f"{self.id}: no 'val' prompts for {', '.join(missing)}",
                            "add rows with split=val to those prompt files")
        prompts = {cid: replace(p, eval=tuple(pair.prompt for pair in p.val)) if cid in self.roles else p
                   for cid, p in self.prompts.items()}
        return replace(self, prompts=prompts)

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
        """The fixed prompt × seed list of every evaluated concept, in a stable order."""
        seeds = self.spec.eval.seeds[:seeds_per_prompt]
        limit = prompts_per_concept or self.spec.eval.prompts_per_concept
        items = []
        for cid in self.roles:
            for index, prompt in enumerate(self.prompts[cid].eval[:limit]):
                items.extend(EvalItem(cid, index, prompt, seed) for seed in seeds)
        return items


# -- loading -----------------------------------------------------------------------------
def _read_prompts(path: Path, needs_mapping: bool) -> ConceptPrompts:
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
    for split in ("train", "eval"):
        if not rows[split]:
            raise TaskError(f"{path}: no '{split}' prompts", f"add rows with split={split}")
    return ConceptPrompts(
        tuple(rows["train"]), tuple(rows["val"]), tuple(p.prompt for p in rows["eval"])
    )


def _check_ids(
    path: Path, lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...], ids: list[str], known: set[str]
) -> None:
    for index, cid in enumerate(ids):
        if cid not in known:
            close = difflib.get_close_matches(cid, sorted(known), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise TaskError(
                f"{yamlfile.where(path, lines, loc + (index,))}: {yamlfile.dotted(loc + (index,))}: "
                f"unknown concept '{cid}'{hint}",
                "define it in the concepts file or fix the id",
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
    for index, c in enumerate(concept_file.concepts):
        _check_ids(concept_path, concept_lines, ("concepts", index, "related"), c.related, known)
        if c.anchor is not None:
            _check_ids(concept_path, concept_lines, ("concepts", index, "anchor"), [c.anchor], known)
    _check_ids(path, lines, ("steps",), spec.steps, known)
    for key in ("general", "in_domain", "cross_domain"):
        _check_ids(path, lines, ("retain", key), getattr(spec.retain, key), known)
    if len(set(spec.steps)) != len(spec.steps):
        raise TaskError(f"{yamlfile.where(path, lines, ('steps',))}: steps repeat a concept", "list each once")
    for key in ("general", "in_domain", "cross_domain"):
        clash = set(spec.steps) & set(getattr(spec.retain, key))
        if clash:
            raise TaskError(
                f"{yamlfile.where(path, lines, ('retain', key))}: retain.{key} contains forget "
                f"concept(s) {sorted(clash)}",
                "a concept is either forgotten or retained",
            )
    if len(set(spec.eval.seeds)) != len(spec.eval.seeds):
        raise TaskError(f"{yamlfile.where(path, lines, ('eval', 'seeds'))}: eval.seeds repeat", "make them distinct")

    roles: dict[str, str] = {}
    for cid in spec.steps:
        roles[cid] = "forget"
    for cid in spec.steps:
        for rid in concepts[cid].related:
            roles.setdefault(rid, "related")
    for cid in [*spec.retain.general, *spec.retain.in_domain, *spec.retain.cross_domain]:
        if cid not in roles:  # first mention fixes the order of evaluation
            roles[cid] = ("in_domain" if cid in spec.retain.in_domain else
                          "cross_domain" if cid in spec.retain.cross_domain else "general")

    prompt_dir = (path.parent / spec.prompts).resolve()
    prompts = {
        cid: _read_prompts(prompt_dir / f"{cid}.csv", needs_mapping=roles[cid] == "forget")
        for cid in roles
    }
    files = [path, concept_path] + [prompt_dir / f"{cid}.csv" for cid in sorted(roles)]
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    sequence = TaskSequence(spec, path, concepts, prompts, digest.hexdigest(), roles)
    if spec.clean_prompts:
        _check_clean(sequence, prompt_dir)
    return sequence


def _check_clean(sequence: TaskSequence, prompt_dir: Path) -> None:
    """Raise on the first prompt handed to a method that names a concept forgotten by then."""
    from culbench.leaks import find_leaks

    leaks = find_leaks(sequence)
    if leaks:
        first = leaks[0]
        csv_file = prompt_dir / f"{first.owner}.csv"
        text = yamlfile.read_text(csv_file).splitlines()
        line = next((i for i, row in enumerate(text, 1) if first.prompt in row), 1)
        raise TaskError(f"{csv_file}:{line}: {first.kind} prompt '{first.prompt}' names '{first.named}', forgotten "
                        f"by step {first.step} ({len(leaks)} such prompts in all)",
                        "rewrite it without that concept (the sequence declares clean_prompts: true)")


def resolve_sequence(name_or_path: str) -> TaskSequence:
    """``"toy10"``, ``"toy10@1"`` or a path to a ``sequence.yaml`` -> a loaded sequence."""
    from culbench.catalog import SEQUENCES

    candidate = Path(name_or_path)
    if name_or_path.endswith((".yaml", ".yml")) or candidate.is_dir():
        file = candidate / "sequence.yaml" if candidate.is_dir() else candidate
        return load_sequence(file)
    name, _, version = name_or_path.partition("@")
    sequence = load_sequence(SEQUENCES.get(name))
    if version and not (re.fullmatch(r"\d+", version) and int(version) == sequence.version):
        raise TaskError(
            f"sequence {name}@{version} is not available (installed: {sequence.id})",
            f"use --sequence {sequence.id} or install the culbench release that ships it",
        )
    return sequence


# -- writing generated task folders -----------------------------------------------------------
def prompt_csv(rows: list[tuple[str, str, str]]) -> str:
    """A ``prompts/<id>.csv`` file's text from ``(split, prompt, mapped)`` rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["split", "prompt", "mapped"])
    writer.writerows(rows)
    return buffer.getvalue()


def write_task_files(root: Path, files: dict[str, str]) -> None:
    """Write a generator's ``{relative path: text}`` into a task folder."""
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
