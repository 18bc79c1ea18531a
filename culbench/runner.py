"""The sequence loop: evaluate the base model, then unlearn → evaluate → commit, step by step.

Rerunning the same command resumes after the last committed step. Each step reseeds from
(run seed, step) and reloads the previous step's saved weights and method state, so a
resumed run gives the same numbers as an uninterrupted one.

A method that trains from scratch and keeps no state between steps (``retrain``) has steps that
do not depend on each other: ``steps=[k, ...]`` (``culbench run --step K``) computes only those,
from the base model, so several processes (machines sharing the folder, or one GPU) fill one run
at once. Steps computed ahead of the last contiguous one are committed in place and counted once
the gap before them closes; the manifest is updated under a file lock.
"""

from __future__ import annotations

import dataclasses
import io
import os
import random
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from culbench import provenance, results
from culbench.api import Budget, StepContext, step_seed
from culbench.catalog import CLIP_SCORERS, FEATURES, JUDGES, METHODS, MODELS, REFERENCES
from culbench.compute import Meter, check_device
from culbench.config import build_config, config_hash, config_to_dict, parse_overrides
from culbench.errors import CulbenchError, RunError
from culbench.evaluation import presence, quality
from culbench.evaluation.cache import EvalCache, Hit
from culbench.evaluation.presence import evaluate_presence
from culbench.evaluation.presence import plan as evaluation_plan
from culbench.evaluation.summary import REFERENCE_FILE
from culbench.profiles import get_profile
from culbench.runfolder import StepSnapshots, check_steps_alone, computed, locked, record_step
from culbench.tasks import resolve_sequence
from culbench.validate import droppable

DEFAULT_SEQUENCE = "toy10"  # the embedded ToyWorld benchmark
ProgressFactory = Callable[[int, str], Callable[..., None]]


def _silent(total: int, description: str) -> Callable[..., None]:
    return lambda advance=1: None


def _seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _method_source(name: str) -> str:
    return METHODS.entry(name).source


MODES = ("sequential", "independent", "simultaneous")


def check_mode(mode: str) -> None:
    """Raise a one-line error unless ``mode`` is one of ``MODES``."""
    if mode not in MODES:
        raise CulbenchError(f"unknown mode '{mode}'", f"use one of: {', '.join(MODES)}")


def run_dir_for(out: Path, sequence_id: str, method: str, cfg_hash: str | None,
                profile: str, seed: int, mode: str = "sequential", split: str = "eval",
                judge: str | None = None) -> Path:
    label = results.variant_label(method if cfg_hash is None else f"{method}+{cfg_hash[:8]}", mode, split, judge)
    return out / sequence_id / label / profile / f"seed{seed}"


