#!/usr/bin/env bash
# How much memory does a memory teacher use? Evaluate one checkpoint with shorter keypoint
# memories than it was trained with (env option memory_seconds), 200 episodes each, and print
# a markdown table. Results go to runs/memory-span-<name>/<span>.json.
#
#   bash scripts/experiments/memory_span.sh [CHECKPOINT] [SPANS...]
#   bash scripts/experiments/memory_span.sh checkpoints/egopush-line-teacher-fov_gated 0 2 5 10 60
set -euo pipefail
cd "$(dirname "$0")/../.."
ck=${1:-checkpoints/egopush-line-teacher-fov_gated}
shift || true
spans=("$@")
[ ${#spans[@]} -gt 0 ] || spans=(0 2 5 10 60)
out="runs/memory-span-$(basename "$ck")"
mkdir -p "$out"
for s in "${spans[@]}"; do
  python scripts/eval.py --checkpoint "$ck" --episodes 200 --num-envs 64 --seed 1000 \
    --env-overrides "{\"memory_seconds\": $s}" --json "$out/$s.json"
done
echo
echo "| memory_seconds | success [95% CI] | reach |"
echo "|---:|---|---:|"
for s in "${spans[@]}"; do
  python -c "import json,sys; r=json.load(open(sys.argv[1])); lo,hi=r['success_rate_ci95']; print(f\"| {sys.argv[2]} | {r['success_rate']:.3f} [{lo:.3f}, {hi:.3f}] | {r['reach_rate']:.3f} |\")" "$out/$s.json" "$s"
done
