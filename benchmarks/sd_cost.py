"""Cost, memory and numerics of the Stable Diffusion tier (dfr10-sd15) for one model size and device.

    python benchmarks/sd_cost.py --size tiny                   # CPU: the tiny random SD, the same code
    python benchmarks/sd_cost.py --model /data/sd15-random --device cuda --clip ViT-L-14 \
        --switch autocast=bfloat16 --out benchmarks/results/sd_cost_h100.json

Measures, side by side in one process:

1. **Requests**: seconds and peak memory of request 1 (pikachu) per method at its reference
   settings (the method's ``SD_DEFAULTS``: dfr 600 iterations of batch 78, each sampling fresh
   teacher replays as v1 does), from the base model; ``dfr:cached=true`` is dfr with culbench's
   replay bank instead. ``--iterations-scale s`` < 1 times iteration-based methods at s and 2s of
   their reference iterations and extrapolates linearly to the reference (both timings recorded).
2. **Evaluation**: seconds per checkpoint evaluation (every image of the profile sampled and judged)
   per profile, with ``culbench run --dry-run``'s estimate for the same checkpoint beside it.
3. **Board**: GPU- (or CPU-) hours of one method's dfr10-sd15 board row at the standard profile:
   3 seeds × (10 requests + 11 evaluations).
4. **Agreement**: fp32 against ``autocast`` (bfloat16 by default) on fixed seeds: images (mean and
   max absolute difference), the judge's decisions, and the denoising loss of fixed batches.

No weights are downloaded: without ``--model`` a random SD v1.5-configured folder of ``--size`` is
written (``culbench sd make-random-model``); the judge is a randomly initialised open_clip model of
``--clip``'s architecture. Cost and memory do not depend on the weights' values; the judge's
decisions on random weights only measure agreement, not presence.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

SEQUENCE = "dfr10-sd15"
TINY_CLIP = {"embed_dim": 16,
             "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
             "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}


def random_clip(folder: Path, arch: str) -> dict[str, str]:
    """Judge options of a randomly initialised open_clip model (``tiny`` or an open_clip architecture)."""
    import open_clip

    options = {"model": arch}
    if arch == "tiny":
        config = folder / "tiny-clip-bench.json"
        config.write_text(json.dumps(TINY_CLIP))
        open_clip.add_model_config(str(config))
        options = {"model": "tiny-clip-bench", "model_config": str(config)}
    torch.manual_seed(0)
    weights = folder / f"{options['model']}.pt"
    torch.save(open_clip.create_model(options["model"]).state_dict(), weights)
    return {**options, "pretrained": str(weights)}


def peak_memory(device: str) -> float:
    """Peak allocated accelerator memory (GiB) since the last reset; on a CPU the process's resident
    high-water mark so far (it never resets: an upper bound that only grows)."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


_LOADED: dict[tuple, Any] = {}


def build(args: argparse.Namespace, **switches: Any) -> Any:
    """A fresh copy of the SD model with these switches (each folder is loaded once per process:
    a full-size load takes longer than most of what is timed)."""
    from culbench.catalog import MODELS

    options = {**args.switches, **switches}
    key = (args.model, args.device, tuple(sorted(options.items())))
    if key not in _LOADED:
        _LOADED[key] = MODELS.get("sd")(model=args.model, device=args.device, **options)
    return _LOADED[key].clone()


def reference_config(name: str, extra: dict[str, str], iterations: int | None = None) -> tuple[Any, dict[str, Any]]:
    """The method's config at its ``SD_DEFAULTS`` and ``extra`` (``iterations`` instead of theirs
    when given), and the overrides used."""
    from culbench.catalog import METHODS
    from culbench.config import build_config

    cls = METHODS.get(name)
    overrides = {**getattr(sys.modules[cls.__module__], "SD_DEFAULTS", {}), **extra}
    if iterations is not None:
        overrides["iterations"] = iterations
    return build_config(cls.Config, name, overrides), overrides


def one_request(args: argparse.Namespace, name: str, config: Any, seq: Any) -> tuple[float, float]:
    """Seconds and peak memory of request 1 served by ``name`` at ``config`` from the base model."""
    from culbench.api import Budget, StepContext
    from culbench.catalog import METHODS

    base = build(args)
    ctx = StepContext(step=1, seed=0, device=args.device, budget=Budget(None, None), base_model=lambda: base)
    method = METHODS.get(name)(config)
    model = base.clone()
    reset_peak(args.device)
    start = time.perf_counter()
    method.on_sequence_start(model, ctx)
    method.unlearn(model, seq.request(1), ctx)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start, peak_memory(args.device)


