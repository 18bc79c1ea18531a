"""Where one toy10 evaluation (standard profile: 38 concepts × 6 prompts × 6 seeds) spends its time.

    python benchmarks/eval_cost.py [--threads 2] [--repeats 3] [--batch 64]

Times each component of ``evaluate_presence`` on the shipped base model, batch by batch, over
the whole evaluation plan: the text encoder, the UNet's DDIM steps, the VAE decode, the judge,
the judge's FID features and the tiny-CLIP score. Prints the median total per component over
``--repeats`` passes, its share, and the per-image cost.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from culbench.catalog import CLIP_SCORERS, JUDGES
    from culbench.evaluation.presence import plan
    from culbench.profiles import get_profile
    from culbench.tasks import resolve_sequence
    from culbench.toyworld.model import build_toyworld_model

    seq = resolve_sequence("toy10")
    items = plan(seq, get_profile("standard"))
    steps, guidance = seq.spec.eval.sampler.steps, seq.spec.eval.sampler.guidance
    model = build_toyworld_model()
    judge = JUDGES.get(seq.spec.judge.name)(device="cpu")
    clip = CLIP_SCORERS.get(seq.spec.eval.clip.name)(device="cpu")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {len(items)} images, "
          f"batch {args.batch}, {steps} DDIM steps, guidance {guidance}, repeats {args.repeats}")

    totals: dict[str, list[float]] = defaultdict(list)
    for _ in range(args.repeats):
        spent: dict[str, float] = defaultdict(float)

        def timed(name: str, fn, *a, **k):
            start = time.perf_counter()
            out = fn(*a, **k)
            spent[name] += time.perf_counter() - start
            return out

        whole = time.perf_counter()
        with torch.no_grad():
            for start in range(0, len(items), args.batch):
                chunk = items[start : start + args.batch]
                prompts, seeds = [i.prompt for i in chunk], [i.seed for i in chunk]
                timed("text encoder", model.encode, prompts)
                latents = timed("UNet (DDIM)", model.sample, prompts, seeds, steps=steps, guidance=guidance,
                                output="latent")
                images = timed("VAE decode", model.decode, latents)
                timed("judge", judge, images, [seq.concepts[i.concept] for i in chunk])
                timed("judge features", judge.features, images)  # reuses the judge's pass (as in a run)
                if hasattr(judge, "net"):  # what that reuse saves: the trunk run again
                    timed("(features anew)", judge.net.embed, images)
                timed("CLIP score", clip.score, images, prompts)
        spent["total"] = time.perf_counter() - whole - spent.get("(features anew)", 0.0)
        for name, value in spent.items():
            totals[name].append(value)

    total = statistics.median(totals["total"])
    print(f"{'component':<16} {'median s':>9} {'share':>7} {'ms/image':>9}")
    for name, values in totals.items():
        med = statistics.median(values)
        print(f"{name:<16} {med:9.2f} {med / total:7.1%} {1000 * med / len(items):9.2f}")
    print("(the UNet row includes the text encoder once more: model.sample encodes its prompts;\n"
          " '(features anew)' is not part of an evaluation: it times the judge pass that the features reuse)")


if __name__ == "__main__":
    main()
