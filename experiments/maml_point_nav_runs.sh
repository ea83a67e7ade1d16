#!/usr/bin/env bash
# Runs behind experiments/results/maml_point_nav.md, one at a time (torch threads: the preset's).
# Each line of experiments/results/maml_point_nav_runs.tsv records the preset, seed, wall-clock
# seconds and the load average before/after; experiments/maml_point_nav_table.py builds the table.
#
#   bash experiments/maml_point_nav_runs.sh main        # MAML-TRPO, 3 seeds (the priority)
#   bash experiments/maml_point_nav_runs.sh baselines   # random (3 seeds), pretrained, oracle
#   bash experiments/maml_point_nav_runs.sh variants    # every variant at the 3M-step budget
#   bash experiments/maml_point_nav_runs.sh lr01        # MAML-TRPO with the appendix's 0.1
#   bash experiments/maml_point_nav_runs.sh two_step    # MAML-TRPO trained with 2 inner steps
#   bash experiments/maml_point_nav_runs.sh mb40        # the official launcher's meta-batch 40
#   bash experiments/maml_point_nav_runs.sh by_steps    # batches counted in steps (official sampler)
#   bash experiments/maml_point_nav_runs.sh fullfvp     # curvature on the whole batch (official)
#   bash experiments/maml_point_nav_runs.sh fullfvp_by_steps  # and batches counted in steps
#   bash experiments/maml_point_nav_runs.sh fvp20       # curvature on 20% of the steps, 5 seeds
#   SEEDS="1 2" bash experiments/maml_point_nav_runs.sh preset NAME  # any preset, e.g. to re-run
#       a row after a change to the algorithm (the tables keep the latest run of each seed)
#   bash experiments/maml_point_nav_runs.sh lockstep    # re-evaluate every run above as the
#       paper's test script measured: rllab's VectorizedSampler, 40 envs stepping together until
#       their completed episodes hold 4000 steps, unfinished ones dropped; writes
#       <run dir>/eval_lockstep/results.json, leaves the run's own results alone
#   bash experiments/maml_point_nav_runs.sh paper_goals # the same on the paper's own 40 test goals
#       (experiments/point_nav_paper_test_goals.json), into <run dir>/eval_paper_goals
#   bash experiments/maml_point_nav_runs.sh paper_protocol  # the sixth session's reading of it:
#       4000 env steps per point over 4 envs, each finishing its episode (eval_paper_protocol)
#   bash experiments/maml_point_nav_runs.sh halving     # re-evaluate every run with the step size
#       halved after every step (1, 0.5, 0.25 x the first), into <run dir>/eval_halving
#   python experiments/maml_point_nav_table.py   # the tables; it keeps every run's results in
#       experiments/results/maml_point_nav_runs.json, so rows outlive runs/
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=runs/maml_table
LOG=experiments/results/maml_point_nav_runs.tsv
mkdir -p "$RUNS" experiments/results
[ -f "$LOG" ] || printf 'preset\tseed\twall_s\tload_before\tload_after\trun_dir\n' > "$LOG"

run() {  # preset seed
  local preset=$1 seed=$2 t0 t1 out dir
  local load0; load0=$(cut -d' ' -f1 /proc/loadavg)
  t0=$(date +%s.%N)
  out=$(python -m metarl.cli train "experiments/$preset.toml" --quiet --set "seed=$seed" \
        --set "runs_dir=$RUNS")
  t1=$(date +%s.%N)
  dir=$(printf '%s\n' "$out" | sed -n 's/^run directory: //p')
  printf '%s\t%s\t%.1f\t%s\t%s\t%s\n' "$preset" "$seed" "$(echo "$t1 - $t0" | bc)" "$load0" \
    "$(cut -d' ' -f1 /proc/loadavg)" "$dir" >> "$LOG"
  printf '%s\n' "$out" | tail -n 3
}

reevaluate() {  # out_name overrides...: every listed run still on disk and not yet evaluated so
  # (the oracle takes no gradient steps: its curve has nothing to re-measure)
  local name=$1; shift
  tail -n +2 "$LOG" | cut -f6 | grep -v oracle | sort -u | while read -r dir; do
    [ -d "$dir" ] && [ ! -d "$dir/$name" ] || continue
    python -m metarl.cli eval "$dir" "$@" --out "$dir/$name" | grep "step0"
  done
}

case "${1:-main}" in
  main) for s in ${SEEDS:-1 2 3}; do run maml_trpo_point_nav "$s"; done ;;
  baselines)
    for s in 1 2 3; do run maml_baseline_random_point_nav "$s"; done
    run maml_baseline_pretrained_point_nav 1
    run maml_baseline_oracle_point_nav 1 ;;
  variants)
    for p in maml_trpo_point_nav_budget3m maml_fomaml_point_nav maml_meta_sgd_point_nav \
             maml_ppo_point_nav maml_promp_point_nav maml_reptile_point_nav; do
      run "$p" 1
    done ;;
  lr01) for s in ${SEEDS:-1 2 3}; do run maml_trpo_point_nav_lr01 "$s"; done ;;
  two_step) run maml_trpo_point_nav_2step 1 ;;
  mb40) for s in ${SEEDS:-1 2 3}; do run maml_trpo_point_nav_mb40 "$s"; done ;;
  by_steps) for s in ${SEEDS:-1 2 3}; do run maml_trpo_point_nav_by_steps "$s"; done ;;
  fullfvp) for s in ${SEEDS:-1 2 3}; do run maml_trpo_point_nav_lr01_fullfvp "$s"; done ;;
  fullfvp_by_steps)
    for s in ${SEEDS:-1 2 3}; do run maml_trpo_point_nav_lr01_fullfvp_by_steps "$s"; done ;;
  fvp20) for s in ${SEEDS:-1 2 3 4 5}; do run maml_trpo_point_nav_lr01_fvp20 "$s"; done ;;
  preset)
    [ -f "experiments/${2:-}.toml" ] || { echo "preset: no experiments/${2:-}.toml" >&2; exit 2; }
    for s in ${SEEDS:-1}; do run "$2" "$s"; done ;;
  lockstep)
    reevaluate eval_lockstep --set algo.eval_batch_steps=4000 --set algo.eval_batch_envs=40 \
      --set algo.eval_batch_mode=lockstep ;;
  paper_goals)
    reevaluate eval_paper_goals --set eval.tasks_file=experiments/point_nav_paper_test_goals.json \
      --set algo.eval_batch_steps=4000 --set algo.eval_batch_envs=40 \
      --set algo.eval_batch_mode=lockstep ;;
  paper_protocol)
    reevaluate eval_paper_protocol --set algo.eval_batch_steps=4000 --set algo.eval_batch_envs=4 ;;
  halving)  # chosen on train goals (see the results file)
    reevaluate eval_halving --set "algo.eval_lr_multipliers=[1.0,0.5,0.25]" ;;
  *) echo "unknown group $1 (main, baselines, variants, lr01, two_step, mb40, by_steps, fullfvp,
    fullfvp_by_steps, fvp20, preset NAME, lockstep, paper_goals, paper_protocol, halving)" >&2
     exit 2 ;;
esac