def time_request(args: argparse.Namespace, variant: str, seq: Any) -> dict[str, Any]:
    """Request 1 of ``variant`` (``METHOD`` or ``METHOD:FIELD=VALUE,...``). With ``--iterations-scale``
    below 1 an iteration-based method runs at n and 2n of its reference iterations (n = reference ×
    scale) and the reference request's seconds are extrapolated along that line."""
    name, _, settings = variant.partition(":")
    extra = dict(item.split("=", 1) for item in settings.split(",") if item)
    config, overrides = reference_config(name, extra)
    reference = int(overrides["iterations"]) if "iterations" in overrides else None
    if reference is None or args.iterations_scale >= 1:
        seconds, peak = one_request(args, name, config, seq)
        return {"method": variant, "seconds": round(seconds, 3), "peak_gib": round(peak, 3), "settings": overrides}
    n = max(1, round(reference * args.iterations_scale))
    timed = [(k, *one_request(args, name, reference_config(name, extra, k)[0], seq)) for k in (n, 2 * n)]
    slope = (timed[1][1] - timed[0][1]) / n
    seconds = timed[0][1] + slope * (reference - n)
    return {"method": variant, "seconds": round(seconds, 3), "peak_gib": round(max(t[2] for t in timed), 3),
            "settings": overrides, "extrapolated_from": {str(k): round(t, 3) for k, t, _ in timed}}


def time_evaluation(args: argparse.Namespace, profile: str) -> dict[str, Any]:
    """One checkpoint evaluation of the base model at ``profile``, and ``--dry-run``'s estimate of it.
    With ``--eval-prompts K`` only K prompts × 1 seed per concept are evaluated and the seconds are
    scaled by the images the profile has (both recorded): a whole standard evaluation of full-size SD
    is longer than one 10-minute GPU call."""
    import dataclasses

    from culbench.evaluation.checkpoint import CheckpointEvaluator
    from culbench.evaluation.presence import plan as evaluation_plan
    from culbench.plan import dry_run
    from culbench.spec import RunSpec

    spec = RunSpec("original", sequence=SEQUENCE, profile=profile, device=args.device, threads=args.threads,
                   model_options={"model": args.model, **args.switches}, judge_options=args.judge)
    plan = dry_run(spec)
    r = spec.resolve()
    prof = (dataclasses.replace(r.prof, prompts_per_concept=args.eval_prompts, seeds_per_prompt=1)
            if args.eval_prompts else r.prof)
    measured = len(evaluation_plan(r.seq, prof))
    model = build(args)
    evaluator = CheckpointEvaluator(r.seq, prof, model, backend_options=r.backend_options, device=args.device,
                                    judge=None, judge_options=args.judge, fid=None, fid_options={}, cache_root=None)
    sha = model.weights_sha256()
    reset_peak(args.device)
    start = time.perf_counter()
    evaluator.evaluate(model, sha, sha, lambda total, description: (lambda n=1: None), lambda message: None)
    seconds = time.perf_counter() - start
    return {"profile": profile, "images": plan.images_per_checkpoint, "images_measured": measured,
            "seconds": round(seconds * plan.images_per_checkpoint / measured, 3),
            "dry_run_seconds": round(plan.seconds_per_image * plan.images_per_checkpoint, 3),
            "peak_gib": round(peak_memory(args.device), 3)}


