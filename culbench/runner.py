"""The sequence loop: open or resume a run folder, then for each step unlearn → evaluate → commit.

Step 0 evaluates the base model; step k serves request k. Each step reseeds from (run seed,
step) and starts from the previous step's saved weights and method state, so a resumed run
gives the same numbers as an uninterrupted one. A method that trains from scratch and keeps no
state (``retrain``) may compute steps alone (``RunSpec.steps``, ``culbench run --step``), from
the base model, in several processes sharing one run folder.
"""

from __future__ import annotations

import dataclasses
import difflib
import io
import os
import random
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from culbench import provenance
from culbench import runfolder as rf
from culbench.api import Budget, StepContext, step_seed
from culbench.catalog import METHODS, MODELS
from culbench.compute import Meter
from culbench.config import config_to_dict
from culbench.errors import CulbenchError, RunError
from culbench.evaluation.checkpoint import CheckpointEvaluator
from culbench.evaluation.summary import build_summary
from culbench.merging import TaskVectors, how_of
from culbench.spec import DEFAULT_OUT, DEFAULT_PROFILE, DEFAULT_SEQUENCE, Resolved, RunSpec

__all__ = ["DEFAULT_OUT", "DEFAULT_PROFILE", "DEFAULT_SEQUENCE", "Hooks", "RunSpec", "merge_run", "run", "run_spec"]

ProgressFactory = Callable[[int, str], Callable[..., None]]


def _silent(total: int, description: str) -> Callable[..., None]:
    return lambda advance=1: None


def _warn(message: str) -> None:
    warnings.warn(message, RuntimeWarning, stacklevel=4)


@dataclasses.dataclass(frozen=True)
class Hooks:
    """How a run talks to its caller: ``progress(total, description) -> advance`` for progress
    bars, ``log`` for status lines, ``warn`` for lines that must be seen even when ``log`` is
    quiet (e.g. damaged steps set aside), and the command line to record (``argv``)."""

    progress: ProgressFactory = _silent
    log: Callable[[str], None] = lambda message: None
    warn: Callable[[str], None] = _warn
    argv: Sequence[str] | None = None


def run(method: str, *, progress: ProgressFactory | None = None, log: Callable[[str], None] | None = None,
        warn: Callable[[str], None] | None = None, argv: Sequence[str] | None = None, **options: Any) -> Path:
    """Run ``method`` through a sequence and return the run folder: ``RunSpec(method, **options)``
    (``overrides`` and ``steps`` may be any sequence) with the given hooks (see :class:`Hooks`).
    The defaults are ``culbench run``'s: profile ``standard``, results under ``results/``."""
    known = [f.name for f in dataclasses.fields(RunSpec)]
    for key in options:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            raise CulbenchError(f"culbench.run() got an unknown option '{key}'"
                                + (f" (did you mean '{close[0]}'?)" if close else ""),
                                f"use the fields of culbench.spec.RunSpec: {', '.join(known[1:])}")
    for key in ("overrides", "steps"):
        if options.get(key) is not None:
            options[key] = tuple(options[key])
    for key in ("model_options", "judge_options", "fid_options"):
        options[key] = dict(options.get(key) or {})
    if "out" in options:
        options["out"] = Path(options["out"])
    hooks = Hooks(progress or _silent, log or (lambda message: None), warn or _warn, argv)
    return run_spec(RunSpec(method, **options), hooks)


def run_spec(spec: RunSpec, hooks: Hooks | None = None) -> Path:
    """Run ``spec`` to completion, or resume it; rerunning a complete run changes nothing."""
    import torch

    hooks = hooks or Hooks()
    resolved = spec.resolve()
    torch.set_num_threads(spec.threads or max(1, os.cpu_count() or 1))
    loop = _Loop(resolved, hooks)
    if loop.open_or_resume():
        hooks.log(f"already complete: {resolved.run_dir}")
        return resolved.run_dir
    todo = loop.todo()
    advance = hooks.progress(len(todo), f"{spec.method} on {resolved.seq.id}")
    for step in todo:
        if not loop.taken_as_committed(step):
            files, compute = loop.unlearn(step)
            if resolved.evaluates(step):
                record, eval_files, compute["eval"] = loop.evaluate(step)
            else:
                record, eval_files = loop.record(step, None), {}
            loop.commit(step, record, {**files, **eval_files}, _with_switches(compute, loop.model))
        advance(1)
    return resolved.run_dir