def run(
    method: str,
    *,
    sequence: str = DEFAULT_SEQUENCE,
    seed: int = 0,
    profile: str = "smoke",
    out: str | Path = "results",
    overrides: Sequence[str] = (),
    device: str = "cpu",
    threads: int | None = None,
    model_options: dict[str, Any] | None = None,
    judge_options: dict[str, Any] | None = None,
    progress: ProgressFactory | None = None,
    log: Callable[[str], None] | None = None,
    warn: Callable[[str], None] | None = None,
    argv: Sequence[str] | None = None,
    mode: str = "sequential",
    split: str = "eval",
    judge: str | None = None,
    fid: str | None = None,
    fid_options: dict[str, Any] | None = None,
    eval_cache: bool = True,
    steps: Sequence[int] | None = None,
) -> Path:
    """Run ``method`` through ``sequence`` and return the run directory.

    Args:
        method: registered method name.
        sequence: sequence name, ``name@version`` or path to a ``sequence.yaml``.
        seed: run seed (the method's randomness; evaluation noise is fixed by the sequence).
        profile: ``smoke``, ``standard`` or ``full``.
        out: results root; the run lives in ``out/<sequence@v>/<method>/<profile>/seed<seed>``.
        overrides: ``["dfr.lr=1e-5", ...]`` checked against the method's Config.
        device: torch device.
        threads: torch CPU threads (default: all cores).
        model_options: extra options for the model backend (e.g. a weights path).
        judge_options: extra options for the judge (e.g. which CLIP checkpoint).
        progress: ``progress(total, description) -> advance`` for progress bars.
        log: called with one-line status messages.
        warn: called with one-line warnings that must be seen even when ``log`` is quiet
            (default: ``warnings.warn``), e.g. damaged steps set aside on resume.
        argv: the command line to record (defaults to ``sys.argv``).
        mode: ``sequential`` (each request edits the previous step's model: the benchmark),
            ``independent`` (each request edits the base model alone, with no history) or
            ``simultaneous`` (step k erases concepts 1..k at once from the base model: CUIG's
            upper reference). The last two are reference rows.
        split: ``eval`` (the benchmark) or ``val``: evaluate on the validation prompts, for
            choosing hyper-parameters (such runs are labelled ``~val`` and never ranked).
        judge: evaluate with this registered judge instead of the sequence's own (with
            ``judge_options`` only); the run is labelled ``~<judge>``.
        fid: FID feature extractor (e.g. ``inception``) instead of the judge's features.
        eval_cache: reuse the evaluation of bit-identical weights instead of sampling it again:
            the base model's from ``out/.cache/eval`` (step 0 of every run), and the previous
            step's when a step left the weights unchanged (see ``evaluation.cache``).
        steps: compute only these steps (0 = the base model's evaluation), each from the base
            model with empty state; only for ``from_scratch`` methods that keep no ``ctx.state``.
            Processes given different steps may share one run folder at the same time.
    """
    import torch

    progress = progress or _silent
    log = log or (lambda message: None)
    warn = warn or (lambda message: warnings.warn(message, RuntimeWarning, stacklevel=3))
    torch.set_num_threads(threads or max(1, os.cpu_count() or 1))
    check_device(device)
    check_mode(mode)
    seq = resolve_sequence(sequence).with_split(split)
    prof = get_profile(profile)
    method_cls = METHODS.get(method)
    may_lack = droppable(method)  # files its committed steps may drop: a from-scratch method's weights
    alone = steps is not None  # each step computed on its own, from the base model
    if alone:
        check_steps_alone(method, method_cls, list(steps), len(seq.steps))
    config = build_config(method_cls.Config, method, parse_overrides(overrides, method))
    default_hash = config_hash(method_cls.Config())
    cfg_hash = config_hash(config)
    judge_name = None if judge == seq.spec.judge.name else judge  # None: the sequence's own judge
    run_dir = run_dir_for(Path(out), seq.id, method, None if cfg_hash == default_hash else cfg_hash,
                          prof.name, seed, mode, split, judge_name)

    backend_options = {**seq.spec.model.options, **(model_options or {})}
    model = MODELS.get(seq.spec.model.backend)(device=device, **backend_options)
    judge_opts = {**(seq.spec.judge.options if judge_name is None else {}), **(judge_options or {})}
    judge = JUDGES.get(judge_name or seq.spec.judge.name)(device=device, **judge_opts)
    if hasattr(judge, "bind"):  # judges that need the sequence's concepts (confusables)
        judge.bind(seq.concepts, seq.roles)
    evaluators = _quality_evaluators(seq, device)
    if fid:
        evaluators["features"] = FEATURES.get(fid)(device=device, **(fid_options or {}))
    featurizer = evaluators.get("features") or (judge if hasattr(judge, "features") else None)
    cache = EvalCache(
        Path(out) / ".cache" / "eval", items=evaluation_plan(seq, prof),
        sampler={"steps": prof.sample_steps or seq.spec.eval.sampler.steps,
                 "guidance": seq.spec.eval.sampler.guidance, "batch_size": prof.batch_size},
        model=model, backend={"name": seq.spec.model.backend, "options": backend_options}, device=device,
        evaluators=[judge, *evaluators.values()], code=[presence, quality],
    ) if eval_cache else None
    identity = {
        "sequence": {"id": seq.id, "content_hash": seq.content_hash},
        "method": {"name": method, "source": _method_source(method),
                   "config": config_to_dict(config), "config_hash": cfg_hash},
        "profile": prof.to_dict(),
        "seed": seed,
        "mode": mode,
        **({"split": split} if split != "eval" else {}),  # absent = eval (older manifests)
        **({"judge": judge_name} if judge_name else {}),  # absent = the sequence's judge
        "model": {"backend": seq.spec.model.backend, "options": backend_options,
                  "base_sha256": model.weights_sha256()},
        "evaluators": [judge.fingerprint(), *(e.fingerprint() for e in evaluators.values())],
    }

    manifest_path = run_dir / "manifest.json"
    run_dir.mkdir(parents=True, exist_ok=True)
    with locked(run_dir):  # `--step` processes may start together
        if manifest_path.exists():
            manifest = results.read_json(manifest_path)
            _check_identity(manifest.get("identity", {}), identity, run_dir)
            committed = results.committed_steps(run_dir)
            broken = results.first_damaged_step(run_dir, committed, may_lack)
            if broken is not None:  # redo the damaged step and every step after it; keep the old files
                k, why = broken
                kept = results.set_aside(run_dir, k, committed, provenance.now())
                manifest.update(status="partial" if k else "running", steps_committed=list(range(k)))
                manifest["compute"] = {s: c for s, c in manifest.get("compute", {}).items()
                                       if int(s) < k or int(s) > committed[-1]}  # keep steps computed ahead
                results.write_json(manifest_path, manifest)
                warn(f"step {k}: {why}; steps {k}-{committed[-1]} moved to {kept}, redoing them")
            elif manifest.get("status") == "complete":
                fixed = results.repair_derived(run_dir, committed, manifest, list(seq.steps))
                if fixed:
                    warn(f"rebuilt {' and '.join(fixed)} from the step files")
                log(f"already complete: {run_dir}")
                return run_dir
            elif committed and results.records_only(run_dir, committed):  # published form: nothing to resume from
                raise RunError(f"{run_dir} is unfinished and keeps only its records, not its step files",
                               "restore its step files, or delete that directory to start over")
            if not alone:  # `--step` processes keep the argv of the one that made the run
                manifest["argv"] = list(argv if argv is not None else sys.argv)
                results.write_json(manifest_path, manifest)
        else:
            git_hash, dirty = provenance.git_state()
            manifest = {
                "schema_version": results.SCHEMA_VERSION,
                "run_id": str(run_dir.relative_to(Path(out))),
                "status": "running",
                "culbench_version": provenance.culbench_version(),
                "git_hash": git_hash,
                "git_dirty": dirty,
                "created": provenance.now(),
                "updated": provenance.now(),
                "argv": list(argv if argv is not None else sys.argv),
                "identity": identity,
                "device": device,
                "threads": torch.get_num_threads(),
                "env": provenance.environment(),
                "steps_total": len(seq.steps),
                "steps_committed": [],
                "compute": {},
            }
            results.write_json(manifest_path, manifest)
        done = results.committed_steps(run_dir)  # (under the lock: it clears other processes' temp dirs)

    base_state = model.state_dict()
    if "reference" in evaluators and featurizer is not None:
        reference = quality.reference_features(
            evaluators["reference"], featurizer, evaluation_plan(seq, prof),
            sequence_hash=seq.content_hash, cache_root=Path(out) / ".cache" / "reference")
        with locked(run_dir):
            results.write_bytes(run_dir / REFERENCE_FILE, quality.npy_bytes(reference.astype("float16")))
    previous_state: dict[str, Any] | None = base_state
    state: dict[str, Any] = {}
    input_sha = ""  # the weights the next step starts from (keys its snapshot)
    if done:
        last_record = results.read_json(results.step_dir(run_dir, done[-1]) / "step.json")
        input_sha = last_record.get("model_sha256", "")
    if done and done[-1] > 0 and not alone:
        last = results.step_dir(run_dir, done[-1])
        if results.WEIGHTS in may_lack and not (last / results.WEIGHTS).exists():  # none needed
            previous_state = None  # the next step's drift from the previous step is unknown
        else:
            model.load_state_dict(load_weights(last / results.WEIGHTS, base_state))
            previous_state = model.state_dict()
        if (last / "state.pt").exists():
            state = torch.load(last / "state.pt", weights_only=True)
        log(f"resuming {run_dir} after step {done[-1]}")

    def base_model() -> Any:
        twin = model.clone()
        twin.load_state_dict(base_state)
        twin.unet.requires_grad_(False)
        return twin

    method_obj = method_cls(config)
    base_sha = identity["model"]["base_sha256"]
    last: tuple[str, Hit] | None = None  # (weights sha256, evaluation) of the previous step
    if alone:
        todo = [k for k in sorted(set(steps)) if not computed(run_dir, k)]
        for k in sorted(set(steps) - set(todo)):
            log(f"step {k}: already committed")
    else:
        todo = list(range(done[-1] + 1 if done else 0, len(seq.steps) + 1))
    advance_step = progress(len(todo), f"{method} on {seq.id}")
    for step in todo:
        if not alone and computed(run_dir, step):  # computed alone (`--step`) by another process
            record = results.read_json(results.step_dir(run_dir, step) / "step.json")
            input_sha, previous_state, state, last = record.get("model_sha256", ""), None, {}, None
            record_step(run_dir, step, None, list(seq.steps), device)
            log(f"step {step}: computed alone earlier, taken as committed")
            advance_step(1)
            continue
        concept = seq.steps[step - 1] if step else None
        compute: dict[str, Any] = {}
        files: dict[str, bytes] = {}
        if alone or (step > 0 and mode != "sequential"):  # from the base model, with no history
            model.load_state_dict(base_state)
            state = {}
            if alone:
                previous_state = None
        if step > 0:
            log(f"step {step}/{len(seq.steps)}: forgetting '{concept}'")
            start_sha = input_sha if mode == "sequential" and not alone else base_sha  # what it starts from
            meter = Meter()
            snapshots = StepSnapshots(run_dir, step, start_sha, log, warn, meter.elapsed)
            ctx = StepContext(step=step, seed=step_seed(seed, step), device=device,
                              budget=Budget(prof.max_iterations, prof.max_samples), progress=progress, state=state,
                              base_model=base_model, save_snapshot=snapshots.save, load_snapshot=snapshots.load,
                              run_seed=seed)
            _seed_everything(ctx.seed)
            with meter:
                if step == 1 or alone:
                    method_obj.on_sequence_start(model, ctx)
                request = seq.request(step, simultaneous=mode == "simultaneous")
                if mode == "independent":
                    request = dataclasses.replace(request, previous=())
                model = method_obj.unlearn(model, request, ctx)
            _check_returned(model, method)
            if alone and ctx.state:
                raise RunError(f"method '{method}' keeps state between steps ({', '.join(map(str, ctx.state))}), "
                               "so its steps cannot be computed alone",
                               "run the whole sequence without --step")
            compute["unlearn"] = meter.to_dict()
            if settings := provenance.settings():  # e.g. CUDA graphs for a GPU step: not eager arithmetic
                compute["unlearn"]["settings"] = settings
            if snapshots.carried:  # resumed mid-step: count the earlier processes' share too
                compute["unlearn"].update(seconds=round(meter.seconds + snapshots.carried, 4),
                                          carried_seconds=round(snapshots.carried, 4))
            files[results.WEIGHTS] = _weights_bytes(model.state_dict(), base_state)
            if ctx.state:
                buffer = io.BytesIO()
                torch.save(ctx.state, buffer)
                files["state.pt"] = buffer.getvalue()
            state = ctx.state
        _seed_everything(step_seed(seed, 10_000 + step))
        weights_sha = model.weights_sha256()
        key = cache.key(weights_sha) if cache is not None else None
        hit = None
        if cache is not None:  # the previous step's evaluation when nothing changed, else the store
            hit = last[1] if last is not None and last[0] == weights_sha else cache.load(key)
        if hit is not None:
            compute["eval"] = {**hit.compute, "cached": True}
            log(f"step {step}: evaluation reused (bit-identical weights)")
        else:
            cells, eval_files, eval_compute = _evaluate(model, judge, seq, prof, progress, featurizer, evaluators)
            hit = Hit(cells, eval_files, eval_compute)
            compute["eval"] = eval_compute
            if cache is not None and weights_sha == base_sha:  # only the base model is worth storing
                with locked(cache.root):
                    cache.store(key, cells, eval_files, eval_compute)
        last = (weights_sha, hit)
        cell_dicts, eval_files = hit.cells, hit.files
        files.update(eval_files)
        current = model.state_dict()
        record = {"step": step, "concept": concept, "status": "complete",
                  "model_sha256": weights_sha,
                  "drift": _drift(current, base_state, previous_state),
                  "cells": cell_dicts}
        previous_state = current  # state_dict() returns a detached copy
        with locked(run_dir):
            results.commit_step(run_dir, step, record, files)
        results.snapshot_path(run_dir, step).unlink(missing_ok=True)
        input_sha = weights_sha
        record_step(run_dir, step, compute, list(seq.steps), device)
        advance_step(1)
    return run_dir


