"""Where everything lives in a run folder, and what each file holds.

A run folder is one method × sequence@version × profile × seed::

    manifest.json          provenance and status (schema: MANIFEST_FIELDS)
    steps/00/step.json     the base model's evaluation (schema: STEP_FIELDS)
    steps/00/samples.jsonl one line per judged image
    steps/00/features.npy  judge features per image (FID), when the judge has features()
    steps/KK/...           after request KK, plus model.safetensors and state.pt
    snapshots/KK.pt        a long step's mid-step snapshot, deleted when the step commits
    reference.npy          judge features of the real reference images (FID vs real)
    matrix.csv             step,concept,role,presence,n,ci_low,ci_high (long format)
    summary.json           the presence matrix and stream metrics (schema: SUMMARY_FIELDS)
    damaged/<time>/        committed steps found damaged on resume, set aside (never deleted)
    probes/<probe>/KK.json a robustness probe's result on step KK (``culbench probe``)

A step directory is written under a temporary name and renamed into place only when every
expected image was judged, so a directory named ``steps/KK`` is always complete. The manifest's
``steps_committed`` and ``status``, ``matrix.csv`` and ``summary.json`` are derived from the step
directories and rebuilt from them whenever they disagree.
"""

from __future__ import annotations

from pathlib import Path

SCHEMA_VERSION = 2  # 2: step.json carries record_sha256 (`culbench migrate` upgrades 1)

MANIFEST_FIELDS: dict[str, str] = {
    "schema_version": "int: version of this layout; bumped on incompatible change",
    "run_id": "str: <sequence>@<version>/<method>[+<config hash>]/<profile>/seed<seed>",
    "status": "str: running (no step computed yet) | partial | complete",
    "culbench_version": "str: the culbench release that produced the run",
    "git_hash": "str | null: commit of the culbench source tree, if it is a git checkout",
    "git_dirty": "bool | null: the checkout had uncommitted changes",
    "created": "str: ISO-8601 UTC time the run started",
    "updated": "str: ISO-8601 UTC time of the last committed step",
    "argv": "list[str]: the command line that started (or resumed) the run",
    "identity": "dict: everything that must match for a rerun to resume this run (below)",
    "identity.sequence": "dict: id (name@version), content_hash (sha256 of its files)",
    "identity.method": "dict: name, source (builtin | plugin dist==version), config, config_hash",
    "identity.profile": "dict: the evaluation/compute profile",
    "identity.seed": "int: run seed (method randomness; eval noise is fixed by the sequence)",
    "identity.mode": "str: sequential (the benchmark) | independent | simultaneous | merged-uniform | merged-ta | "
                     "merged-ties (reference rows from the base model)",
    "identity.model": "dict: backend, options, base_sha256 (UNet weights of step 0)",
    "identity.evaluators": "list[dict]: fingerprint of every evaluator (name, impl, weights)",
    "device": "str: torch device the run used",
    "threads": "int: torch CPU threads",
    "env": "dict: python, platform and package versions",
    "steps_total": "int: number of requests in the sequence",
    "steps_committed": "list[int]: committed steps, 0 = base model",
    "compute": "dict[str, dict]: per step, unlearn/eval seconds and peak memory (MiB); eval.cached = true "
               "when the evaluation was reused from <out>/.cache/eval (its seconds and memory are the original's); "
               "unlearn.carried_seconds: the part of a step resumed from its snapshot that earlier processes "
               "spent (included in its seconds); unlearn.settings: the switches that change a step's arithmetic "
               "set when it ran (provenance.SETTINGS, e.g. CULBENCH_CUDA_GRAPH)",
}

STEP_FIELDS: dict[str, str] = {
    "schema_version": "int",
    "step": "int: 0 = base model, k = after request k",
    "concept": "str | null: concept forgotten at this step",
    "status": "str: always 'complete' (incomplete steps are never written)",
    "model_sha256": "str: UNet weights after this step",
    "cells": "dict[concept, {role, presence, n, n_expected, ci_low, ci_high}]",
    "files": "dict[name, sha256] of the other files in the step directory",
    "record_sha256": "str: sha256 of this record's canonical JSON without this field (an edit is detected)",
}