class _Loop:
    """One run's model, evaluator and the state carried from step to step."""

    def __init__(self, r: Resolved, hooks: Hooks) -> None:
        self.r, self.hooks, self.spec = r, hooks, r.spec
        self.model = MODELS.get(r.seq.spec.model.backend)(device=self.spec.device, **r.backend_options)
        self.evaluator = CheckpointEvaluator(
            r.seq, r.prof, self.model, backend_options=r.backend_options, device=self.spec.device, judge=r.judge,
            judge_options=self.spec.judge_options, fid=self.spec.fid, fid_options=self.spec.fid_options,
            cache_root=r.out / ".cache" / "eval" if self.spec.eval_cache else None)
        self.base_sha = self.model.weights_sha256()
        self.method = r.method_cls(r.config)
        self.order = list(r.seq.steps)
        self.base_state: dict[str, Any] = {}
        self.previous_state: dict[str, Any] | None = None  # the weights the last step left (drift)
        self.state: dict[str, Any] = {}  # the method's ctx.state
        self.input_sha = ""  # the weights the next step starts from (keys its snapshot)
        how = how_of(self.spec.mode)
        self.task_vectors = TaskVectors(how) if how else None  # a merged-* run's

    def identity(self) -> dict[str, Any]:
        r, spec = self.r, self.spec
        return {
            "sequence": {"id": r.seq.id, "content_hash": r.seq.content_hash},
            "method": {"name": spec.method, "source": METHODS.entry(spec.method).source,
                       "config": config_to_dict(r.config), "config_hash": r.config_hash},
            "profile": r.prof.to_dict(),
            "seed": spec.seed,
            "mode": spec.mode,
            **({"split": spec.split} if spec.split != "eval" else {}),  # absent = eval
            **({"evaluate": spec.evaluate} if spec.evaluate != "all" else {}),  # absent = all
            **({"judge": r.judge} if r.judge else {}),  # absent = the sequence's judge
            **({"order": list(r.seq.steps)} if r.seq.spec.orders or r.seq.spec.val_order else {}),
            "model": {"backend": r.seq.spec.model.backend, "options": r.backend_options, "base_sha256": self.base_sha},
            "evaluators": self.evaluator.fingerprints(),
        }

    def open_or_resume(self) -> bool:
        """Open the run folder (create it, or check it is this run and set damage aside), bring its
        derived files up to date and load what the next step starts from; True when complete."""
        import torch

        run_dir, hooks = self.r.run_dir, self.hooks
        run_dir.mkdir(parents=True, exist_ok=True)
        argv = list(hooks.argv if hooks.argv is not None else sys.argv)
        with rf.locked(run_dir):  # `--step` processes may start together
            if (run_dir / rf.MANIFEST).exists():
                self._check_existing(argv)
            else:  # a new run, or one whose manifest was moved away: derived files are rebuilt
                (run_dir / rf.SUMMARY).unlink(missing_ok=True)
                rf.write_manifest(run_dir, rf.new_manifest(
                    str(run_dir.relative_to(self.r.out)), self.identity(), argv, self.spec.device,
                    torch.get_num_threads(), len(self.order)))
        manifest, fixed = rf.sync(run_dir, self.order, build_summary)
        if fixed:
            hooks.warn(f"rebuilt {' and '.join(fixed)} from the step files")
        if manifest["status"] == "complete":
            return True
        self._load_start()
        return False

    def _check_existing(self, argv: list[str]) -> None:
        """A rerun: the same identity, damaged steps set aside, the command line recorded."""
        run_dir, r = self.r.run_dir, self.r
        manifest = rf.read_manifest(run_dir)
        rf.check_identity(manifest.get("identity", {}), self.identity(), run_dir)
        redo = rf.to_redo(run_dir, len(self.order), r.may_lack, keep_ahead=r.method_cls.from_scratch)
        if redo is not None:  # redo the damaged steps; keep their old files
            steps, why = redo
            kept = rf.set_aside(run_dir, steps, provenance.now())
            manifest["compute"] = {s: c for s, c in manifest.get("compute", {}).items() if int(s) not in steps}
            self.hooks.warn(f"{why}; steps {steps[0]}-{steps[-1]} moved to {kept}, redoing them")
        else:
            done = rf.committed_steps(run_dir)
            if done and done[-1] < len(self.order) and rf.records_only(run_dir, done):
                raise RunError(f"{run_dir} is unfinished and keeps only its records, not its step files",
                               "restore its step files, or delete that directory to start over")
        if redo is not None or (manifest.get("status") != "complete" and not r.alone):
            if not r.alone:  # `--step` processes keep the argv of the one that made the run
                manifest["argv"] = argv
            rf.write_manifest(run_dir, manifest)

    def _load_start(self) -> None:
        """Load the base model's state, the reference features and, on resume, the last step's
        weights and method state."""
        import torch

        run_dir = self.r.run_dir
        self.base_state = self.model.state_dict()
        self.previous_state = self.base_state
        reference = self.evaluator.reference_features(self.r.out / ".cache" / "reference")
        if reference is not None:
            with rf.locked(run_dir):
                rf.write_bytes(run_dir / rf.REFERENCE, reference)
        done = rf.committed_steps(run_dir)
        if self.task_vectors is not None:
            self.task_vectors.load(run_dir, done, self.base_state)
        if done:
            self.input_sha = rf.read_step(run_dir, done[-1]).get("model_sha256", "")
        if not done or done[-1] == 0 or self.r.alone:
            return
        last = rf.step_dir(run_dir, done[-1])
        if rf.WEIGHTS in self.r.may_lack and not (last / rf.WEIGHTS).exists():  # none needed
            self.previous_state = None  # the next step's drift from the previous step is unknown
        else:
            self.model.load_state_dict(rf.load_weights(last / rf.WEIGHTS, self.base_state))
            self.previous_state = self.model.state_dict()
        if (last / rf.STATE).exists():
            self.state = torch.load(last / rf.STATE, weights_only=True)
        self.hooks.log(f"resuming {run_dir} after step {done[-1]}")

    def todo(self) -> list[int]:
        """The steps this process computes: the ones asked for (alone), else those after the last committed."""
        run_dir = self.r.run_dir
        if self.r.alone:
            asked = sorted(set(self.spec.steps or ()))
            for k in (k for k in asked if rf.computed(run_dir, k)):
                self.hooks.log(f"step {k}: already committed")
            return [k for k in asked if not rf.computed(run_dir, k)]
        done = rf.committed_steps(run_dir)
        return list(range(done[-1] + 1 if done else 0, len(self.order) + 1))

    def taken_as_committed(self, step: int) -> bool:
        """A step another process computed alone (``--step``) is counted, not computed again."""
        if self.r.alone or not rf.computed(self.r.run_dir, step):
            return False
        self.input_sha = rf.read_step(self.r.run_dir, step).get("model_sha256", "")
        self.previous_state, self.state = None, {}
        self.evaluator.forget_previous()
        rf.sync(self.r.run_dir, self.order, build_summary)
        self.hooks.log(f"step {step}: computed alone earlier, taken as committed")
        return True

    def unlearn(self, step: int) -> tuple[dict[str, bytes], dict[str, Any]]:
        """Serve request ``step`` (nothing for step 0): the step's weight and state files and its compute."""
        spec = self.spec
        if self.r.alone or (step > 0 and spec.mode != "sequential"):  # from the base model, with no history
            self.model.load_state_dict(self.base_state)
            self.state = {}
            if self.r.alone:
                self.previous_state = None
        if step == 0:
            return {}, {}
        self.hooks.log(f"step {step}/{len(self.order)}: forgetting '{self.order[step - 1]}'")
        start_sha = self.input_sha if spec.mode == "sequential" and not self.r.alone else self.base_sha
        meter = Meter()
        snapshots = rf.StepSnapshots(self.r.run_dir, step, start_sha, self.hooks.log, self.hooks.warn, meter.elapsed)
        ctx = StepContext(step=step, seed=step_seed(spec.seed, step), device=spec.device,
                          budget=Budget(self.r.prof.max_iterations, self.r.prof.max_samples),
                          progress=self.hooks.progress, state=self.state, base_model=self._base_model,
                          save_snapshot=snapshots.save, load_snapshot=snapshots.load, run_seed=spec.seed,
                          shared=rf.SharedStore(self.r.out / ".cache" / "shared" / spec.method,
                                                published=rf.PUBLISHED / spec.method),
                          order=tuple(self.order) if self.r.method_cls.role == "oracle" else ())
        _seed_everything(ctx.seed)
        with meter:
            if step == 1 or self.r.alone:
                self.method.on_sequence_start(self.model, ctx)
            request = self.r.seq.request(step, simultaneous=spec.mode == "simultaneous")
            if spec.mode == "independent" or self.task_vectors is not None:
                request = dataclasses.replace(request, previous=())
            self.model = self.method.unlearn(self.model, request, ctx)
        _check_returned(self.model, spec.method)
        merged = self._merge(step) if self.task_vectors is not None else {}
        if self.r.alone and ctx.state:
            raise RunError(f"method '{spec.method}' keeps state between steps ({', '.join(map(str, ctx.state))}), "
                           "so its steps cannot be computed alone", "run the whole sequence without --step")
        self.state = ctx.state
        return {**self._step_files(ctx.state), **merged}, {"unlearn": _unlearn_compute(meter, snapshots)}

    def _merge(self, step: int) -> dict[str, bytes]:
        """A ``merged-*`` step: keep what this request alone changed (its task vector file) and
        replace the model by the merge of requests 1..``step``."""
        unlearned = self.model.state_dict()
        self.model.load_state_dict(self.task_vectors.add(step, unlearned, self.base_state))
        return {rf.TASK_VECTOR: rf.weights_bytes(unlearned, self.base_state)}

    def _step_files(self, state: dict[str, Any]) -> dict[str, bytes]:
        import torch

        files = {rf.WEIGHTS: rf.weights_bytes(self.model.state_dict(), self.base_state)}
        if state:
            buffer = io.BytesIO()
            torch.save(state, buffer)
            files[rf.STATE] = buffer.getvalue()
        return files

    def _base_model(self) -> Any:
        """The frozen step-0 model (``StepContext.base_model``)."""
        twin = self.model.clone()
        twin.load_state_dict(self.base_state)
        twin.unet.requires_grad_(False)
        return twin

    def evaluate(self, step: int) -> tuple[dict[str, Any], dict[str, bytes], dict[str, Any]]:
        """Evaluate the current model: the step's record, its evaluation files and the eval compute."""
        _seed_everything(step_seed(self.spec.seed, 10_000 + step))
        weights_sha = self.model.weights_sha256()
        hit, compute = self.evaluator.evaluate(self.model, weights_sha, self.base_sha, self.hooks.progress,
                                               lambda message: self.hooks.log(f"step {step}: {message}"))
        return self.record(step, hit.cells, weights_sha), hit.files, compute

    def record(self, step: int, cells: dict[str, Any] | None, weights_sha: str | None = None) -> dict[str, Any]:
        """The step's record: its weights' sha256, parameter drift and evaluation ``cells``
        (``None``: a step an ``evaluate="ends"`` run computes but does not evaluate)."""
        current = self.model.state_dict()
        record = {"step": step, "concept": self.order[step - 1] if step else None, "status": "complete",
                  "model_sha256": weights_sha or self.model.weights_sha256(),
                  "drift": _drift(current, self.base_state, self.previous_state), "cells": cells or {},
                  **({} if cells is not None else {"evaluated": False})}
        self.previous_state = current  # state_dict() returns a detached copy
        return record

    def commit(self, step: int, record: dict[str, Any], files: dict[str, bytes], compute: dict[str, Any]) -> None:
        """Note the step's compute, commit its directory atomically, then bring the derived files
        (manifest, matrix, and at the last step the summary) up to date."""
        run_dir = self.r.run_dir
        rf.note_compute(run_dir, step, compute, self.spec.device)
        with rf.locked(run_dir):
            rf.commit_step(run_dir, step, record, files)
        rf.snapshot_path(run_dir, step).unlink(missing_ok=True)
        self.input_sha = record["model_sha256"]
        rf.sync(run_dir, self.order, build_summary)


