#!/usr/bin/env bash
# The observability ablation of the distillation issue: a depth-layer student distilled from the
# global, fov and fov_gated EgoPush teachers, same budget, two seeds each, then the table.
# Usage: bash scripts/experiments/egopush_ablation.sh [TASK=line] [FRAMES=250000] [EPISODES=100] [MEMORY=none]
# MEMORY: the student's memory (none: reactive; gru; map; geometric); runs go to runs/egopush-TASK-student[TAG]-OBS-sSEED,
# TAG "-MEMORY" unless set in the environment. SEEDS (environment): the seeds, "0 1" unless set. EXTRA
# (environment): more distill_student.py flags (a flag given twice: the later one counts), e.g.
#   TAG=-map-marker EXTRA="--env-overrides {\"anchor_marker\":true}" bash scripts/experiments/egopush_ablation.sh line 500000 200 map
# Teachers: checkpoints/egopush-TASK-teacher-OBS (for global, checkpoints/egopush-TASK-teacher too).
set -euo pipefail
cd "$(dirname "$0")/../.."
TASK=${1:-line}
FRAMES=${2:-250000}
EPISODES=${3:-100}
MEMORY=${4:-none}
if [ -z "${TAG+set}" ]; then
  TAG=""
  if [ "$MEMORY" != none ]; then TAG="-$MEMORY"; fi
fi
read -r -a EXTRA_FLAGS <<< "${EXTRA:-}"
read -r -a SEED_LIST <<< "${SEEDS:-0 1}"
for obs in global fov fov_gated; do
  teacher=checkpoints/egopush-$TASK-teacher-$obs
  if [ ! -d "$teacher" ] && [ "$obs" = global ]; then teacher=checkpoints/egopush-$TASK-teacher; fi
  for seed in "${SEED_LIST[@]}"; do
    run=runs/egopush-$TASK-student$TAG-$obs-s$seed
    if [ -f "$run/eval.json" ]; then echo "done already: $run"; continue; fi
    python scripts/distill_student.py --teacher "$teacher" \
      --num-envs 128 --total-frames "$FRAMES" --seed "$seed" --run-dir "$run" \
      --eval-episodes "$EPISODES" --no-eval-blank --dagger.updates-per-iter 8 --student.memory "$MEMORY" \
      "${EXTRA_FLAGS[@]}"
  done
done
python scripts/experiments/ablation_table.py --task "$TASK" --tag="$TAG" --seeds "${SEED_LIST[@]}"
