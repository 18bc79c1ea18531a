"""ToyWorld speed bars (issue: sampling 64 images <= 3 s; one optimiser step at batch 32 with a
frozen teacher forward <= 0.3 s; one standard-profile checkpoint evaluation <= 20 s, as the
runner does it: presence + judge features + CLIP scores; the summary of an 11-step run).

    python benchmarks/toyworld_speed.py [--threads 2] [--repeats 5] [--eval] [--run-dir RUN]

Prints medians (min, max) of several runs, measured side by side in one process.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def timed(fn, repeats: int) -> tuple[float, float, float]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--eval", action="store_true", help="also time one standard-profile evaluation")
    parser.add_argument("--run-dir", default=None, help="also time summary.json of this complete run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from culbench.tasks import resolve_sequence
    from culbench.toyworld.model import build_toyworld_model

    seq = resolve_sequence("toy10")
    model = build_toyworld_model()
    steps, guidance = seq.spec.eval.sampler.steps, seq.spec.eval.sampler.guidance
    prompts = [p for c in seq.steps for p in seq.prompts[c].eval][:64]
    seeds = list(range(64))
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, sampler: DDIM {steps} steps, guidance {guidance}")

    rows = [("sample 64 images", timed(lambda: model.sample(prompts, seeds, steps=steps, guidance=guidance), args.repeats))]

    student, teacher = model.clone(), model.clone()
    teacher.unet.requires_grad_(False)
    opt = torch.optim.AdamW(student.parameters("full"), lr=1e-5)
    x0 = model.sample(prompts[:32], seeds[:32], steps=4, output="latent")
    emb = model.encode(prompts[:32])

    def optimiser_step() -> None:
        noise = torch.randn_like(x0)
        t = torch.randint(0, model.num_train_timesteps, (32,))
        x_t = model.add_noise(x0, noise, t)
        with torch.no_grad():
            target = teacher.predict(x_t, t, emb)
        loss = torch.nn.functional.mse_loss(student.predict(x_t, t, emb), target)
        opt.zero_grad()
        loss.backward()
        opt.step()

    rows.append(("optimiser step, batch 32 (+teacher)", timed(optimiser_step, args.repeats * 2)))
    if args.eval:
        from culbench.evaluation.presence import evaluate_presence
        from culbench.profiles import get_profile
        from culbench.toyworld.judge import ToyWorldJudge

        from culbench.evaluation.quality import ClipCollector, FeatureCollector
        from culbench.toyworld.clip import ToyWorldCLIP

        judge, clip = ToyWorldJudge(), ToyWorldCLIP()
        profile = get_profile("standard")

        def evaluate() -> None:
            observers = [FeatureCollector(judge.features), ClipCollector(clip)]
            evaluate_presence(model, judge, seq, profile, observers=observers)

        rows.append(("evaluate one checkpoint (standard, +FID/CLIP)", timed(evaluate, max(1, args.repeats // 2))))
    if args.run_dir:
        import json
        from pathlib import Path

        from culbench.evaluation.summary import build_summary

        run_dir = Path(args.run_dir)
        manifest = json.loads((run_dir / "manifest.json").read_text())
        order = json.loads((run_dir / "summary.json").read_text())["forget_order"]
        rows.append(("summary.json of the run (bootstrap CIs)",
                     timed(lambda: build_summary(run_dir, manifest, order), 2)))
    for name, (median, low, high) in rows:
        print(f"{name:40s} median {median:7.3f} s   (min {low:.3f}, max {high:.3f})")


if __name__ == "__main__":
    main()