def _seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _with_switches(compute: dict[str, Any], model: Any) -> dict[str, Any]:
    """``compute`` with the model's speed and memory switches noted in each part, when any is on
    (:mod:`culbench.models.performance`)."""
    from culbench.models.performance import Performance

    if getattr(model, "performance", Performance()) == Performance():
        return compute
    record = model.performance_record()
    return {part: {**meter, "performance": record} for part, meter in compute.items()}


def _unlearn_compute(meter: Meter, snapshots: rf.StepSnapshots) -> dict[str, Any]:
    """The unlearning's meter, the switches that changed its arithmetic, and the seconds earlier
    processes spent on it (a step resumed from its snapshot)."""
    compute = meter.to_dict()
    if settings := provenance.settings():  # e.g. CUDA graphs for a GPU step: not eager arithmetic
        compute["settings"] = settings
    if snapshots.carried:
        compute.update(seconds=round(meter.seconds + snapshots.carried, 4), carried_seconds=round(snapshots.carried, 4))
    return compute


def _drift(current: dict[str, Any], base: dict[str, Any],
           previous: dict[str, Any] | None) -> dict[str, float | None]:
    """L2 distances of the UNet weights (the base's ``state_dict()`` keys: a replaced text
    encoder is not counted) to the base model and the previous step (``None`` when the previous
    step's weights were not kept: a from-scratch method's resume)."""
    import torch

    def dist(other: dict[str, Any]) -> float:
        return sum(float((current[k].float() - other[k].float()).pow(2).sum()) for k in base) ** 0.5

    norm = sum(float(v.float().pow(2).sum()) for v in base.values()) ** 0.5
    with torch.no_grad():
        from_base, from_previous = dist(base), None if previous is None else dist(previous)
    return {"from_base": round(from_base, 6),
            "from_previous": None if from_previous is None else round(from_previous, 6),
            "relative_from_base": round(from_base / norm, 8) if norm else 0.0}


def _check_returned(model: Any, method: str) -> None:
    for attr in ("unet", "sample", "state_dict", "weights_sha256"):
        if not hasattr(model, attr):
            raise CulbenchError(f"method '{method}' returned {type(model).__name__}, not a T2IModel",
                                "return the (edited) model from unlearn()")


def merge_run(src: Path, dst: Path) -> list[int]:
    """Copy into run ``dst`` the committed steps of ``src`` (the same run, computed partly
    elsewhere) that it lacks, bring ``dst``'s derived files up to date, and return those steps."""
    from culbench.runfolder.merge import merge_steps
    from culbench.tasks import resolve_sequence

    identity = rf.read_manifest(src)["identity"]
    order = identity.get("order") or list(resolve_sequence(identity["sequence"]["id"]).steps)
    return merge_steps(src, dst, order, build_summary)
