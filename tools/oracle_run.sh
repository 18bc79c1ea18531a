#!/usr/bin/env bash
# Run retrain's three leaderboard seeds into leaderboard/in-progress and commit each step's records
# as it lands (only that folder: other staged work is left alone). Resumable: rerun after any stop.
# How and why: docs/oracle_runs.md.
#   CULBENCH=.venv/bin/culbench setsid nohup tools/oracle_run.sh > /tmp/retrain.log 2>&1 < /dev/null &
# SEEDS='2 1' takes the seeds in that order (default 0 1 2): finish the seed closest to done first.
set -u
cd "$(git rev-parse --show-toplevel)"
root=leaderboard/in-progress
culbench=${CULBENCH:-culbench}

commit_records() {  # commit the folder when every run in it is consistent (no step half-written)
    [ -n "$(git status --porcelain -- "$root")" ] || return 0
    for run in "$root"/toy10@1/retrain/standard/seed*; do
        [ -f "$run/manifest.json" ] || continue  # not a run: ignored leftovers (snapshots, weights) of a removed seed
        "$culbench" validate --allow-partial "$run" > /dev/null 2>&1 || return 0
    done
    local summary
    summary=$("$culbench" ls runs "$root" 2>/dev/null | grep -o 'seed[0-9] *[a-z]* *[0-9]*/[0-9]*' | tr -s ' ' | paste -sd ';')
    git add -- "$root" && git commit -q -m "retrain (leaderboard/in-progress): records committed so far — $summary" -- "$root" \
        || echo "commit failed (index busy?); retrying in a minute"
}

(for seed in ${SEEDS:-0 1 2}; do
    # a seed already copied to the published results is done (its records left this folder)
    [ -f "leaderboard/results/toy10@1/retrain/standard/seed$seed/summary.json" ] && continue
    "$culbench" run --method retrain --profile standard --seed "$seed" --out "$root" --threads 2 || exit 1
done) &
runner=$!
while kill -0 "$runner" 2>/dev/null; do
    sleep 60
    commit_records
done
wait "$runner"; status=$?
commit_records
exit "$status"
