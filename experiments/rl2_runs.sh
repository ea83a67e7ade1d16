#!/usr/bin/env bash
# Training runs behind experiments/results/rl2.md, one at a time (each preset sets its torch
# threads). Each run writes runs/rl2/<preset>__<seed>__<time>/; experiments/rl2_results.py reads
# the latest finished run per seed and regenerates the table.
#
#   bash experiments/rl2_runs.sh rl2_bandit_n10_k5 rl2_bandit_n100_k5    # seeds 1 2 3 of each
#   SEEDS="1" bash experiments/rl2_runs.sh rl2_mdp_n10
#   python experiments/rl2_results.py
set -euo pipefail
cd "$(dirname "$0")/.."
for preset in "$@"; do
  for seed in ${SEEDS:-1 2 3}; do
    load0=$(cut -d' ' -f1 /proc/loadavg)
    python -m metarl.cli train "experiments/$preset.toml" --quiet --set "seed=$seed" \
      --set runs_dir=runs/rl2 | grep -E "trial return|run directory"
    echo "$preset seed $seed: load $load0 -> $(cut -d' ' -f1 /proc/loadavg)"
  done
done
