#!/usr/bin/env bash
# retrain's training rate on a GPU shared by N concurrent `culbench run --step` processes (CUDA MPS
# on when available): for each N in $COUNTS, N jobs run for $SECONDS_EACH s and the steps each
# trained between its first and last progress line give its rate; prints N, the rates and their sum.
# 5,000 scenes instead of 60,000 so rendering takes seconds (the cost of a training step does not
# depend on the data). Needs the tree installed as docs/oracle_runs.md's GPU call does it.
#   COUNTS="1 4 8" SECONDS_EACH=45 bash benchmarks/retrain_gpu_rate.sh
set -u
export PYTHONUNBUFFERED=1 CULBENCH_PROGRESS_EVERY=5
control=$(command -v nvidia-cuda-mps-control || echo /usr/local/nvidia/bin/nvidia-cuda-mps-control)
export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
[ -x "$control" ] && "$control" -d && echo "MPS on"
for n in ${COUNTS:-1 4 8}; do
    dir=/tmp/rate$n; rm -rf "$dir"; mkdir -p "$dir"
    pids=()
    for i in $(seq 1 "$n"); do
        python3 -m culbench run --method retrain --profile standard --seed "$i" --step 1 --device cuda \
            --threads 1 --set retrain.n_images=5000 --out "$dir/res" > "$dir/$i.log" 2>&1 &
        pids+=($!)
    done
    sleep "${SECONDS_EACH:-45}"
    kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null
    python3 - "$dir" "$n" <<'PY'
import re, sys, pathlib
rates = []
for log in sorted(pathlib.Path(sys.argv[1]).glob("*.log")):
    seen = [(int(h) * 3600 + int(m) * 60 + int(s), int(d)) for h, m, s, d in
            re.findall(r"\[(\d+):(\d+):(\d+)\][^\n]*?(\d+)/10000 +\d+%", log.read_text())]
    if len(seen) >= 2 and seen[-1][0] > seen[0][0]:
        rates.append((seen[-1][1] - seen[0][1]) / (seen[-1][0] - seen[0][0]))
print(f"{sys.argv[2]} jobs: {len(rates)} measured, steps/s each {[round(r, 1) for r in rates]}, "
      f"total {sum(rates):.0f}", flush=True)
PY
done
