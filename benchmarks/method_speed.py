"""Seconds per toy10 deletion request, per method (issues: dfr and every baseline <= 20 s per
request, i.e. a whole run <= 5 min with its 11 evaluations; uce <= 1 min per run).

    python benchmarks/method_speed.py [--methods dfr,esd,uce] [--set dfr.iterations=60] \
        [--requests 1,4,8] [--repeats 3] [--threads 2] [--sequences toy10@1,toy10@2]

Each method unlearns the given requests of toy10 from the shipped base model at the standard
profile (no smoke caps), exactly as ``culbench run`` calls it; the table gives the median
(min, max) over requests × repeats, measured side by side in one process. ``--sequences`` times
the same rows on several sequences (order 0 of each), e.g. toy10@1 against toy10@2. ``--set`` adds a
variant row (e.g. a candidate default) next to the method's default row.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--methods", default="dfr,esd,uce,ca,sa,salun,finetune")
    parser.add_argument("--set", action="append", default=[], help="METHOD.FIELD=VALUE: an extra variant row")
    parser.add_argument("--requests", default="1,4,8", help="toy10 steps to time (1-based)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sequences", default="toy10", help="comma-separated; each row is timed on each")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from culbench.api import Budget, StepContext
    from culbench.catalog import METHODS
    from culbench.config import build_config, parse_overrides
    from culbench.tasks import resolve_sequence
    from culbench.toyworld.model import build_toyworld_model

    requests = [int(r) for r in args.requests.split(",")]
    variants = [(m, ()) for m in args.methods.split(",")]
    variants += [(item.partition(".")[0], (item,)) for item in args.set]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, requests {requests}, repeats {args.repeats}")
    print(f"{'method':<34} {'sequence':<9} {'median s':>9} {'min':>7} {'max':>7}   per run (10 requests)")
    sequences = []  # (order 0 of each sequence, its base model), built once for every row
    for sequence in args.sequences.split(","):
        seq = resolve_sequence(sequence)
        seq = seq.in_order(seq.order_of_seed(0)) if seq.spec.orders else seq
        sequences.append((seq, build_toyworld_model(**seq.spec.model.options)))
    for name, overrides in variants:
        cls = METHODS.get(name)
        config = build_config(cls.Config, name, parse_overrides(overrides, name))
        for seq, base in sequences:
            times = []
            for repeat in range(args.repeats):
                for step in requests:
                    model = base.clone()
                    ctx = StepContext(step=step, seed=repeat, budget=Budget(None, None),
                                      base_model=lambda base=base: base)
                    method = cls(config)
                    method.on_sequence_start(model, ctx)
                    start = time.perf_counter()
                    method.unlearn(model, seq.request(step), ctx)
                    times.append(time.perf_counter() - start)
            label = name + (f" ({' '.join(overrides)})" if overrides else "")
            med = statistics.median(times)
            print(f"{label:<34} {seq.id:<9} {med:9.2f} {min(times):7.2f} {max(times):7.2f}   ~{10 * med / 60:.1f} min")


if __name__ == "__main__":
    main()
