"""ToyWorld quality bars: judge accuracy, base presence per toy10 concept, base FID.

    python benchmarks/toyworld_quality.py [--weights DIR] [--profile standard] [--steps N]

Bars (issue #3): judge ≥ 99 % per head on held-out renders; P0(c) ≥ 0.90 for every toy10
concept at the standard profile's sampler; FID (judge features) vs renders small and stable
across seeds.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weights", default=None)
    parser.add_argument("--profile", default="standard")
    parser.add_argument("--steps", type=int, default=None, help="override the sequence's DDIM steps")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from dataclasses import replace

    from culbench.evaluation.presence import evaluate_presence
    from culbench.profiles import get_profile
    from culbench.tasks import resolve_sequence
    from culbench.toyworld.data import sample_scenes
    from culbench.toyworld.judge import ToyWorldJudge, head_accuracy, render_batch
    from culbench.toyworld.model import build_toyworld_model
    from culbench.toyworld.quality import fid_vs_renders

    judge = ToyWorldJudge(weights=args.weights)
    scenes = sample_scenes(5000, seed=4242)
    images, labels = render_batch(scenes, np.random.default_rng(4242))
    accuracy = head_accuracy(judge.net, images, labels)
    print("judge accuracy on 5000 held-out renders:", {k: round(v, 4) for k, v in accuracy.items()})

    seq = resolve_sequence("toy10")
    model = build_toyworld_model(weights=args.weights)
    profile = get_profile(args.profile)
    if args.steps:
        profile = replace(profile, sample_steps=args.steps)
    start = time.perf_counter()
    cells, _ = evaluate_presence(model, judge, seq, profile)
    seconds = time.perf_counter() - start
    presence = {c: cell.presence for c, cell in cells.items()}
    steps = profile.sample_steps or seq.spec.eval.sampler.steps
    print(f"base presence ({args.profile}, DDIM {steps}, {cells[next(iter(cells))].n} images/concept, "
          f"{seconds:.1f} s): min {min(presence.values()):.3f}, mean {np.mean(list(presence.values())):.3f}")
    for kind in ("character", "object", "colour", "pattern", "background", "position"):
        row = {c: round(p, 3) for c, p in presence.items() if seq.concepts[c].kind == kind}
        print(f"  {kind:10s} {row}")
    fids = [fid_vs_renders(model, judge, n=2000, seed=s, steps=steps) for s in (0, 1)]
    print(f"FID (judge features) vs renders, 2000 samples, seeds 0/1: {fids[0]:.3f} / {fids[1]:.3f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"judge_accuracy": accuracy, "presence": presence, "fid": fids,
                       "sample_steps": steps, "profile": args.profile}, handle, indent=2)


if __name__ == "__main__":
    main()
