#!/usr/bin/env bash
# toy10@2's long background jobs, each at 1 thread (two of them fill the 2-core machine); every one
# resumes where it stopped when rerun (finished runs are skipped, interrupted ones resume, the
# prior resumes from its last 500-step snapshot). How and why: docs/tuning.md, docs/oracle_runs.md.
#   setsid nohup tools/toy10v2_jobs.sh tune  > /tmp/tune.log 2>&1 < /dev/null &   # equal tuning
#   setsid nohup tools/toy10v2_jobs.sh prior > /tmp/prior.log 2>&1 < /dev/null &  # the oracle's prior
# tune [METHODS]: `culbench tune` for each (default: every ranked built-in), noting each record and
#   pick in leaderboard/tuning/ (commit them). TUNE_OUT: the tuning runs' results root.
# prior: step 10 of the add-back oracle's seed 0, which trains the prior every oracle step starts
#   from (ORACLE_OUT/.cache/shared/retrain/; the board's ships in culbench/published/retrain/, so this
#   only evaluates it). ORACLE_OUT: the oracle's results root.
# chain [SEEDS]: the oracle's backward chain for each seed's order (default 0 1 2), steps 10 down to 1,
#   one `culbench run --step K` each (a link resumes from its 100-step snapshot), at THREADS (default 2:
#   run it alone); ORACLE_SET: its retrain settings (default: the design under test in docs/oracle_runs.md).
set -u
cd "$(git rev-parse --show-toplevel)"
culbench=${CULBENCH:-.venv/bin/culbench}
export OMP_NUM_THREADS=1
FORGET=zorb,star,red,striped,moon,blue,quillo,heart,yellow,checkered  # toy10@2's ten requests
case "${1:-}" in
    tune)
        for method in ${2:-uce sa esd dfr ca salun finetune lacu fmn cure rece mace spm advunlearn sculpt}; do
            "$culbench" tune --method "$method" --sequence toy10@2 --out "${TUNE_OUT:-tuning}" --threads 1 \
                --index leaderboard/tuning || exit 1
        done ;;
    prior)
        "$culbench" run --method retrain --sequence toy10@2 --seed 0 --step 10 --threads 1 \
            --set "retrain.prior_without=$FORGET" --out "${ORACLE_OUT:-oracle}" ;;
    chain)
        sets=${ORACLE_SET:-"addback_chain=true addback_steps=600 addback_focus=0.4 addback_rehearse=0.2 addback_rehearse_of=parts"}
        args=(--set "retrain.prior_without=$FORGET")
        for item in $sets; do args+=(--set "retrain.$item"); done
        for seed in ${2:-0 1 2}; do
            for step in 10 9 8 7 6 5 4 3 2 1; do
                OMP_NUM_THREADS=${THREADS:-2} "$culbench" run --method retrain --sequence toy10@2 --seed "$seed" \
                    --step "$step" --threads "${THREADS:-2}" "${args[@]}" --out "${ORACLE_OUT:-oracle}" || exit 1
            done
        done ;;
    *)
        echo "usage: tools/toy10v2_jobs.sh tune [METHODS] | prior | chain [SEEDS]" >&2; exit 2 ;;
esac