def _evaluate(model: Any, judge: Any, seq: Any, prof: Any, progress: ProgressFactory,
              featurizer: Any, evaluators: dict[str, Any]) -> tuple[dict[str, Any], dict[str, bytes], dict[str, Any]]:
    """Sample and judge one checkpoint: its cells, its step files and the compute it took."""
    observers: dict[str, Any] = {}
    if featurizer is not None:
        observers["features"] = quality.FeatureCollector(featurizer.features)
    if "clip" in evaluators:
        observers["clip"] = quality.ClipCollector(evaluators["clip"])
    with Meter() as meter:
        model.unet.eval()
        cells, records = evaluate_presence(model, judge, seq, prof, progress, list(observers.values()))
    if "clip" in observers:
        for rec, score in zip(records, observers["clip"].scores, strict=True):
            rec["clip"] = round(score, 6)
    files = {"samples.jsonl": results.samples_jsonl(records)}
    if "features" in observers:
        files["features.npy"] = quality.npy_bytes(observers["features"].array().astype("float16"))
    return {cid: cell.to_dict() for cid, cell in cells.items()}, files, meter.to_dict()


def _quality_evaluators(seq: Any, device: str) -> dict[str, Any]:
    """The sequence's CLIP scorer and reference image set, when it names them."""
    out: dict[str, Any] = {}
    if seq.spec.eval.clip is not None:
        out["clip"] = CLIP_SCORERS.get(seq.spec.eval.clip.name)(device=device, **seq.spec.eval.clip.options)
    if seq.spec.eval.reference is not None:
        spec = seq.spec.eval.reference
        out["reference"] = REFERENCES.get(spec.name)(device=device, **spec.options)
    return out


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


