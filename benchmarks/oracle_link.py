"""One link of the retrain oracle's backward chain, trained from a stored link with a chosen data mix
(which concepts are oversampled, to which share), then evaluated: what puts a concept back without
losing a confusable one (``docs/oracle_runs.md``).

    python benchmarks/oracle_link.py --start OUT/.cache/shared/retrain/chain-<key>.pt \
        --without zorb,star,red --mix striped:0.5,checkered:0.25 --seed 7919 [--json FILE]

``--start``: the link (or prior) to fine-tune, from an oracle results root's shared store;
``--without``: the concepts forgotten at this step (left out of the data, as the chain does);
``--mix``: CONCEPT:SHARE,... oversampled as ``retrain.oversample`` does (empty: the data as drawn);
``--seed``: the recipe seed (a run's ``step_seed(run seed, 1)``; order 0's is 7919). The link
trains ``--steps`` at ``--lr`` with the add-back recipe (50 warm-up steps) and the table gives the
presence of every kept concept under 0.95 on the standard profile.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace

import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--start", required=True, help="a chain-*.pt or prior-*.pt of a shared store")
    parser.add_argument("--without", required=True, help="concepts forgotten at this step")
    parser.add_argument("--mix", default="", help="CONCEPT:SHARE,... oversampled (empty: as drawn)")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--seed", type=int, required=True, help="recipe seed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="also write every concept's presence here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")

    from culbench.catalog import METHODS
    from culbench.evaluation.presence import evaluate_presence
    from culbench.profiles import get_profile
    from culbench.tasks import resolve_sequence
    from culbench.toyworld import train as recipe_code
    from culbench.toyworld.judge import ToyWorldJudge
    from culbench.toyworld.model import build_toyworld_model

    train = sys.modules[METHODS.get("retrain").__module__]._train  # the chain's own data draw and fine-tune
    without = [c for c in args.without.split(",") if c]
    groups = [([c], float(v)) for c, v in (item.split(":") for item in args.mix.split(",") if item)]
    model = build_toyworld_model(version=2)
    recipe = replace(recipe_code.Recipe(seed=args.seed, model_version=2), unet_steps=args.steps, unet_lr=args.lr)
    recipe = replace(recipe, unet_warmup=min(recipe.unet_warmup, 50))
    start = torch.load(args.start, map_location="cpu", weights_only=True)
    began = time.perf_counter()
    unet, text = train(model, recipe, without, lambda n=1: None, focus=groups, init=(start["unet"], start["text"]))
    seconds = time.perf_counter() - began
    model.unet.load_state_dict(unet.state_dict())
    model.unet.eval().requires_grad_(False)
    model.text_encoder = text.eval().requires_grad_(False)
    cells, _ = evaluate_presence(model, ToyWorldJudge(), resolve_sequence("toy10@2"), get_profile("standard"))
    presence = {c: cell.presence for c, cell in cells.items()}
    print(f"mix {args.mix or 'as drawn'}: data drawn and {args.steps} steps trained in {seconds:.0f} s; "
          f"forgotten max {max(presence[c] for c in without):.3f}")
    print("| concept | presence |\n|---|---|")
    for concept, value in sorted(presence.items(), key=lambda kv: kv[1]):
        if concept not in without and value < 0.95:
            print(f"| {concept} | {value:.3f} |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"args": vars(args), "seconds": seconds, "presence": presence}, handle, indent=1)


if __name__ == "__main__":
    main()
