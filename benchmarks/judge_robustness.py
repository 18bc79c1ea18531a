"""Both ToyWorld judges on clean and degraded renders, and how degraded the models' samples are.

    python benchmarks/judge_robustness.py [RUN ...] [--n 2000] [--threads 1] [--json out.json]

1. Accuracy per concept kind on clean held-out renders: the main judge (CNN, one head per kind)
   and the second judge (``toyworld-clip-zeroshot``: its reading of the kind).
2. How far samples are from renders of the same prompts and seeds, for the base model and for
   each RUN's final step (retained concepts only: a forgotten concept's image is meant to
   differ): background noise σ (std of the border pixels, per channel), sharpness (mean
   |Laplacian|) as the Gaussian blur σ that gives renders the same sharpness, and the object's
   mean colour as |Δhue| (degrees), saturation and brightness ratios.
3. Both judges' accuracy per kind on renders degraded by Gaussian noise, Gaussian blur, hue
   rotation and saturation/brightness scaling at a range of strengths, then by all of them at
   once at the median and at the 90th percentile of what the samples show.

Accuracies do not depend on the machine; no timings are reported.
"""

# ruff: noqa: T201  (a benchmark prints its table)
from __future__ import annotations

import argparse
import colorsys
import json
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF

KINDS = ("object", "colour", "pattern", "character", "background", "position")
SWEEP = {
    "noise": [0.02, 0.05, 0.1, 0.15, 0.2, 0.3],
    "blur": [0.5, 0.75, 1.0, 1.5, 2.0],
    "hue": [5, 10, 20, 30, 45],
    "saturation": [0.9, 0.75, 0.5, 0.25],
    "brightness": [1.25, 0.9, 0.75, 0.5],
}


def degrade(images: torch.Tensor, kind: str, strength: float, seed: int = 0) -> torch.Tensor:
    """Images in [0, 1] degraded by one kind of damage: noise σ, blur σ (px), hue rotation
    (degrees), saturation or brightness factor."""
    if kind == "noise":
        gen = torch.Generator().manual_seed(seed)
        return (images + strength * torch.randn(images.shape, generator=gen)).clamp(0, 1)
    if kind == "blur":
        size = 2 * int(np.ceil(3 * strength)) + 1
        return TF.gaussian_blur(images, [size, size], [strength, strength])
    if kind == "hue":
        return TF.adjust_hue(images, ((strength + 180) % 360 - 180) / 360)
    if kind == "saturation":
        return TF.adjust_saturation(images, strength)
    return TF.adjust_brightness(images, strength).clamp(0, 1)


def degrade_all(images: torch.Tensor, levels: dict[str, float]) -> torch.Tensor:
    """Blur, then colour shifts, then noise, at the given levels (a sample-like degradation)."""
    out = degrade(images, "blur", levels["blur"]) if levels["blur"] > 0 else images
    for kind in ("hue", "saturation", "brightness"):
        out = degrade(out, kind, levels[kind])
    return degrade(out, "noise", levels["noise"])


@torch.no_grad()
def readings(
    main, second, images: torch.Tensor
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Each judge's reading of every kind, per image: (main, second)."""
    from culbench.toyworld.judge import HEADS

    a: dict[str, list[str]] = {k: [] for k in KINDS}
    b: dict[str, list[str]] = {k: [] for k in KINDS}
    for i in range(0, len(images), 500):
        batch = images[i : i + 500]
        for kind, logits in main.logits(batch).items():
            a[kind] += [HEADS[kind][j] for j in logits.argmax(1).tolist()]
        for kind, (values, logits) in second.read(batch).items():
            b[kind] += [values[j] for j in logits.argmax(1).tolist()]
    return a, b


def accuracy(
    main, second, images: torch.Tensor, truth: dict[str, list[str]]
) -> dict[str, dict[str, float]]:
    """Per judge, per kind: share of images whose reading is the true value."""
    a, b = readings(main, second, images)
    return {
        name: {
            k: float(np.mean([x == y for x, y in zip(read[k], truth[k], strict=True)]))
            for k in KINDS
        }
        for name, read in (("main", a), ("second", b))
    }


def _border(images: torch.Tensor) -> torch.Tensor:
    """Pixels that are background in every render: rows 0-1 and 30-31, columns 0 and 31."""
    return torch.cat(
        [
            images[:, :, :2].flatten(2),
            images[:, :, 30:].flatten(2),
            images[:, :, :, :1].flatten(2),
            images[:, :, :, 31:].flatten(2),
        ],
        dim=2,
    )


def image_stats(images: torch.Tensor) -> dict[str, np.ndarray]:
    """Per image: border noise σ, sharpness (mean |Laplacian|), the object's mean colour (HSV)."""
    border = _border(images)
    noise = border.std(dim=2).mean(dim=1)
    lap = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]).expand(3, 1, 3, 3)
    sharp = torch.nn.functional.conv2d(images, lap, groups=3).abs().mean(dim=(1, 2, 3))
    bg = border.median(dim=2).values[:, :, None, None]
    mask = ((images - bg).norm(dim=1, keepdim=True) > 0.25).float()
    mean_rgb = (images * mask).sum(dim=(2, 3)) / mask.sum(dim=(2, 3)).clamp(min=1)
    hsv = np.array([colorsys.rgb_to_hsv(*rgb) for rgb in mean_rgb.tolist()])
    return {"noise": noise.numpy(), "sharp": sharp.numpy(), "hsv": hsv}


def render_like(items: list[dict]) -> torch.Tensor:
    """Jittered renders of the items' prompts, one per (prompt, seed)."""
    from culbench.toyworld import render as tw
    from culbench.toyworld.data import scene_from_prompt

    arrays = [
        tw.render(scene_from_prompt(i["prompt"]), 32, np.random.default_rng(i["seed"]))
        for i in items
    ]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255