def _check_identity(old: dict[str, Any], new: dict[str, Any], run_dir: Path) -> None:
    for key in ("sequence", "method", "profile", "seed", "mode", "model", "evaluators"):
        if old.get(key) != new.get(key):
            raise RunError(
                f"{run_dir} was started with a different {key}",
                "use another --out, or delete that directory to start over",
            )


def _check_returned(model: Any, method: str) -> None:
    for attr in ("unet", "sample", "state_dict", "weights_sha256"):
        if not hasattr(model, attr):
            raise CulbenchError(
                f"method '{method}' returned {type(model).__name__}, not a T2IModel",
                "return the (edited) model from unlearn()",
            )


def _weights_bytes(state: dict[str, Any], base: dict[str, Any]) -> bytes:
    """The tensors that differ from the base model (a UNet delta: a cross-attention method on
    SD stores megabytes, not a whole UNet), and any the base lacks (a replaced text encoder's);
    ``load_weights`` adds the base back."""
    import torch
    from safetensors.torch import save

    changed = {k: v.contiguous() for k, v in state.items() if k not in base or not torch.equal(v, base[k])}
    # one metadata key: safetensors writes the metadata map in hash order, so two keys would make
    # the bytes (and sha256) of identical weights differ from run to run
    return save(changed, metadata={"culbench": "delta-from-base"})


def load_weights(path: Path, base: dict[str, Any]) -> dict[str, Any]:
    """A step's full UNet state: its stored tensors over the base model's."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
        stored = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise RunError(f"checkpoint {path} is corrupt ({exc})",
                       f"delete {path.parent} and rerun to redo that step") from None
    if meta.get("culbench") != "delta-from-base":
        return stored  # a full state (runs written before deltas)
    return {**base, **stored}
