#!/bin/bash
# Issue 53 on the CPU: BC and CoFlow-C (--preset cpu) on the mpe-spread datasets of make_dataset.py
# (in data/), 3 training seeds, each evaluated by eval.py over 100 episodes at seed 2000 (never used
# to choose a setting); the k sweep and alpha dose-response on CoFlow-C expert seed 0; CVA off;
# medium-replay and random at one seed. One process at a time, one thread. Log: runs/driver.log;
# results: runs/results/*.json (read by coflow_table.py). A finished run is evaluated, not retrained.
#     python scripts/make_dataset.py --env mpe-spread --policy scripted --episodes 400 --out data
#     bash scripts/experiments/coflow_cpu_results.sh
#     python scripts/experiments/coflow_table.py --results runs/results --datasets data/datasets.json
set -u
export EGOTEACH_TORCH_THREADS=1 OMP_NUM_THREADS=1
mkdir -p runs/results
LOG=runs/driver.log
EVAL_SEED=2000
say() { echo "$(date +%H:%M:%S) $*" >> $LOG; }
train() {  # algo quality seed tag [train_coflow.py flags...]; run dir runs/r-<algo><tag>-<quality>-s<seed>
  local algo=$1 q=$2 s=$3 tag=$4; shift 4
  local rd=runs/r-$algo$tag-$q-s$s
  if [ ! -d $rd/checkpoint ] || ! grep -q '"step": 2000' $rd/checkpoint/train_state.json 2>/dev/null; then
    say "train $rd: python scripts/train_coflow.py --dataset data/mpe-spread-$q --algo $algo --preset cpu --train.seed $s --run-dir $rd $*"
    local t0=$(date +%s)
    python scripts/train_coflow.py --dataset data/mpe-spread-$q --algo $algo --preset cpu --train.seed $s --run-dir $rd "$@" > $rd.train.log 2>&1
    say "  rc=$? $(grep '^done' $rd.train.log) ($(( $(date +%s) - t0 )) s)"
  fi
  say "eval $rd: python scripts/eval.py --checkpoint $rd/checkpoint --episodes 100 --num-envs 100 --seed $EVAL_SEED --json runs/results/$(basename $rd).json"
  python scripts/eval.py --checkpoint $rd/checkpoint --episodes 100 --num-envs 100 --seed $EVAL_SEED --json runs/results/$(basename $rd).json 2>&1 | tail -1 >> $LOG
}
say "driver start"
for s in 0 1 2; do train bc expert $s ""; train bc medium $s ""; done
for s in 0 1 2; do train coflow-c expert $s ""; train coflow-c medium $s ""; done
say "k sweep: python scripts/eval_coflow.py --checkpoint runs/r-coflow-c-expert-s0/checkpoint --steps 1 2 3 4 5 --episodes 100 --num-envs 100 --seed $EVAL_SEED --json runs/results/k_sweep.json"
python scripts/eval_coflow.py --checkpoint runs/r-coflow-c-expert-s0/checkpoint --steps 1 2 3 4 5 --episodes 100 --num-envs 100 --seed $EVAL_SEED --json runs/results/k_sweep.json 2>&1 | grep '^k=' >> $LOG
say "alpha: python scripts/eval_coflow.py --checkpoint runs/r-coflow-c-expert-s0/checkpoint --alpha 0 0.25 0.5 0.75 1 --episodes 100 --num-envs 100 --seed $EVAL_SEED --json runs/results/alpha.json"
python scripts/eval_coflow.py --checkpoint runs/r-coflow-c-expert-s0/checkpoint --alpha 0 0.25 0.5 0.75 1 --episodes 100 --num-envs 100 --seed $EVAL_SEED --json runs/results/alpha.json 2>&1 | grep '^k=' >> $LOG
for s in 0 1 2; do train coflow-c expert $s "-nocva" --model.no-cva; done
for q in medium-replay random; do train bc $q 0 ""; train coflow-c $q 0 ""; done
say "driver done"