def deviation(samples: torch.Tensor, renders: torch.Tensor) -> dict[str, np.ndarray]:
    """Per pair: sample noise σ, sharpness ratio, |Δhue| (deg), saturation and value ratios."""
    s, r = image_stats(samples), image_stats(renders)
    dhue = np.abs((s["hsv"][:, 0] - r["hsv"][:, 0] + 0.5) % 1.0 - 0.5) * 360
    ratio = lambda a, b: a / np.maximum(b, 1e-6)  # noqa: E731
    return {
        "noise": s["noise"],
        "sharp_ratio": ratio(s["sharp"], r["sharp"]),
        "hue": dhue,
        "saturation": ratio(s["hsv"][:, 1], r["hsv"][:, 1]),
        "brightness": ratio(s["hsv"][:, 2], r["hsv"][:, 2]),
    }


def blur_for_sharpness(renders: torch.Tensor, ratio: float) -> float:
    """The Gaussian blur σ at which renders keep ``ratio`` of their sharpness (0 if ≥ 1)."""
    if ratio >= 1:
        return 0.0
    base = image_stats(renders)["sharp"].mean()
    grid = np.arange(0.25, 3.01, 0.05)
    kept = [image_stats(degrade(renders, "blur", float(g)))["sharp"].mean() / base for g in grid]
    return float(grid[int(np.argmin(np.abs(np.array(kept) - ratio)))])


def model_deviation(
    run: Path | None, per_concept: int
) -> tuple[str, dict[str, np.ndarray], torch.Tensor]:
    """Samples of retained concepts (final step of ``run``; None: base model) and their renders."""
    from culbench.evaluation.judge_agreement import sample_items, step_model
    from culbench.tasks import resolve_sequence

    if run is None:
        seq, step, manifest = (
            resolve_sequence("toy10@1"),
            0,
            {"identity": {"model": {"options": {}}}},
        )
        profile, label, run_dir = (
            {"prompts_per_concept": 6, "seeds_per_prompt": 6},
            "base model",
            Path("."),
        )
    else:
        manifest = json.loads((run / "manifest.json").read_text())
        seq, step = (
            resolve_sequence(manifest["identity"]["sequence"]["id"]),
            manifest["steps_total"],
        )
        profile, label, run_dir = manifest["identity"]["profile"], manifest["run_id"], run
    items = [
        i
        for i in sample_items(run_dir, step, seq, profile, per_concept)
        if seq.roles[i["concept"]] != "forget"
    ]
    model = step_model(run_dir, step, manifest, seq, "cpu")
    samples = torch.cat(
        [
            model.sample(
                [i["prompt"] for i in items[k : k + 64]],
                [i["seed"] for i in items[k : k + 64]],
                steps=seq.spec.eval.sampler.steps,
                guidance=seq.spec.eval.sampler.guidance,
            )
            for k in range(0, len(items), 64)
        ]
    )
    renders = render_like(items)
    return label, deviation(samples, renders), renders


def measured_levels(
    stats: dict[str, np.ndarray], renders: torch.Tensor, q: float
) -> dict[str, float]:
    """Degradation levels at quantile ``q`` of the samples' deviation (the worse side)."""
    return {
        "noise": float(np.quantile(stats["noise"], q)),
        "blur": blur_for_sharpness(renders, float(np.quantile(stats["sharp_ratio"], 1 - q))),
        "hue": float(np.quantile(stats["hue"], q)),
        "saturation": float(np.quantile(stats["saturation"], 1 - q)),
        "brightness": float(np.quantile(stats["brightness"], 1 - q)),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "runs", nargs="*", type=Path, help="run folders whose final step keeps its weights"
    )
    parser.add_argument("--n", type=int, default=2000, help="held-out renders per condition")
    parser.add_argument("--per-concept", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from culbench.toyworld.clip_judge import ToyWorldClipZeroShotJudge
    from culbench.toyworld.data import sample_scenes
    from culbench.toyworld.judge import ToyWorldJudge, render_batch

    main_judge, second = ToyWorldJudge(), ToyWorldClipZeroShotJudge()
    scenes = sample_scenes(args.n, seed=4242)
    images, _ = render_batch(scenes, np.random.default_rng(4242))
    truth = {k: [s.labels()[k] for s in scenes] for k in KINDS}
    out: dict = {"threads": args.threads, "torch": torch.__version__, "n": args.n}
    out["clean"] = accuracy(main_judge, second, images, truth)
    print("clean", json.dumps(out["clean"]))
    out["samples"] = {}
    for run in [None, *args.runs]:
        label, stats, renders = model_deviation(run, args.per_concept)
        levels = {q: measured_levels(stats, renders, q) for q in (0.5, 0.9)}
        out["samples"][label] = {
            "n": len(stats["noise"]),
            "median": levels[0.5],
            "p90": levels[0.9],
        }
        print("samples", label, json.dumps(out["samples"][label]))
    out["sweep"] = {
        f"{kind} {s}": accuracy(main_judge, second, degrade(images, kind, s), truth)
        for kind, strengths in SWEEP.items()
        for s in strengths
    }
    for name, levels in [
        (f"{label} {q}", out["samples"][label][q])
        for label in out["samples"]
        for q in ("median", "p90")
    ]:
        out["sweep"][f"all at {name}"] = accuracy(
            main_judge, second, degrade_all(images, levels), truth
        )
    for name, acc in out["sweep"].items():
        print(
            f"{name:40s} main",
            " ".join(f"{acc['main'][k]:.3f}" for k in KINDS),
            " second",
            " ".join(f"{acc['second'][k]:.3f}" for k in KINDS),
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
