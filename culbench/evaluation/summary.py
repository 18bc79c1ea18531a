"""Every number of a run's ``summary.json``, computed only from its stored step files.

Inputs per committed step: ``step.json`` (cells, parameter drift), ``samples.jsonl`` (one
judged image per line, with its CLIP score when the sequence has a scorer) and
``features.npy`` (judge features, same row order; FID and KID); at the run root ``reference.npy`` (judge
features of the real reference images, same row order). Nothing is re-sampled, so anyone can
recompute the summary — and re-threshold the judge — from a copied run directory.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from culbench.errors import RunError
from culbench.evaluation import stream
from culbench.evaluation.quality import Gaussian, frechet_gaussians, kid, load_npy
from culbench.runfolder.atomic import read_json
from culbench.runfolder.layout import REFERENCE, SAMPLES, SCHEMA_VERSION, STEP_RECORD, step_dir
from culbench.runfolder.records import committed_steps, evaluated, load_matrix


def read_samples(path: Path) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunError(f"{path} is unreadable ({exc})", "delete that step directory and rerun") from None


def prompt_hits(per_step: Sequence[Sequence[Mapping[str, Any]]], concepts: Sequence[str]) -> stream.PromptHits:
    """Per concept, images judged present per evaluation prompt at each step and the images
    (seeds) behind each prompt; every step evaluated the same (prompt, seed) pairs (checked)."""
    hits, images = [], []
    for concept in concepts:
        rows, keys = [], None
        for records in per_step:
            mine = sorted((r["prompt_index"], r["seed"], bool(r["present"]))
                          for r in records if r["concept"] == concept)
            step_keys = [(p, s) for p, s, _ in mine]
            if keys is not None and step_keys != keys:
                raise RunError(f"concept '{concept}' was evaluated on different prompts/seeds across steps",
                               "rerun the whole run with one culbench version")
            keys = step_keys
            prompts = sorted({p for p, _ in step_keys})
            rows.append([sum(hit for q, _, hit in mine if q == p) for p in prompts])
        hits.append(np.array(rows, dtype=int))
        images.append(np.array([sum(q == p for q, _ in keys or []) for p in prompts], dtype=int))
    return stream.PromptHits(hits, images)


def prompt_hits_of(summary: Mapping[str, Any]) -> stream.PromptHits | None:
    """The per-prompt hit counts a ``summary.json`` records (columns in its ``concepts`` order),
    or None for a summary written before they were recorded."""
    hits, images = summary.get("prompt_hits"), summary.get("prompt_images")
    if not hits or not images:
        return None
    return stream.PromptHits([_hits_array(hits[c], len(images[c])) for c in summary["concepts"]],
                             [np.array(images[c], dtype=int) for c in summary["concepts"]])


def _hits_array(rows: Sequence[Sequence[int] | None], prompts: int) -> np.ndarray:
    """A ``(steps, prompts)`` hit array from ``hits_json`` rows (NaN for a step not evaluated)."""
    if all(row is not None for row in rows):
        return np.array(rows, dtype=int)
    return np.array([[np.nan] * prompts if row is None else row for row in rows], dtype=float)


def hits_json(h: np.ndarray) -> list[list[int] | None]:
    """One concept's per-prompt hits by step for ``summary.json``: None for a step not evaluated.

    >>> hits_json(np.array([[2.0, 1.0], [np.nan, np.nan]]))
    [[2, 1], None]
    """
    return [None if np.isnan(row.astype(float)).any() else [int(x) for x in row] for row in h]


def summarise(run_dir: Path, steps: Sequence[int], concepts: Sequence[str], roles: Mapping[str, str],
              forget_order: Sequence[str], *, replicates: int, fid_replicates: int, seed: int = 0) -> dict[str, Any]:
    """Presence, per-prompt hits and metrics with 95 % prompt-cluster bootstrap intervals:
    ``{"P", "hits", "metrics", "ci", "quality", "quality_ci"}``."""
    dirs = [step_dir(run_dir, k) for k in steps]
    records = [read_json(d / STEP_RECORD) for d in dirs]
    shown = [i for i, record in enumerate(records) if evaluated(record)]
    per_step = [read_samples(dirs[i] / SAMPLES) for i in shown]
    hits = _on_steps(prompt_hits(per_step, concepts), shown, len(dirs))
    P = hits.presence()

    def fn(_: int, matrix: np.ndarray) -> dict[str, stream.Value]:
        return stream.stream_metrics(matrix, concepts, roles, forget_order)

    values = {name: _clean(v) for name, v in fn(0, P).items()}
    ci = stream.bootstrap([hits], fn, replicates, seed) if replicates else {}
    quality, quality_ci = _quality(run_dir, [dirs[i] for i in shown], per_step, roles,
                                   [forget_order[:k] for k in shown], fid_replicates, seed)
    quality = {name: _on_steps_list(v, shown, len(dirs)) for name, v in quality.items()}
    quality_ci = {name: _on_steps_list(v, shown, len(dirs), [None, None]) for name, v in quality_ci.items()}
    drift = [record.get("drift") for record in records]
    for key in ("from_base", "from_previous", "relative_from_base"):
        quality[f"drift_{key}"] = [None if d is None else d.get(key) for d in drift]
    return {"P": P, "hits": hits, "metrics": values, "ci": ci, "quality": quality, "quality_ci": quality_ci}


def _on_steps(hits: stream.PromptHits, shown: Sequence[int], n_steps: int) -> stream.PromptHits:
    """``hits`` of the evaluated steps ``shown`` spread over all ``n_steps`` rows, NaN where a
    step was not evaluated (its per-step metrics come out None)."""
    if len(shown) == n_steps:
        return hits
    spread = []
    for h in hits.hits:
        full = np.full((n_steps, h.shape[1]), np.nan)
        full[list(shown)] = h
        spread.append(full)
    return stream.PromptHits(spread, hits.images)


def _on_steps_list(values: Sequence[Any], shown: Sequence[int], n_steps: int, blank: Any = None) -> list[Any]:
    """A per-evaluated-step list spread over all steps, ``blank`` at the steps not evaluated.

    >>> _on_steps_list([0.5, 0.25], [0, 2], 3)
    [0.5, None, 0.25]
    """
    out = [blank] * n_steps
    for i, value in zip(shown, values, strict=True):
        out[i] = value
    return out


def _quality(run_dir: Path, dirs: Sequence[Path], per_step: Sequence[Sequence[Mapping[str, Any]]],
             roles: Mapping[str, str], forgotten: Sequence[Sequence[str]], fid_replicates: int,
             seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """FID (with bootstrap intervals) and KID vs base/real on retained concepts' images, CLIP
    scores with bootstrap intervals, one value per step evaluated (``dirs``; ``forgotten``: the
    concepts forgotten by each)."""
    quality: dict[str, Any] = {}
    intervals: dict[str, Any] = {}
    records = per_step[0]
    retained = np.array([roles[r["concept"]] != "forget" for r in records])
    rng = np.random.default_rng(seed)

    feature_files = [d / "features.npy" for d in dirs]
    if all(f.is_file() for f in feature_files):
        feats = [load_npy(f)[retained] for f in feature_files]
        draws = [rng.integers(0, len(feats[0]), len(feats[0])) for _ in range(fid_replicates)]
        fits = [Gaussian.fit(f) for f in feats]
        boot_fits = [[Gaussian.fit(f[i]) for f in feats] for i in draws]  # per draw, per step
        references = {"base": (feats[0], fits[0], [step_fits[0] for step_fits in boot_fits])}  # step 0's own
        if (run_dir / REFERENCE).is_file():
            real = load_npy(run_dir / REFERENCE)[retained]
            references["real"] = (real, Gaussian.fit(real), [Gaussian.fit(real[i]) for i in draws])
        for name, (ref, ref_fit, ref_boot) in references.items():
            point = np.array([frechet_gaussians(f, ref_fit) for f in fits])
            quality[f"fid_retained_vs_{name}"] = [round(float(v), 6) for v in point]
            if len(ref) > 1:  # unbiased KID needs two images per set
                quality[f"kid_retained_vs_{name}"] = [round(kid(f, ref), 8) for f in feats]
            if draws:
                # FID of a resample is biased upwards (duplicated rows shrink the covariance), so
                # the percentile interval is shifted back by the bootstrap bias (median − estimate).
                boot = np.array([[frechet_gaussians(f, ref_i) for f in step_fits]
                                 for ref_i, step_fits in zip(ref_boot, boot_fits, strict=True)])
                shifted = boot - (np.median(boot, axis=0) - point)
                intervals[f"fid_retained_vs_{name}"] = stream.percentile_ci(list(np.clip(shifted, 0, None)))

    if all("clip" in r for r in records):
        forget_of_step = [set(f) for f in forgotten]
        for name, select in (("retained", lambda r, k: roles[r["concept"]] != "forget"),
                             ("forgotten", lambda r, k: r["concept"] in forget_of_step[k])):
            per = [np.array([r["clip"] for r in recs if select(r, k)]) for k, recs in enumerate(per_step)]
            quality[f"clip_{name}"] = [round(float(x.mean()), 6) if len(x) else None for x in per]
            intervals[f"clip_{name}"] = [_mean_ci(x, rng) for x in per]
    return quality, intervals


def _mean_ci(x: np.ndarray, rng: np.random.Generator, replicates: int = 1000) -> list[float | None]:
    if len(x) == 0:
        return [None, None]
    means = x[rng.integers(0, len(x), (replicates, len(x)))].mean(axis=1)
    return stream.percentile_ci(list(means))[0]


def _clean(value: stream.Value) -> Any:
    if isinstance(value, np.ndarray):
        return [None if not np.isfinite(v) else round(float(v), 6) for v in value]
    return None if not np.isfinite(value) else round(float(value), 6)


def presence_json(P: np.ndarray) -> list[list[float | None]]:
    """``summary.json``'s presence matrix: rounded, None for a step not evaluated.

    >>> presence_json(np.array([[1.0, 0.1234567], [np.nan, np.nan]]))
    [[1.0, 0.123457], [None, None]]
    """
    return [[round(float(v), 6) if np.isfinite(v) else None for v in row] for row in P]


def build_summary(run_dir: Path, manifest: dict[str, Any], forget_order: list[str]) -> dict[str, Any]:
    """The summary of a complete run, computed only from its committed step files."""
    steps = committed_steps(run_dir)
    concepts, roles, _, N = load_matrix(run_dir, steps)
    identity = manifest["identity"]
    profile = identity["profile"]
    result = summarise(run_dir, steps, concepts, roles, forget_order,
                       replicates=profile.get("bootstrap", 1000), fid_replicates=profile.get("fid_bootstrap", 0),
                       seed=identity["seed"])
    compute = manifest.get("compute", {})
    unlearn = [compute[str(k)]["unlearn"] for k in steps[1:] if "unlearn" in compute.get(str(k), {})]
    evals = [compute[str(k)]["eval"] for k in steps if "eval" in compute.get(str(k), {})]
    seconds = [u["seconds"] for u in unlearn]
    devices = sorted({m.get("device", manifest.get("device")) for m in unlearn + evals} - {None})
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": manifest["run_id"],
        "sequence": identity["sequence"]["id"],
        "method": identity["method"]["name"],
        "mode": identity.get("mode", "sequential"),
        "split": identity.get("split", "eval"),
        "judge": identity.get("judge"),
        "config_hash": identity["method"]["config_hash"],
        "seed": identity["seed"],
        "profile": profile["name"],
        "concepts": concepts,
        "roles": roles,
        "forget_order": forget_order,
        "presence": presence_json(result["P"]),
        "n": N.tolist(),
        "prompt_hits": {c: hits_json(h) for c, h in zip(concepts, result["hits"].hits, strict=True)},
        "prompt_images": {c: n.tolist() for c, n in zip(concepts, result["hits"].images, strict=True)},
        "metrics": result["metrics"],
        "metrics_ci": result["ci"],
        "quality": result["quality"],
        "quality_ci": result["quality_ci"],
        "compute": {
            "unlearn_seconds": seconds,
            "unlearn_seconds_median": round(float(np.median(seconds)), 3) if seconds else None,
            "eval_seconds_median": round(float(np.median([e["seconds"] for e in evals])), 3) if evals else None,
            "peak_rss_mb": max((m["peak_rss_mb"] for m in unlearn + evals), default=None),
            "peak_cuda_mb": max((m["peak_cuda_mb"] for m in unlearn + evals if m.get("peak_cuda_mb")), default=None),
            **({"devices": devices} if len(devices) > 1 else {}),  # steps computed on other machines
        },
        "evaluators": identity["evaluators"],
    }