def agreement(args: argparse.Namespace, seq: Any, n: int) -> dict[str, Any]:
    """fp32 against ``--autocast`` on ``n`` fixed images and loss batches."""
    from culbench.catalog import JUDGES

    requests = [seq.request(k) for k in range(1, len(seq.steps) + 1)]
    items = [(pair.prompt, r.concept) for r in requests for pair in r.forget[:2]][:n]
    prompts, concepts, seeds = [i[0] for i in items], [i[1] for i in items], list(range(len(items)))
    judge = JUDGES.get(seq.spec.judge.name)(device=args.device, **args.judge)
    judge.bind(seq.concepts, seq.roles)
    out: dict[str, Any] = {"autocast": args.autocast, "images": len(items)}
    images, losses = [], []
    for switches in ({"autocast": "off"}, {"autocast": args.autocast}):
        model = build(args, **switches)
        images.append(model.sample(prompts, seeds))
        g = torch.Generator().manual_seed(0)
        x0 = torch.randn(len(items), *model.latent_shape, generator=g).to(args.device)
        noise = torch.randn(x0.shape, generator=g).to(args.device)
        t = torch.linspace(50, model.num_train_timesteps - 50, len(items)).long()
        with torch.no_grad():
            pred = model.predict(model.add_noise(x0, noise, t), t, model.encode(prompts))
        losses.append(((pred - noise) ** 2).mean(dim=(1, 2, 3)).cpu())
    diff = (images[0] - images[1]).abs()
    verdicts = [judge(batch, concepts).present for batch in images]
    out.update(image_mean_abs=round(float(diff.mean()), 5), image_max_abs=round(float(diff.max()), 5),
               judge_agreement=round(statistics.mean(a == b for a, b in zip(*verdicts, strict=True)), 4),
               loss_rel_diff_max=round(float(((losses[0] - losses[1]).abs() / losses[0]).max()), 6))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="SD folder (default: a random one of --size, written to a temp folder)")
    parser.add_argument("--size", default="tiny", choices=["tiny", "full"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--methods", default="dfr,uce,esd,sa")
    parser.add_argument("--variant", action="append", default=None,
                        help="METHOD:FIELD=VALUE,...: an extra row, the method at its SD_DEFAULTS plus these "
                             "(default: dfr:cached=true)")
    parser.add_argument("--iterations-scale", type=float, default=1.0)
    parser.add_argument("--profiles", default="standard,full")
    parser.add_argument("--switch", action="append", default=[], help="KEY=VALUE model option for every run")
    parser.add_argument("--autocast", default="bfloat16", choices=["bfloat16", "float16"])
    parser.add_argument("--eval-prompts", type=int, default=None,
                        help="evaluate K prompts x 1 seed per concept and scale to the profile's images")
    parser.add_argument("--agreement-images", type=int, default=16)
    parser.add_argument("--clip", default=None, help="judge architecture (default: tiny, or ViT-B-32 at full size)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.switches = dict(item.split("=", 1) for item in args.switch)
    with tempfile.TemporaryDirectory() as tmp:
        record = measure(args, Path(tmp))
    text = json.dumps(record, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(table(record))  # noqa: T201 - the benchmark's table


def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from culbench.models.sd_random import write_random_sd
    from culbench.provenance import environment
    from culbench.tasks import resolve_sequence

    if not args.model:
        args.model = str(write_random_sd(tmp / "sd", size=args.size))
    args.judge = random_clip(tmp, args.clip or ("ViT-B-32" if args.size == "full" else "tiny"))
    seq = resolve_sequence(SEQUENCE)
    variants = [m for m in args.methods.split(",") if m]
    variants += ["dfr:cached=true"] if args.variant is None else [v for v in args.variant if v]  # --variant "": none
    requests = [time_request(args, v, seq) for v in variants]
    evaluations = [time_evaluation(args, p) for p in args.profiles.split(",") if p]
    standard = next((e["seconds"] for e in evaluations if e["profile"] == "standard"), None)
    board = ({r["method"]: round(3 * (10 * r["seconds"] + 11 * standard) / 3600, 3) for r in requests}
             if standard else {})
    return {"device": args.device, "environment": environment(), "model": args.model, "size": args.size,
            "switches": args.switches, "threads": args.threads, "iterations_scale": args.iterations_scale,
            "judge": args.judge.get("model"), "requests": requests, "evaluations": evaluations,
            "board_hours_standard": board, "agreement": agreement(args, seq, args.agreement_images)}


def table(record: dict[str, Any]) -> str:
    env = record["environment"]
    lines = [f"{record['size']} SD on {record['device']} ({env.get('gpu') or 'CPU'}), switches {record['switches']}"]
    peak = "peak GiB" if record["device"].startswith("cuda") else "peak RSS GiB (so far)"
    lines += [f"| method | s/request | {peak} | board hours (standard, 3 seeds) |", "|---|---|---|---|"]
    lines += [f"| {r['method']}{' (extrapolated)' if 'extrapolated_from' in r else ''} | {r['seconds']:.1f} "
              f"| {r['peak_gib']:.2f} | "
              f"{record['board_hours_standard'].get(r['method'], '–')} |" for r in record["requests"]]
    lines += ["", f"| profile | images | s/checkpoint | --dry-run estimate | {peak} |", "|---|---|---|---|---|"]
    lines += [f"| {e['profile']} | {e['images']} ({e['images_measured']} measured) | {e['seconds']:.1f} "
              f"| {e['dry_run_seconds']:.1f} "
              f"| {e['peak_gib']:.2f} |" for e in record["evaluations"]]
    a = record["agreement"]
    lines += ["", f"fp32 vs autocast {a['autocast']} on {a['images']} images: mean |Δ| {a['image_mean_abs']}, "
              f"max |Δ| {a['image_max_abs']}, judge agreement {a['judge_agreement']}, "
              f"max relative loss difference {a['loss_rel_diff_max']}"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
