"""Evaluating one checkpoint: sample the plan's images, judge them, collect FID features and CLIP
scores, and reuse the evaluation of bit-identical weights (``evaluation.cache``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from culbench.catalog import CLIP_SCORERS, FEATURES, JUDGES, REFERENCES
from culbench.compute import Meter
from culbench.evaluation import presence, quality
from culbench.evaluation.cache import EvalCache, Hit
from culbench.evaluation.presence import evaluate_presence
from culbench.evaluation.presence import plan as evaluation_plan
from culbench.runfolder.layout import SAMPLES
from culbench.runfolder.manifest import locked
from culbench.runfolder.records import samples_jsonl


class CheckpointEvaluator:
    """The judge and quality evaluators of one run, and the cache of its evaluations.

    Args:
        seq: the sequence (its eval split chosen); prof: the profile.
        model: the base model (keys the cache by backend); backend_options: its options.
        judge: a registered judge name, ``None`` for the sequence's own (built with its options).
        judge_options, fid, fid_options, device: as ``culbench run`` takes them.
        cache_root: where evaluations of the base model are stored; ``None``: no cache.
    """

    def __init__(self, seq: Any, prof: Any, model: Any, *, backend_options: Mapping[str, Any], device: str,
                 judge: str | None, judge_options: Mapping[str, Any], fid: str | None,
                 fid_options: Mapping[str, Any], cache_root: Path | None) -> None:
        self.seq, self.prof = seq, prof
        options = {**(seq.spec.judge.options if judge is None else {}), **judge_options}
        self.judge = JUDGES.get(judge or seq.spec.judge.name)(device=device, **options)
        self.judge.bind(seq.concepts, seq.roles)  # judges that need the sequence's concepts (confusables)
        self.evaluators = _quality_evaluators(seq, device)
        if fid:
            self.evaluators["features"] = FEATURES.get(fid)(device=device, **fid_options)
        self.featurizer = self.evaluators.get("features") or (self.judge if self.judge.has_features else None)
        self.cache = EvalCache(
            cache_root, items=evaluation_plan(seq, prof),
            sampler={"steps": prof.sample_steps or seq.spec.eval.sampler.steps,
                     "guidance": seq.spec.eval.sampler.guidance, "batch_size": prof.batch_size},
            model=model, backend={"name": seq.spec.model.backend, "options": dict(backend_options)}, device=device,
            evaluators=[self.judge, *self.evaluators.values()], code=[presence, quality],
        ) if cache_root is not None else None
        self._last: tuple[str, Hit] | None = None  # (weights sha256, evaluation) of the previous checkpoint

    def fingerprints(self) -> list[dict[str, Any]]:
        """Every evaluator's fingerprint (part of a run's identity)."""
        return [self.judge.fingerprint(), *(e.fingerprint() for e in self.evaluators.values())]

    def reference_features(self, cache_root: Path) -> bytes | None:
        """Features of the sequence's real reference images (``reference.npy``), when it names them."""
        if "reference" not in self.evaluators or self.featurizer is None:
            return None
        reference = quality.reference_features(
            self.evaluators["reference"], self.featurizer, evaluation_plan(self.seq, self.prof),
            sequence_hash=self.seq.content_hash, cache_root=cache_root)
        return quality.npy_bytes(reference.astype("float16"))

    def forget_previous(self) -> None:
        """Forget the previous checkpoint's evaluation (its weights were not this run's last)."""
        self._last = None

    def evaluate(self, model: Any, weights_sha: str, base_sha: str, progress: Callable[..., Any],
                 log: Callable[[str], None]) -> tuple[Hit, dict[str, Any]]:
        """The cells, step files and eval compute of ``model`` (whose weights hash to
        ``weights_sha``): the previous checkpoint's when the weights are bit-identical to it, the
        stored base evaluation when they are the base's, else sampled and judged now (and stored
        when they are the base model's, ``base_sha``)."""
        key = self.cache.key(weights_sha) if self.cache is not None else None
        hit = None
        if self.cache is not None:
            hit = self._last[1] if self._last is not None and self._last[0] == weights_sha else self.cache.load(key)
        if hit is not None:
            log("evaluation reused (bit-identical weights)")
            compute = {**hit.compute, "cached": True}
        else:
            hit = self._sample_and_judge(model, progress)
            compute = hit.compute
            if self.cache is not None and weights_sha == base_sha:  # only the base model is worth storing
                with locked(self.cache.root):
                    self.cache.store(key, hit.cells, hit.files, hit.compute)
        self._last = (weights_sha, hit)
        return hit, compute

    def _sample_and_judge(self, model: Any, progress: Callable[..., Any]) -> Hit:
        observers: dict[str, Any] = {}
        if self.featurizer is not None:
            observers["features"] = quality.FeatureCollector(self.featurizer.features)
        if "clip" in self.evaluators:
            observers["clip"] = quality.ClipCollector(self.evaluators["clip"])
        with Meter() as meter:
            model.unet.eval()
            cells, records = evaluate_presence(model, self.judge, self.seq, self.prof, progress,
                                               list(observers.values()))
        if "clip" in observers:
            for rec, score in zip(records, observers["clip"].scores, strict=True):
                rec["clip"] = round(score, 6)
        files = {SAMPLES: samples_jsonl(records)}
        if "features" in observers:
            files["features.npy"] = quality.npy_bytes(observers["features"].array().astype("float16"))
        return Hit({cid: cell.to_dict() for cid, cell in cells.items()}, files, meter.to_dict())


def _quality_evaluators(seq: Any, device: str) -> dict[str, Any]:
    """The sequence's CLIP scorer and reference image set, when it names them."""
    out: dict[str, Any] = {}
    if seq.spec.eval.clip is not None:
        out["clip"] = CLIP_SCORERS.get(seq.spec.eval.clip.name)(device=device, **seq.spec.eval.clip.options)
    if seq.spec.eval.reference is not None:
        spec = seq.spec.eval.reference
        out["reference"] = REFERENCES.get(spec.name)(device=device, **spec.options)
    return out
