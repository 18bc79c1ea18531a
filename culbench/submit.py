"""``culbench submit RUN_DIR...``: check finished runs and write a submission bundle.

A bundle is what a pull request into ``leaderboard/submissions/`` adds: for each run its
manifest, summary, presence matrix and per-step evaluation files (weights are left out), one
sample grid, and ``SUBMISSION.md`` with the checklist. The checks: every run is complete and
valid (hashes, counts, summary recomputes), all runs share one sequence@version, profile and
method config, seeds are distinct, and the evaluators' fingerprints and the sequence's content
hash equal the ones pinned by this culbench install.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from culbench import runfolder as rf
from culbench.errors import RunError

STEP_FILES = ("step.json", "samples.jsonl", "features.npy")
CHECKLIST = """- [ ] The method's code is public (link it here) and its docstring cites the paper, the
      reference code with its commit, and every deviation.
- [ ] The results were produced by `culbench run` with the evaluators pinned by this culbench
      version (the bundle's fingerprints were checked by `culbench submit`).
- [ ] Hyperparameters were chosen on validation prompts only — never on the eval prompts.
- [ ] At least 3 seeds at the standard profile.
"""


def _pinned_evaluators(sequence: str) -> tuple[list[dict[str, Any]], str]:
    from culbench.catalog import CLIP_SCORERS, JUDGES, REFERENCES
    from culbench.tasks import resolve_sequence

    seq = resolve_sequence(sequence)
    found = [JUDGES.get(seq.spec.judge.name)(device="cpu", **seq.spec.judge.options).fingerprint()]
    for spec, registry in ((seq.spec.eval.clip, CLIP_SCORERS), (seq.spec.eval.reference, REFERENCES)):
        if spec is not None:
            found.append(registry.get(spec.name)(device="cpu", **spec.options).fingerprint())
    return found, seq.content_hash


def _check_orders(sequence: str, seeds: list[int]) -> None:
    """A submission's seeds cover every deletion order of its sequence (seed s runs order s mod n)."""
    from culbench.tasks import resolve_sequence

    seq = resolve_sequence(sequence)
    missing = sorted(set(range(len(seq.orders))) - {seq.order_of_seed(s) for s in seeds})
    if missing:
        raise RunError(f"{sequence} has {len(seq.orders)} deletion orders; seeds {seeds} leave out order(s) {missing}",
                       f"add runs with seeds that cover them (seed s runs order s mod {len(seq.orders)}, e.g. 0..{len(seq.orders) - 1})")


def check_runs(run_dirs: Sequence[Path]) -> list[dict[str, Any]]:
    """Manifests of ``run_dirs`` after every submission check; raises RunError on the first failure."""
    from culbench.validate import validate_run

    manifests = []
    for run_dir in run_dirs:
        problems = validate_run(run_dir)
        if problems:
            raise RunError(f"{run_dir} is not a valid complete run: {problems[0]}",
                           "rerun the same `culbench run` command to finish or repair it")
        manifests.append(rf.read_json(run_dir / "manifest.json"))
    identity = [(m["identity"]["sequence"]["id"], m["identity"]["profile"]["name"],
                 m["identity"]["method"]["name"], m["identity"]["method"]["config_hash"],
                 m["identity"].get("mode", "sequential")) for m in manifests]
    if len(set(identity)) != 1:
        raise RunError(f"the runs differ in sequence/profile/method/config/mode: {sorted(set(identity))}",
                       "submit one method configuration at a time")
    seeds = [m["identity"]["seed"] for m in manifests]
    if len(set(seeds)) != len(seeds):
        raise RunError(f"seed repeated among the runs: {seeds}", "pass each seed once")
    pinned, content_hash = _pinned_evaluators(identity[0][0])
    _check_orders(identity[0][0], seeds)
    for run_dir, manifest in zip(run_dirs, manifests, strict=True):
        if manifest["identity"]["sequence"]["content_hash"] != content_hash:
            raise RunError(f"{run_dir} used other task files than this culbench's {identity[0][0]}",
                           "rerun with this culbench version's sequence")
        if manifest["identity"]["evaluators"] != pinned:
            raise RunError(f"{run_dir} was evaluated with other evaluators than the pinned ones",
                           "rerun with this culbench version (its judge, CLIP and reference are pinned)")
    return manifests


def bundle(run_dirs: Sequence[Path], out: Path, grid: bool = True) -> Path:
    """Check the runs and write the bundle into ``out``; returns ``out``."""
    manifests = check_runs(run_dirs)
    final = rf.step_dir(run_dirs[0], manifests[0]["steps_total"]) / rf.WEIGHTS
    if grid and not final.is_file():  # a from-scratch method's run may have dropped its weights
        raise RunError(f"{final} is not there: the sample grid needs the final weights",
                       "submit a run that kept its last step's weights, or pass --no-grid")
    if out.exists() and any(out.iterdir()):
        raise RunError(f"{out} is not empty", "choose an empty --out folder")
    for run_dir, manifest in zip(run_dirs, manifests, strict=True):
        target = out / manifest["run_id"]
        target.mkdir(parents=True)
        for name in ("manifest.json", "summary.json", "matrix.csv", "reference.npy"):
            if (run_dir / name).exists():
                shutil.copy2(run_dir / name, target / name)
        for k in manifest["steps_committed"]:
            step = rf.step_dir(run_dir, k)
            dest = rf.step_dir(target, k)
            dest.mkdir(parents=True)
            for name in STEP_FILES:
                if (step / name).exists():
                    shutil.copy2(step / name, dest / name)
    first = manifests[0]["identity"]
    lines = [f"# Submission: {first['method']['name']} on {first['sequence']['id']} ({first['profile']['name']})", "",
             f"Runs (seeds {sorted(m['identity']['seed'] for m in manifests)}): "
             + ", ".join(f"`{m['run_id']}`" for m in manifests), "",
             f"Method source: {first['method']['source']}; config hash `{first['method']['config_hash'][:12]}`.",
             "Weights and method state are not included (size); everything the leaderboard reads is.", "",
             "## Checklist", "", CHECKLIST]
    if grid:
        lines += ["## Samples", "", "![samples](samples.png)", ""]
        sample_grid(run_dirs[0], out / "samples.png")
    (out / "SUBMISSION.md").write_text("\n".join(lines), encoding="utf-8")
    return out


def sample_grid(run_dir: Path, path: Path, per_concept: int = 3) -> Path:
    """Rows = forget concepts; left half the base model, right half the final model (eval seeds)."""
    import torch
    from torchvision.utils import save_image

    from culbench.catalog import MODELS
    from culbench.tasks import resolve_sequence

    manifest = rf.read_json(run_dir / "manifest.json")
    seq = resolve_sequence(manifest["identity"]["sequence"]["id"])
    model = MODELS.get(seq.spec.model.backend)(device="cpu", **manifest["identity"]["model"]["options"])
    prompts = [seq.prompts[c].eval[0] for c in seq.steps for _ in range(per_concept)]
    seeds = [seq.spec.eval.seeds[i % len(seq.spec.eval.seeds)] for _ in seq.steps for i in range(per_concept)]
    sampler = {"steps": seq.spec.eval.sampler.steps, "guidance": seq.spec.eval.sampler.guidance}
    base = model.sample(prompts, seeds, **sampler)
    final = rf.step_dir(run_dir, manifest["steps_total"]) / rf.WEIGHTS
    model.load_state_dict(rf.load_weights(final, model.state_dict()))
    after = model.sample(prompts, seeds, **sampler)
    rows = [torch.cat([base[i : i + per_concept], after[i : i + per_concept]])
            for i in range(0, len(prompts), per_concept)]
    images = torch.nn.functional.interpolate(torch.cat(rows), scale_factor=max(1, 96 // base.shape[-1]), mode="nearest")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(images, str(path), nrow=2 * per_concept, padding=2, pad_value=0.5)
    return path
