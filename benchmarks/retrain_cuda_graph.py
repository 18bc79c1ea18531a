"""retrain's training step on a GPU, eager against CUDA graphs (``train_unet(cuda_graph=True)``):
the same seed, scenes and steps both ways; prints each one's steps a second (after a warm-up) and
how far apart the trained weights are (0 when the graphs replay exactly the eager kernels).

    python benchmarks/retrain_cuda_graph.py [--steps 300] [--images 2000] [--repeats 2]

Needs a CUDA device. Rounds alternate the two ways so that drift hits both alike.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import torch

from culbench.toyworld import model as tw_model
from culbench.toyworld import train as recipe_code


def train(latents: torch.Tensor, captions: list[str], recipe: recipe_code.Recipe, graph: bool) -> tuple[dict, float]:
    warm = recipe.unet_steps // 5  # the first fifth: allocation, cuDNN heuristics, graph capture
    count, stamps = [0], []

    def tick(n: int = 1) -> None:
        count[0] += n
        if count[0] == warm:
            torch.cuda.synchronize()
            stamps.append(time.perf_counter())

    unet, text = recipe_code.train_unet(latents, captions, recipe, log=lambda m: None, progress=tick,
                                        device="cuda", cuda_graph=graph)
    torch.cuda.synchronize()
    rate = (recipe.unet_steps - warm) / (time.perf_counter() - stamps[0])
    state = {f"unet.{k}": v.float().cpu() for k, v in unet.state_dict().items()}
    state.update({f"text.{k}": v.float().cpu() for k, v in text.state_dict().items()})
    return state, rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    recipe = replace(recipe_code.Recipe(seed=7), unet_steps=args.steps, n_images=args.images, unet_warmup=20)
    images, captions = recipe_code.render_training_set(recipe, None)
    vae = tw_model.build_toyworld_model(device="cuda").vae
    latents = recipe_code.encode_latents(vae, images.to("cuda"), vae.config.scaling_factor).cpu()
    rates: dict[bool, list[float]] = {False: [], True: []}
    states: dict[bool, dict] = {}
    for _ in range(args.repeats):
        for graph in (False, True):
            states[graph], rate = train(latents, captions, recipe, graph)
            rates[graph].append(rate)
    gap = max(float((states[True][k] - states[False][k]).abs().max()) for k in states[False])
    scale = max(float(v.abs().max()) for v in states[False].values())
    for graph in (False, True):
        print(f"{'cuda graph' if graph else 'eager':>10}: {statistics.median(rates[graph]):6.1f} steps/s "  # noqa: T201
              f"(runs: {', '.join(f'{r:.1f}' for r in rates[graph])})")
    print(f"speed-up {statistics.median(rates[True]) / statistics.median(rates[False]):.2f}x; "  # noqa: T201
          f"largest weight difference after {args.steps} steps: {gap:.3g} (largest weight {scale:.3g})")


if __name__ == "__main__":
    main()
