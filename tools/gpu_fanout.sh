#!/usr/bin/env bash
# Compute retrain's leaderboard steps on a lent GPU machine (one H200, 16 cores) in one call:
# every (seed, step) as its own `culbench run --step` process (tools/fanout.py) into the
# tree's copy of leaderboard/in-progress (steps already committed there are skipped), sharing the
# GPU through CUDA MPS when the machine allows it. The machine keeps nothing, so the runs' records
# (no weights) come back as one archive per seed in $OUT, with the logs; merge them here with
# tools/merge_steps.py (docs/oracle_runs.md).
# Measured (session 13, H200 + MPS, benchmarks/results/retrain_gpu_fanout): a job trains at most
# ~25 steps/s, bound by its own CPU-side work (1 job: 25; 4: 24 each; 8: 22; 16: 15), after ~70 s
# of rendering, so a 10,000-step request takes ~8 minutes whatever the number of jobs, and only
# just fits in a 10-minute call: 6 jobs, no smoke run (SMOKE=1 adds one), BUDGET=575. CUDA graphs
# for the UNet's step (CULBENCH_CUDA_GRAPH=1) cut that CPU-side work (session 20,
# benchmarks/results/retrain_gpu_graphs: 72 steps/s alone, 2.8x; 8 jobs ~31 each, the GPU then at
# 100 %): 8 requests committed in one 456-s call, so with graphs on it starts 8 jobs (WORKERS).
# GRAPH=check (default) first compares them with the eager step for 200 steps
# (benchmarks/retrain_cuda_graph.py, ~30 s) and uses them only if the weights agree within 1 %;
# GRAPH=1 uses them unchecked, GRAPH=0 never.
#   STEPS: only these steps of each seed (default all; committed ones are skipped anyway).
#   needs: this tree (no .git: CULBENCH_GIT_HASH names the commit), the missing packages as wheels in
#   .whl (docs/oracle_runs.md says which), $OUT; BUDGET: seconds for all of it.
#   Try it on a CPU machine: SKIP_INSTALL=1 DEVICE=cpu BUDGET=200 SEEDS=2 ROOT=/tmp/try OUT=/tmp/o bash tools/gpu_fanout.sh
set -u
t0=$(date +%s)
budget=${BUDGET:-575}
out=${OUT:?set OUT to the folder that comes back}
work=/tmp/fan
export PYTHONUNBUFFERED=1 CULBENCH_PROGRESS_EVERY=30
elapsed() { echo $(( $(date +%s) - t0 )); }
seeds=${SEEDS:-2 1 0}
if [ -z "${ROOT:-}" ]; then  # into leaderboard/in-progress: a seed already published is done (as oracle_run.sh)
    left=""
    for seed in $seeds; do
        [ -f "leaderboard/results/toy10@1/retrain/standard/seed$seed/summary.json" ] || left="$left $seed"
    done
    seeds=${left# }
    [ -n "$seeds" ] || { echo "every seed in '${SEEDS:-2 1 0}' is published already: nothing to run"; exit 0; }
fi
echo "seeds: $seeds"

[ -n "${SKIP_INSTALL:-}" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --no-build-isolation \
    --target /tmp/site .whl/*.whl . > "$out/install.log" 2>&1 || { tail -n 30 "$out/install.log"; exit 1; }
[ -n "${SKIP_INSTALL:-}" ] || export PYTHONPATH=/tmp/site
repo=$(pwd)
cd /tmp  # not the tree's root: `python3 -m culbench` must import the installed package
device=${DEVICE:-cuda}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
python3 -c "import torch, diffusers, transformers; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'diffusers', diffusers.__version__, 'transformers', transformers.__version__)"
echo "installed at $(elapsed) s"

cuda_ok() { timeout 60 python3 -c "import torch; torch.zeros(1, device='$device').sum().item()" 2>&1; }
mps=0
control=$(command -v nvidia-cuda-mps-control || echo /usr/local/nvidia/bin/nvidia-cuda-mps-control)
export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
if [ "$device" != cpu ] && [ -x "$control" ]; then
    # a warm machine (a second call within its idle time) still runs the first call's daemon: `-d`
    # then refuses, and without MPS the jobs time-slice the GPU (session 20: 5 jobs, ~13 steps/s each)
    if "$control" -d || pgrep -x nvidia-cuda-mps > /dev/null; then mps=1; fi  # comm: first 15 chars
fi
if [ "$mps" = 1 ] && ! cuda_ok; then  # MPS started but CUDA does not work through it: without
    echo quit | "$control"; sleep 2; mps=0
    unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
fi
if [ -n "${SMOKE:-}" ]; then  # the whole path once on the GPU at the smoke profile (20 s on an H200)
    timeout 180 python3 -m culbench run --method retrain --profile smoke --device "$device" --step 0 --step 1 \
        --out /tmp/smoke --threads 2 > "$out/smoke.log" 2>&1 || { echo "smoke run failed:"; tail -n 30 "$out/smoke.log"; exit 1; }
fi
if [ "${GRAPH:-check}" = check ] && [ "$device" != cpu ]; then  # CUDA graphs for the UNet, if they train as eager does
    timeout 120 python3 "$repo/benchmarks/retrain_cuda_graph.py" --steps 200 --repeats 1 2>&1 | tee "$out/graph_check.txt"
    python3 - "$out/graph_check.txt" <<'PY' && export CULBENCH_CUDA_GRAPH=1
import re, sys
found = re.search(r"difference after \d+ steps: (\S+) \(largest weight (\S+)\)", open(sys.argv[1]).read())
sys.exit(0 if found and float(found[1]) <= 0.01 * float(found[2]) else 1)
PY
elif [ "${GRAPH:-check}" = 1 ]; then
    export CULBENCH_CUDA_GRAPH=1
fi
workers=${WORKERS:-$([ "$mps" = 1 ] && { [ "${CULBENCH_CUDA_GRAPH:-0}" = 1 ] && echo 8 || echo 6; } || echo 4)}
echo "ready at $(elapsed) s; MPS $mps; CUDA graphs ${CULBENCH_CUDA_GRAPH:-0}; $workers workers"

nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 15 > "$out/gpu.csv" 2>&1 &
deadline=$(( budget - $(elapsed) - 20 ))  # packing takes seconds
root=${ROOT:-$repo/leaderboard/in-progress}
python3 "$repo/tools/fanout.py" --out "$root" --logs "$work/logs" --seeds $seeds ${STEPS:+--steps $STEPS} --workers "$workers" \
    --device "$device" --threads 1 --deadline "$deadline" --tail 30 --culbench "python3 -m culbench" | tee "$out/fanout.txt"
python3 -m culbench ls runs "$root" | tee -a "$out/fanout.txt"
for run in "$root"/toy10@1/retrain/standard/seed*; do
    [ -d "$run" ] && tar czf "$out/$(basename "$run").tgz" -C "$root" --exclude='*.safetensors' \
        --exclude=snapshots --exclude=.lock "${run#"$root/"}"
done
tar czf "$out/logs.tgz" -C "$work" logs -C "$out" $(cd "$out" && ls ./*.log)
echo "done at $(elapsed) s"
