"""``culbench toyworld``: train (reproduce) and check the embedded ToyWorld model and judge."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from culbench.cli.console import console, err_console

EXAMPLES = """Examples:

  culbench toyworld train --out toyworld-weights

  culbench toyworld train --out oracle --exclude star,red --stages unet

  culbench toyworld check --weights toyworld-weights
"""

app = typer.Typer(help="The embedded ToyWorld benchmark model.", no_args_is_help=True)


@app.command("train", epilog=EXAMPLES)
def train(
    out: Annotated[Path, typer.Option(help="Folder for the weights (toyworld.json, *.safetensors, SHA256SUMS).")],
    seed: Annotated[int, typer.Option(help="Recipe seed (0 reproduces the shipped weights).")] = 0,
    exclude: Annotated[str, typer.Option(help="Comma-separated concepts to leave out of the data: "
                                              "the scenes whose captions name them (retrain oracle).")] = "",
    stages: Annotated[str, typer.Option(help="Stages to train; the rest are copied from the shipped assets.")] = "judge,vae,unet,clip",
    quick: Annotated[bool, typer.Option(help="A seconds-long miniature recipe (for tests; useless weights).")] = False,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads (default: all cores).")] = None,
    model_version: Annotated[int, typer.Option(help="ToyWorld model version: 2 trains on captions with "
                                                    "synonyms and character paraphrases.")] = 1,
    warm_start: Annotated[int, typer.Option(help="Start text encoder + UNet from this shipped model version "
                                                 "(0: from scratch).")] = 0,
    unet_steps: Annotated[int | None, typer.Option(help="Text encoder + UNet optimiser steps (default: the recipe's).")] = None,
    unet_lr: Annotated[float | None, typer.Option(help="Peak learning rate of that stage (default: the recipe's).")] = None,
) -> None:
    """Train ToyWorld's judge, VAE, text encoder + UNet and CLIP from a seed (about 85 minutes on 2 cores)."""
    import os
    from dataclasses import replace

    import torch

    from culbench.cli.progress import open_progress
    from culbench.errors import CulbenchError
    from culbench.toyworld.train import STAGES, Recipe, train_all

    torch.set_num_threads(threads or max(1, os.cpu_count() or 1))  # timings assume this
    from culbench.toyworld.lexicon import check_version

    recipe = Recipe(seed=seed, model_version=check_version(model_version), warm_start=warm_start)
    recipe = replace(recipe, **{k: v for k, v in (("unet_steps", unet_steps), ("unet_lr", unet_lr)) if v is not None})
    if quick:
        recipe = replace(recipe, n_images=256, judge_images=256, judge_epochs=1, vae_steps=2,
                         vae_batch=8, unet_steps=2, unet_batch=8, held_out=64, clip_steps=2,
                         clip_batch=8, report_profile="smoke", report_fid_samples=0)
    chosen = [s.strip() for s in stages.split(",") if s.strip()]
    unknown = set(chosen) - set(STAGES)
    if unknown or "unet" not in chosen:
        raise CulbenchError(f"bad --stages '{stages}'", f"use a subset of {','.join(STAGES)} that includes unet")
    with open_progress(err_console) as (progress, log):
        report = train_all(out, recipe, exclude=[c for c in exclude.split(",") if c], stages=chosen,
                           log=log, progress=progress(recipe.unet_steps, "unet"))
    console.print(json.dumps(report, indent=2), highlight=False)
    console.print(f"weights written to {out}", highlight=False)


@app.command("check", epilog=EXAMPLES)
def check(
    weights: Annotated[Path | None, typer.Option(help="Folder of weights to check (default: the shipped ones).")] = None,
    tolerance: Annotated[float, typer.Option(help="Allowed |Δ presence| per concept vs the shipped report.")] = 0.10,
    profile: Annotated[str, typer.Option(help="Evaluation profile (the shipped reports: standard-6x6).")] = "standard-6x6",
    model_version: Annotated[int | None, typer.Option(help="Shipped model version to check or compare with "
                                                           "(default: the weights' own, else 1).")] = None,
) -> None:
    """Measure base presence P0 on toy10's concepts and compare it with the shipped weights' report;
    for model version 2 also presence under every synonym and character paraphrase (bar 0.80)."""
    from culbench.errors import CulbenchError
    from culbench.toyworld import assets
    from culbench.toyworld.model import folder_version, weights_folder
    from culbench.toyworld.quality import base_presence, compare, name_presence

    version = model_version or (folder_version(weights) if weights else 1)
    shipped_folder = weights_folder(version)
    folder = str(weights or shipped_folder)
    shipped = assets.load_json("toyworld.json", shipped_folder)["report"].get("presence", {})
    fresh = base_presence(folder, profile)
    low = {c: p for c, p in fresh.items() if p < 0.9}
    console.print(f"base presence: min {min(fresh.values()):.3f} mean "
                  f"{sum(fresh.values()) / len(fresh):.3f} over {len(fresh)} concepts", highlight=False)
    for concept, value in sorted(fresh.items(), key=lambda kv: kv[1])[:5]:
        console.print(f"  lowest: {concept} {value:.3f}", highlight=False)
    differ = compare(shipped, fresh, tolerance) if weights else []
    weak: list[str] = []
    if version >= 2:
        names = name_presence(folder)
        weak = [f"{c}/{w} {p:.2f}" for c, words in names.items() for w, p in words.items() if w != c and p < 0.8]
        console.print(json.dumps(names), highlight=False, soft_wrap=True)
    if low or differ or weak:
        raise CulbenchError(
            f"check failed: {len(low)} concepts below 0.90 presence {sorted(low)}; "
            f"{len(differ)} differ from the shipped report by > {tolerance} {differ[:3]}; "
            f"{len(weak)} other names below 0.80 {weak[:5]}",
            "retrain with the default recipe, or report the difference")
    console.print("ok", highlight=False)


@app.command("grid", epilog=EXAMPLES)
def grid(
    out: Annotated[Path, typer.Option(help="Folder for the PNGs (one per concept kind).")] = Path("docs/img"),
    per_concept: Annotated[int, typer.Option(help="Samples per concept (columns).")] = 6,
) -> None:
    """Save sample grids of the base model: a row per toy10 concept, grouped by kind."""
    from culbench.toyworld.quality import sample_grids

    for path in sample_grids(str(out), per_concept=per_concept):
        console.print(f"wrote {path}", highlight=False)
