"""How to spend a concept's evaluation images: prompts × seeds per prompt (issue #35, item 5).

The presence of concept c at a step is the share of its images judged to show c. Images of one
prompt share that prompt's effect, so the estimate's variance is, for n_p prompts × m seeds,

    Var(P) = σ_b² / n_p + σ_w² / (n_p · m)

with σ_b² the between-prompt variance of a prompt's presence and σ_w² the judge-verdict variance
among one prompt's images (seeds). This script estimates both from judged images of toy10@1
(one-way random-effects ANOVA per (step, concept) cell, pooled over the cells whose presence is
neither 0 nor 1) and gives, per design, the expected 95 % half-width of the prompt-cluster
bootstrap interval that ``culbench.evaluation.stream`` builds (the √(n_p/(n_p−1)) scale
included) and the same per image (× √images, the width a unit of evaluation cost buys).

    python benchmarks/eval_design.py --collect --run RUN_DIR   # judge steps at 16 prompts × 8 seeds (≈ 5 min)
    python benchmarks/eval_design.py                            # the tables (seconds)
    python benchmarks/eval_design.py --coverage                 # interval coverage by simulation (≈ 2 min)

``--collect`` loads the step weights of a toy10@1 run (a local run folder: published runs keep
no weights) and evaluates them with the ``full`` profile (every eval prompt × seed: 16 × 8),
writing per-image verdicts to ``benchmarks/results/eval_design/``. The analysis also reads the
run's own standard-profile verdicts (6 × 6, every step) when its ``samples.jsonl`` are there.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "eval_design"
DESIGNS = ((36, 1), (18, 2), (12, 3), (9, 4), (6, 6), (24, 1), (12, 2), (8, 3), (6, 4), (16, 1), (8, 2), (4, 4))
STEPS = (3, 6, 10)


def collect(run_dir: Path, steps: tuple[int, ...]) -> None:
    """Evaluate ``run_dir``'s step weights at every eval prompt × seed; store verdicts per cell."""
    import torch

    from culbench.catalog import JUDGES, MODELS
    from culbench.evaluation.presence import evaluate_presence
    from culbench.profiles import get_profile
    from culbench.runfolder import load_weights, read_json, step_dir
    from culbench.tasks import resolve_sequence

    torch.set_num_threads(1)
    manifest = read_json(run_dir / "manifest.json")
    seq = resolve_sequence(manifest["identity"]["sequence"]["id"]).with_split("eval")
    model = MODELS.get(seq.spec.model.backend)(device="cpu")
    if model.weights_sha256() != manifest["identity"]["model"]["base_sha256"]:
        raise SystemExit("this checkout's base model is not the run's: check out the commit that made the run")
    judge = JUDGES.get(seq.spec.judge.name)(device="cpu", **seq.spec.judge.options)
    judge.bind(seq.concepts, seq.roles)
    base = model.state_dict()
    RESULTS.mkdir(parents=True, exist_ok=True)
    for k in steps:
        out = RESULTS / f"{run_dir.parts[-4]}-step{k:02d}.json"
        if out.exists():
            continue
        model.load_state_dict(load_weights(step_dir(run_dir, k) / "model.safetensors", base))
        _, records = evaluate_presence(model, judge, seq, get_profile("full"))
        cells: dict[str, dict[str, list[int]]] = {}
        for r in records:
            cells.setdefault(r["concept"], {}).setdefault(str(r["prompt_index"]), []).append(int(r["present"]))
        out.write_text(json.dumps({"run": str(run_dir), "step": k, "cells": cells}, sort_keys=True) + "\n")
        print(f"step {k}: {out}")


def cells_of(run_dir: Path | None) -> dict[str, list[np.ndarray]]:
    """Every (step, concept) cell's verdicts as a (prompts, seeds) 0/1 array, by source: the
    collected full-profile cells and the run's own standard-profile ones."""
    cells: dict[str, list[np.ndarray]] = {"full profile (16 × 8)": [], "standard profile (6 × 6)": []}
    for path in sorted(RESULTS.glob("*-step*.json")):
        for prompts in json.loads(path.read_text())["cells"].values():
            cells["full profile (16 × 8)"].append(np.array([prompts[p] for p in sorted(prompts, key=int)]))
    if run_dir is not None and (run_dir / "steps").is_dir():
        for step in sorted((run_dir / "steps").iterdir()):
            per: dict[tuple[str, int], list[int]] = {}
            for line in (step / "samples.jsonl").read_text().splitlines():
                r = json.loads(line)
                per.setdefault((r["concept"], r["prompt_index"]), []).append(int(r["present"]))
            for concept in sorted({c for c, _ in per}):
                prompts = sorted(p for c, p in per if c == concept)
                cells["standard profile (6 × 6)"].append(np.array([per[(concept, p)] for p in prompts]))
    return cells


def components(cell: np.ndarray) -> tuple[float, float]:
    """(σ_b², σ_w²) of one cell by one-way ANOVA: σ_w² = pooled within-prompt variance,
    σ_b² = max(0, variance of prompt means − σ_w²/m).

    >>> components(np.array([[1, 1, 1, 1], [0, 0, 0, 0]]))
    (0.5, 0.0)
    """
    n_p, m = cell.shape
    within = float(cell.var(axis=1, ddof=1).mean()) if m > 1 else math.nan
    between = float(cell.mean(axis=1).var(ddof=1)) - within / m
    return max(0.0, between), within


