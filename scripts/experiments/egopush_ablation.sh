#!/usr/bin/env bash
# The observability ablation of the distillation issue: a reactive depth-layer student distilled
# from the global, fov and fov_gated egopush-line teachers, same budget, two seeds each.
# Usage: bash scripts/experiments/egopush_ablation.sh [FRAMES] [EPISODES]
set -euo pipefail
cd "$(dirname "$0")/../.."
FRAMES=${1:-250000}
EPISODES=${2:-100}
for obs in global fov fov_gated; do
  for seed in 0 1; do
    run=runs/egopush-line-student-$obs-s$seed
    if [ -f "$run/eval.json" ]; then echo "done already: $run"; continue; fi
    python scripts/distill_student.py --teacher checkpoints/egopush-line-teacher-$obs \
      --num-envs 128 --total-frames "$FRAMES" --seed "$seed" --run-dir "$run" \
      --eval-episodes "$EPISODES" --no-eval-blank
  done
done
python scripts/experiments/ablation_table.py
