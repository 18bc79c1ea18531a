"""What one run is: a frozen :class:`RunSpec` and its one :meth:`RunSpec.resolve`.

Every entry point (``culbench run``, ``--dry-run``, ``check-method``, ``sweep``) builds a
``RunSpec`` and resolves it, so an option is checked once, the same way, before anything runs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from culbench.errors import CulbenchError

DEFAULT_SEQUENCE = "toy10"  # the embedded ToyWorld benchmark
DEFAULT_PROFILE = "standard"  # the leaderboard setting: `culbench run`, `sweep`, `tune` and run()
DEFAULT_OUT = Path("results")  # results root of `culbench run` and `sweep`, and of run()
MODES = ("sequential", "independent", "simultaneous",  # merged-*: culbench.merging
         "merged-uniform", "merged-ta", "merged-ties")
SPLITS = ("eval", "val")
EVALUATE = ("all", "ends")


def check_mode(mode: str) -> None:
    """Raise a one-line error unless ``mode`` is one of ``MODES``."""
    if mode not in MODES:
        raise CulbenchError(f"unknown mode '{mode}'", f"use one of: {', '.join(MODES)}")


@dataclass(frozen=True)
class RunSpec:
    """One run of a method through a sequence, as a user asks for it (see ``culbench run --help``).

    Attributes:
        method: registered method name.
        sequence: sequence name, ``name@version`` or path to a ``sequence.yaml``.
        seed: run seed (the method's randomness; evaluation noise is fixed by the sequence).
        profile: ``smoke``, ``standard`` (the default, as on the command line) or ``full``.
        out: results root (default ``results``, as on the command line); the run lives in ``out/<sequence@v>/<label>/<profile>/seed<seed>``.
        overrides: ``("dfr.lr=1e-5", ...)`` checked against the method's Config.
        device: torch device; threads: torch CPU threads (``None``: all cores).
        mode: ``sequential`` (the benchmark), ``independent`` (each request from the base model,
            no history), ``simultaneous`` (step k erases concepts 1..k at once from the base) or
            ``merged-uniform|ta|ties`` (step k: the merge of requests 1..k each served from the
            base, :mod:`culbench.merging`).
        split: ``eval`` (the benchmark) or ``val`` (validation prompts, for tuning; never ranked).
        evaluate: ``all`` (every step, the benchmark) or ``ends`` (steps 0 and T only, labelled
            ``~ends``): every step is still computed, but only the base and the final model are
            evaluated, which is all a final-step number (the tuning rule's H) needs; the final
            step's evaluation is the same as an ``all`` run's.
        judge: a registered judge instead of the sequence's own (the run is labelled ``~<judge>``).
        model_options, judge_options: extra options for the model backend and the judge.
        fid, fid_options: an FID feature extractor instead of the judge's features.
        eval_cache: reuse the evaluation of bit-identical weights (``evaluation.cache``).
        steps: compute only these steps, each from the base model (``from_scratch`` methods that
            keep no state): processes given different steps may share one run folder.
    """

    method: str
    sequence: str = DEFAULT_SEQUENCE
    seed: int = 0
    profile: str = DEFAULT_PROFILE
    out: Path = DEFAULT_OUT
    overrides: tuple[str, ...] = ()
    device: str = "cpu"
    threads: int | None = None
    mode: str = "sequential"
    split: str = "eval"
    evaluate: str = "all"
    judge: str | None = None
    model_options: Mapping[str, Any] = field(default_factory=dict)
    judge_options: Mapping[str, Any] = field(default_factory=dict)
    fid: str | None = None
    fid_options: Mapping[str, Any] = field(default_factory=dict)
    eval_cache: bool = True
    steps: tuple[int, ...] | None = None

    def resolve(self) -> Resolved:
        """Check every option and look up what it names; raise a one-line error naming the fix."""
        from culbench.catalog import FEATURES, JUDGES, METHODS, MODELS
        from culbench.compute import check_device
        from culbench.config import build_config, config_hash, parse_overrides
        from culbench.models.performance import check_options
        from culbench.profiles import get_profile
        from culbench.runfolder import droppable, run_dir_for
        from culbench.tasks import resolve_sequence

        _check_numbers(self)
        check_device(self.device)
        check_mode(self.mode)
        if self.split not in SPLITS:
            raise CulbenchError(f"unknown split '{self.split}'", f"use one of: {', '.join(SPLITS)}")
        if self.evaluate not in EVALUATE:
            raise CulbenchError(f"unknown --evaluate '{self.evaluate}'", f"use one of: {', '.join(EVALUATE)}")
        seq = resolve_sequence(self.sequence).with_split(self.split)
        if self.split == "eval":  # seed s runs order s mod len(orders); val runs the val order
            seq = seq.in_order(seq.order_of_seed(self.seed))
        prof = get_profile(self.profile)
        method_cls = METHODS.get(self.method)
        for registry, name in ((JUDGES, self.judge), (FEATURES, self.fid)):
            if name:
                registry.get(name)
        check_options(seq.spec.model.backend, MODELS.get(seq.spec.model.backend),
                      {**seq.spec.model.options, **self.model_options})
        if self.steps is not None:
            _check_steps_alone(self.method, method_cls, list(self.steps), len(seq.steps))
        config = build_config(method_cls.Config, self.method, parse_overrides(self.overrides, self.method))
        cfg_hash = config_hash(config)
        default = cfg_hash == config_hash(method_cls.Config())
        judge = None if self.judge == seq.spec.judge.name else self.judge  # None: the sequence's own judge
        out = _check_out(Path(self.out))
        run_dir = run_dir_for(out, seq.id, self.method, None if default else cfg_hash, prof.name, self.seed,
                              self.mode, self.split, judge, self.evaluate)
        return Resolved(self, seq, prof, method_cls, config, cfg_hash, judge, out, run_dir, droppable(self.method))


@dataclass(frozen=True)
class Resolved:
    """A checked :class:`RunSpec` with what it names looked up.

    Attributes:
        spec: the spec; seq: its sequence (split chosen); prof: its profile.
        method_cls, config, config_hash: the method class and its resolved configuration.
        judge: the judge that replaces the sequence's own, or ``None``.
        out, run_dir: the results root and the run's folder.
        may_lack: step files the run may drop and still resume (a from-scratch method's weights).
    """

    spec: RunSpec
    seq: Any
    prof: Any
    method_cls: type
    config: Any
    config_hash: str
    judge: str | None
    out: Path
    run_dir: Path
    may_lack: tuple[str, ...]

    @property
    def alone(self) -> bool:
        """Each step computed on its own, from the base model (``--step``)."""
        return self.spec.steps is not None

    def evaluates(self, step: int) -> bool:
        """Whether ``step`` is evaluated: every step, or under ``evaluate="ends"`` steps 0 and T."""
        return self.spec.evaluate == "all" or step in (0, len(self.seq.steps))

    @property
    def backend_options(self) -> dict[str, Any]:
        return {**self.seq.spec.model.options, **self.spec.model_options}


def _check_numbers(spec: RunSpec) -> None:
    if isinstance(spec.seed, bool) or not isinstance(spec.seed, int) or spec.seed < 0:
        raise CulbenchError(f"bad seed {spec.seed!r}", "use a seed ≥ 0, e.g. --seed 0")
    if spec.threads is not None and spec.threads < 1:
        raise CulbenchError(f"bad --threads {spec.threads}", "use at least 1 thread, or leave it out for all cores")
    for key, value in {**spec.model_options, **spec.judge_options, **spec.fid_options}.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise CulbenchError(f"option {key}={value} is not a finite number", f"give {key} a finite value")


def _check_out(out: Path) -> Path:
    """``out`` when it is, or can be made, a writable folder."""
    existing = next(p for p in (out, *out.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise CulbenchError(f"--out {out}: {existing} is a file, not a folder", "give --out a folder path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CulbenchError(f"--out {out}: {existing} is not writable", "give --out a folder you can write to")
    return out


def _check_steps_alone(method: str, cls: Any, steps: list[int], n_steps: int) -> None:
    """Raise a one-line error unless ``steps`` may be computed alone for this method."""
    if not cls.from_scratch:
        raise CulbenchError(f"--step needs a method that trains from scratch; '{method}' edits the previous "
                            "step's model, so its steps must run in order", "run the whole sequence without --step")
    wrong = [k for k in steps if not 0 <= k <= n_steps]
    if wrong or not steps:
        raise CulbenchError(f"--step {wrong[0] if wrong else '(none)'} is not a step of this sequence",
                            f"give steps from 0 (the base model) to {n_steps}")
