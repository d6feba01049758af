#!/usr/bin/env bash
# Runs the scenario library through drtp-sim: every scenario in scenarios/
# with seeds 1 2 3, the determinism check on pop-crash.yaml, and a short
# sweep. Usage: scripts/sim_ci.sh PATH/TO/drtp-sim
set -uo pipefail
sim=${1:?usage: $0 PATH/TO/drtp-sim}
cd "$(dirname "$0")/.."
failed=0
for f in scenarios/*.yaml; do
  for seed in 1 2 3; do
    if ! "$sim" run "$f" --seed "$seed" -q; then
      echo "FAILED: $sim run $f --seed $seed"
      failed=1
    fi
  done
done
"$sim" run scenarios/pop-crash.yaml --seed 1 --check-determinism -q || failed=1
"$sim" sweep scenarios/pop-crash.yaml --seeds 20 || failed=1
if [[ $failed != 0 ]]; then
  echo "scenario checks FAILED"
  exit 1
fi
echo "scenario checks passed"