SUMMARY_FIELDS: dict[str, str] = {
    "schema_version": "int",
    "run_id": "str",
    "sequence": "str: name@version",
    "method": "str",
    "mode": "str: sequential | independent | simultaneous | merged-uniform | merged-ta | merged-ties",
    "split": "str: eval (the benchmark) | val (tuning on validation prompts; never ranked)",
    "judge": "str | null: the judge used instead of the sequence's own (--judge), else null",
    "config_hash": "str: sha256 of the method's resolved config",
    "seed": "int",
    "profile": "str",
    "concepts": "list[str]: matrix columns",
    "roles": "dict[concept, role]",
    "forget_order": "list[str]: concept forgotten at steps 1..T",
    "presence": "list[list[float]]: P[k][c], rows = steps 0..T",
    "n": "list[list[int]]: images behind each P[k][c]",
    "prompt_hits": "dict[concept, list[list[int]]]: images judged present per evaluation prompt "
                   "(prompt_index order), rows = steps 0..T; absent in summaries written before it "
                   "existed (their leaderboard rows fall back to the old intervals)",
    "prompt_images": "dict[concept, list[int]]: images (seeds) behind each prompt, the same at every step",
    "metrics": "dict[name, list[float] | float]: stream metrics computed from P (see "
               "culbench.evaluation.stream); per-step lists start at step 1 for UA, at step 0 "
               "for retention and collateral damage; re-emergence has one value per concept "
               "forgotten at steps 1..T-1",
    "metrics_ci": "dict[name, list[[low, high]]]: 95 % prompt-cluster bootstrap intervals (each "
                  "concept's prompts resampled with all their images, the same draw at every "
                  "step; culbench.evaluation.stream.bootstrap), aligned with metrics",
    "quality": "dict: per step 0..T — fid_retained_vs_base / _vs_real (FID in the judge's "
               "feature space on retained concepts' images), kid_retained_vs_base / _vs_real (KID, the unbiased "
               "paired MMD² estimate, same images and features; absent in summaries written before it), clip_retained / clip_forgotten "
               "(mean CLIP score), drift_from_base / drift_from_previous (L2 of UNet weights)",
    "quality_ci": "dict[name, list[[low, high]]]: bootstrap intervals of quality values",
    "compute": "dict: unlearn seconds per request (and median), eval median, peak memory (MB)",
    "evaluators": "list[dict]: fingerprints of the judge, CLIP scorer and reference set",
}


MANIFEST = "manifest.json"
STEP_RECORD = "step.json"
MATRIX = "matrix.csv"
SUMMARY = "summary.json"
REFERENCE = "reference.npy"  # judge features of the sequence's real reference images
WEIGHTS = "model.safetensors"  # a step's UNet (a delta from the base model)
STATE = "state.pt"  # the method's ``ctx.state`` after a step
TASK_VECTOR = "task_vector.safetensors"  # a merged-* run's step: what the unlearning alone changed
SAMPLES = "samples.jsonl"
SNAPSHOTS = "snapshots"  # run_dir/snapshots/KK.pt: mid-step snapshots, deleted when the step commits
DAMAGED = "damaged"  # run_dir/damaged/<time>/: damaged steps set aside on resume


def step_dir(run_dir: Path, step: int) -> Path:
    """The directory of committed step ``step`` (``steps/KK``)."""
    return run_dir / "steps" / f"{step:02d}"


def snapshot_path(run_dir: Path, step: int) -> Path:
    """A step's mid-step snapshot (``StepContext.save_snapshot``), deleted when the step commits."""
    return run_dir / SNAPSHOTS / f"{step:02d}.pt"


def variant_label(method: str, mode: str = "sequential", split: str = "eval", judge: str | None = None,
                  evaluate: str = "all") -> str:
    """``method`` with a ``~suffix`` for each way a run departs from the benchmark setting.

    >>> variant_label("esd"), variant_label("esd", "independent", "val", "vlm-yesno", "ends")
    ('esd', 'esd~independent~val~vlm-yesno~ends')
    """
    suffixes = (mode if mode != "sequential" else None, split if split != "eval" else None, judge,
                evaluate if evaluate != "all" else None)
    return "".join([method, *(f"~{s}" for s in suffixes if s)])


def run_dir_for(out: Path, sequence_id: str, method: str, cfg_hash: str | None, profile: str, seed: int,
                mode: str = "sequential", split: str = "eval", judge: str | None = None,
                evaluate: str = "all") -> Path:
    """``out/<sequence@v>/<label>/<profile>/seed<seed>``; the label carries the first 8 characters
    of ``cfg_hash`` when the config is not the method's defaults (``cfg_hash`` given)."""
    label = variant_label(method if cfg_hash is None else f"{method}+{cfg_hash[:8]}", mode, split, judge, evaluate)
    return out / sequence_id / label / profile / f"seed{seed}"
