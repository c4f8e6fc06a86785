#!/bin/bash
# Issue 53 on the CPU: offline learners (--preset cpu) on the datasets of make_dataset.py, each
# training seed evaluated by eval.py over 100 episodes at seed 2000 (never used to choose a
# setting). One process at a time, one thread. A finished run is evaluated, not retrained.
#
# PLAN=mpe (default): BC and CoFlow-C on the mpe-spread datasets in data/, 3 training seeds; the k
#   sweep and alpha dose-response on CoFlow-C expert seed 0; CVA off; medium-replay and random at
#   one seed. Log runs/driver.log, results runs/results/*.json.
#     python scripts/make_dataset.py --env mpe-spread --policy scripted --episodes 400 --out data
#     bash scripts/experiments/coflow_cpu_results.sh
#     python scripts/experiments/coflow_table.py --results runs/results --datasets data/datasets.json
# PLAN=mpe-more: CoFlow-D and the 20-step flow planner on mpe-spread expert, 3 seeds, with BC and
#   CoFlow-C seed 0 beside them on the same recording (same folders as PLAN=mpe).
# PLAN=soccer: soccer-2v2's blue team (agents 0 1) against the scripted team, from data/soccer/:
#   BC, CoFlow-C and CoFlow-D on expert, BC and CoFlow-C on medium, 3 seeds; the flow planner on
#   expert; medium-replay and random at one seed. Log runs/soccer/driver.log, results runs/soccer/results.
#     python scripts/make_dataset.py --env soccer-2v2 --policy checkpoints/soccer-2v2-teacher-vs_scripted \
#         --episodes 200 --medium-epsilon 0.4 --out data/soccer
#     PLAN=soccer bash scripts/experiments/coflow_cpu_results.sh
#     python scripts/experiments/coflow_table.py --results runs/soccer/results --datasets data/soccer/datasets.json --env soccer-2v2
set -u
export EGOTEACH_TORCH_THREADS=1 OMP_NUM_THREADS=1
PLAN=${PLAN:-mpe}
if [ "$PLAN" = soccer ]; then
  ENV=soccer-2v2 DATA=data/soccer RUNS=runs/soccer AGENTS="--agents 0 1"
else
  ENV=mpe-spread DATA=data RUNS=runs AGENTS=""
fi
mkdir -p $RUNS/results
LOG=$RUNS/driver.log
EVAL_SEED=2000
say() { echo "$(date +%H:%M:%S) $*" >> $LOG; }
train() {  # algo quality seed tag [train_coflow.py flags...]; run dir $RUNS/r-<algo><tag>-<quality>-s<seed>
  local algo=$1 q=$2 s=$3 tag=$4; shift 4
  local rd=$RUNS/r-$algo$tag-$q-s$s
  if [ ! -d $rd/checkpoint ] || ! grep -q '"step": 2000' $rd/checkpoint/train_state.json 2>/dev/null; then
    say "train $rd: python scripts/train_coflow.py --dataset $DATA/$ENV-$q --algo $algo --preset cpu --train.seed $s --run-dir $rd $AGENTS $*"
    local t0=$(date +%s)
    python scripts/train_coflow.py --dataset $DATA/$ENV-$q --algo $algo --preset cpu --train.seed $s --run-dir $rd $AGENTS "$@" > $rd.train.log 2>&1
    say "  rc=$? $(grep '^done' $rd.train.log) ($(( $(date +%s) - t0 )) s)"
  fi
  say "eval $rd: python scripts/eval.py --checkpoint $rd/checkpoint --episodes 100 --num-envs 100 --seed $EVAL_SEED --json $RUNS/results/$(basename $rd).json"
  python scripts/eval.py --checkpoint $rd/checkpoint --episodes 100 --num-envs 100 --seed $EVAL_SEED --json $RUNS/results/$(basename $rd).json 2>&1 | tail -1 >> $LOG
}
say "driver start (PLAN=$PLAN)"
case $PLAN in
mpe)
  for s in 0 1 2; do train bc expert $s ""; train bc medium $s ""; done
  for s in 0 1 2; do train coflow-c expert $s ""; train coflow-c medium $s ""; done
  say "k sweep: python scripts/eval_coflow.py --checkpoint runs/r-coflow-c-expert-s0/checkpoint --steps 1 2 3 4 5 --episodes 100 --num-envs 100 --seed $EVAL_SEED --json runs/results/k_sweep.json"
  python scripts/eval_coflow.py --checkpoint runs/r-coflow-c-expert-s0/checkpoint --steps 1 2 3 4 5 --episodes 100 --num-envs 100 --seed $EVAL_SEED --json runs/results/k_sweep.json 2>&1 | grep '^k=' >> $LOG
  say "alpha: python scripts/eval_coflow.py --checkpoint runs/r-coflow-c-expert-s0/checkpoint --alpha 0 0.25 0.5 0.75 1 --episodes 100 --num-envs 100 --seed $EVAL_SEED --json runs/results/alpha.json"
  python scripts/eval_coflow.py --checkpoint runs/r-coflow-c-expert-s0/checkpoint --alpha 0 0.25 0.5 0.75 1 --episodes 100 --num-envs 100 --seed $EVAL_SEED --json runs/results/alpha.json 2>&1 | grep '^k=' >> $LOG
  for s in 0 1 2; do train coflow-c expert $s "-nocva" --model.no-cva; done
  for q in medium-replay random; do train bc $q 0 ""; train coflow-c $q 0 ""; done
  ;;
mpe-more)
  train bc expert 0 ""; train coflow-c expert 0 ""  # anchors on the same recording
  for s in 0 1 2; do train coflow-d expert $s ""; train flow expert $s ""; done
  ;;
soccer)
  for s in 0 1 2; do train bc expert $s ""; train coflow-c expert $s ""; done
  for s in 0 1 2; do train coflow-d expert $s ""; done
  for s in 0 1 2; do train bc medium $s ""; train coflow-c medium $s ""; done
  train flow expert 0 ""
  for q in medium-replay random; do train bc $q 0 ""; train coflow-c $q 0 ""; done
  ;;
*) echo "unknown PLAN=$PLAN (mpe, mpe-more, soccer)" >&2; exit 2 ;;
esac
say "driver done"
