#!/usr/bin/env bash
# Move a finished retrain seed from leaderboard/in-progress onto the published board:
# validate it, copy its records in the published form (manifest.json, matrix.csv, summary.json,
# steps/*/step.json) to leaderboard/results, check the copy, remove the in-progress folder
# (git rm -r and rm -rf: it stays in git history) and regenerate the board. Commits nothing:
# review `git status`, update the prose figures (README status, docs/leaderboard.md), then commit.
#   CULBENCH=.venv/bin/culbench tools/oracle_promote.sh 1
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
culbench=${CULBENCH:-culbench}
seed=${1:?usage: tools/oracle_promote.sh SEED   (a seed whose run has finished)}
src=leaderboard/in-progress/toy10@1/retrain/standard/seed$seed
dst=leaderboard/results/toy10@1/retrain/standard/seed$seed
fail() { echo "error: $1" >&2; exit 1; }

[ -f "$src/manifest.json" ] || fail "$src holds no run — check the seed number (culbench ls runs leaderboard/in-progress)"
[ -f "$src/summary.json" ] || fail "$src has not finished (no summary.json) — let tools/oracle_run.sh finish it first"
[ ! -e "$dst" ] || fail "$dst exists: seed $seed is already published — delete that folder first to publish it again"
"$culbench" validate "$src" > /dev/null || fail "$src does not validate (culbench validate $src says why) — rerun tools/oracle_run.sh to repair it"

mkdir -p "$(dirname "$dst")"
tmp=$(mktemp -d "$(dirname "$dst")/.promote.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cp "$src"/manifest.json "$src"/matrix.csv "$src"/summary.json "$tmp"/
for step in "$src"/steps/*/; do
    mkdir -p "$tmp/steps/$(basename "$step")"
    cp "$step/step.json" "$tmp/steps/$(basename "$step")/"
done
"$culbench" validate "$tmp" > /dev/null || fail "the published copy of $src does not validate (culbench validate $tmp)"
mv "$tmp" "$dst"
trap - EXIT

git rm -r -q -- "$src"
rm -rf "$src"  # ignored leftovers (snapshots, weights, .lock) would keep the folder alive
"$culbench" leaderboard publish
echo "published seed $seed at $dst; now update the prose figures (README status, docs/leaderboard.md,"
echo "leaderboard/README.md, docs/oracle_runs.md), review git status, and commit"