def half_width(sb2: float, sw2: float, n_p: int, m: int) -> float:
    """Expected 95 % half-width of the prompt-cluster bootstrap interval of a presence:
    1.96 · √(n_p/(n_p−1)) · √((n_p−1)/n_p · (σ_b² + σ_w²/m) / n_p) = 1.96 · √((σ_b² + σ_w²/m) / n_p).

    >>> round(half_width(0.04, 0.16, 6, 6), 4)
    0.2066
    """
    return 1.96 * math.sqrt((sb2 + sw2 / m) / n_p)


def report(run_dir: Path | None) -> str:
    sources = {name: [c for c in cells if 0 < c.mean() < 1] for name, cells in cells_of(run_dir).items()}
    lines = ["| cells with 0 < presence < 1 | σ_b² (between prompts) | σ_w² (within a prompt) | "
             "share between, ρ = σ_b²/(σ_b²+σ_w²) |", "|---|---|---|---|"]
    pooled = {}
    for name, group in sources.items():
        if not group:
            continue
        sb2, sw2 = (float(np.mean(v)) for v in zip(*(components(c) for c in group), strict=True))
        pooled[name] = (sb2, sw2)
        lines.append(f"| {name}: {len(group)} | {sb2:.4f} | {sw2:.4f} | {sb2 / (sb2 + sw2):.2f} |")
    if not pooled:
        raise SystemExit("no judged cells: run with --collect --run RUN_DIR, or --run a run with samples.jsonl")
    names = list(pooled)
    lines += ["", "95 % half-width of a presence (mean cell) and the images a split needs for 6 × 6's width "
              "(as a share of 36), with the variance components of each source:", "",
              "| prompts × seeds | images | " + " | ".join(f"half-width, {n}" for n in names) + " | "
              + " | ".join(f"share for 6 × 6's width, {n}" for n in names) + " |",
              "|---|---|" + "---|" * 2 * len(names)]
    for n_p, m in DESIGNS:
        widths = [half_width(*pooled[n], n_p, m) for n in names]
        shares = [(w / half_width(*pooled[n], 6, 6)) ** 2 * n_p * m / 36 for w, n in zip(widths, names, strict=True)]
        lines.append(f"| {n_p} × {m} | {n_p * m} | " + " | ".join(f"{w:.3f}" for w in widths) + " | "
                     + " | ".join(f"{x:.2f}" for x in shares) + " |")
    return "\n".join(lines)


SCENARIOS = ((0.0, 1.0, 0.3), (0.3, 1.0, 0.3), (0.6, 0.6, 0.3), (1.0, 0.3, 0.3), (0.5, 1.5, 0.5), (0.5, 1.2, 0.3))


def _simulated_row(rng: np.random.Generator, sds: tuple[float, float, float], runs: int,
                   image_level: bool) -> list:
    """Runs × 6 prompts × 6 seeds of presence expit(1 + a_run + b_prompt + c_run×prompt), runs
    sharing the prompts; every image its own cluster when ``image_level``."""
    from scipy.special import expit

    from culbench.evaluation.stream import PromptHits

    sd_run, sd_prompt, sd_inter = sds
    p = expit(1.0 + rng.normal(0, sd_run, (runs, 1)) + rng.normal(0, sd_prompt, (1, 6))
              + rng.normal(0, sd_inter, (runs, 6)))
    images = rng.random((runs, 6, 6)) < p[:, :, None]
    if image_level:
        return [PromptHits([images[r].reshape(1, -1).astype(int)], [np.ones(36, int)]) for r in range(runs)]
    return [PromptHits([images[r].sum(axis=1)[None, :]], [np.full(6, 6)]) for r in range(runs)]


def coverage(datasets: int = 300, replicates: int = 200) -> str:
    """Empirical coverage of nominal 95 % intervals of a row's presence: this construction,
    the image-level bootstrap and a t-interval over the runs, per scenario (SDs on the logit
    scale: run, prompt, run × prompt) and number of runs."""
    from scipy.special import expit

    from culbench.evaluation.stream import bootstrap
    from culbench.leaderboard.rows import t_half_width

    lines = ["| SD run | SD prompt | SD run×prompt | runs | cluster bootstrap | image bootstrap | t over runs |",
             "|---|---|---|---|---|---|---|"]
    for sds in SCENARIOS:
        z = np.random.default_rng(0).normal(size=(3, 1_000_000))
        truth = float(expit(1.0 + sds[0] * z[0] + sds[1] * z[1] + sds[2] * z[2]).mean())
        for runs in (3, 5):
            rng = np.random.default_rng(35)
            covered = np.zeros(3)
            for i in range(datasets):
                state = rng.bit_generator.state
                for j, image_level in enumerate((False, True)):
                    rng.bit_generator.state = state  # the same simulated row for both bootstraps
                    row = _simulated_row(rng, sds, runs, image_level)
                    low, high = bootstrap(row, lambda r, P: {"p": float(P[0, 0])}, replicates, seed=i)["p"][0]
                    covered[j] += low <= truth <= high
                values = np.array([run.presence()[0, 0] for run in row])
                half = t_half_width(values)
                covered[2] += values.mean() - half <= truth <= values.mean() + half
            lines.append(f"| {sds[0]} | {sds[1]} | {sds[2]} | {runs} | "
                         + " | ".join(f"{c / datasets:.2f}" for c in covered) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collect", action="store_true", help="judge the run's steps at 16 prompts × 8 seeds")
    parser.add_argument("--run", type=Path, default=None, help="a local toy10@1 run folder with step weights")
    parser.add_argument("--coverage", action="store_true", help="interval coverage by simulation")
    args = parser.parse_args()
    if args.coverage:
        print(coverage())
        return
    if args.collect:
        if args.run is None:
            raise SystemExit("--collect needs --run RUN_DIR (a local toy10@1 run with its step weights)")
        collect(args.run, STEPS)
    print(report(args.run))


if __name__ == "__main__":
    main()
