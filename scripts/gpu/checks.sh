#!/usr/bin/env bash
# The GPU checks of the teachers and students issues, as one script for a lent GPU machine (here the
# `device` tool's: one H100 or H200; its image has CUDA PyTorch but no MuJoCo or Warp, and no internet). On
# one GPU its steps' limits add up to 600 s (200 + 150 + 170 + 80); no GPU has run it yet, so its real time is unmeasured:
#   1. pytest -m gpu (MuJoCo Warp on CUDA: stepping, rendering, CPU/GPU agreement, DAgger on the device);
#   2. scripts/bench_train.py on warp/CUDA, 4096 worlds (PPO env-steps/s including updates);
#   3. scripts/bench_distill.py on warp/CUDA, 1024 and 4096 worlds (student frames/s, KV cache);
#   3b. scripts/bench_world_model.py on CUDA (the world model's student frames/s at 2 and 4 agents, goal 24);
#   3c. where 2 GPUs exist, a 2-process torchrun smoke of train_teacher.py (NCCL, one GPU a rank);
#   4. optionally (TRAIN_SECONDS > 0) a fov_gated EgoPush teacher on 4096 worlds, warm-started from
#      TRAIN_INIT (default the best one, checkpoints/egopush-line-teacher-fov_gated-knock_anchor, and its
#      critic) with its training preset (TRAIN_PRESET; TRAIN_OVERRIDES, JSON, changes the env more) and
#      stopped by SIGTERM (as Ctrl-C) after TRAIN_SECONDS: its checkpoint comes back for --resume.
# Everything lands in $OUT/gpu-checks.tar.gz (the JSON results, logs, run directory) and $OUT/summary.txt.
#
# How to run it (the wheels travel in four calls because Warp's alone is about 143 MiB and a call carries
# at most 64 MiB; a machine stays warm only 30 s between calls, so make the calls back to back):
#   here, once:   bash scripts/gpu/fetch_wheels.sh
#   device run:   carry [".gpu-wheels/a"], command "ls .gpu-wheels/a | wc -l"   (starts the machine)
#   device run:   carry [".gpu-wheels/b"], command "ls .gpu-wheels"
#   device run:   carry [".gpu-wheels/c"], command "ls .gpu-wheels"
#   device run:   carry [".gpu-wheels/d"], command "bash scripts/gpu/checks.sh", timeout_s 590
# That is about 12 of a session's 15 device minutes (start, transfers, checks). The training (4.) needs a
# call of its own, e.g. command "CHECKS=0 TRAIN_SECONDS=500 bash scripts/gpu/checks.sh" on the warm machine:
# one command may run at most 10 minutes.
# Where Warp and MuJoCo Warp import already, it uses the current Python environment: DEVICE=cpu BACKEND=cpu QUICK=1
# runs the same steps on a laptop, small, to check the script itself.
set -uo pipefail
cd "$(dirname "$0")/../.."
DEVICE=${DEVICE:-cuda:0}
BACKEND=${BACKEND:-warp}
TRAIN_SECONDS=${TRAIN_SECONDS:-0}
# The training (4.): the teacher it starts from, and its env, with the reward terms its critic learnt.
TRAIN_INIT=${TRAIN_INIT:-checkpoints/egopush-line-teacher-fov_gated-knock_anchor}
TRAIN_PRESET=${TRAIN_PRESET:-knock_anchor_memory}
TRAIN_OVERRIDES=${TRAIN_OVERRIDES:-'{}'}
CHECKS=${CHECKS:-1}  # 0: skip steps 1-3 (a training-only call)
QUICK=${QUICK:-0}
OUT=${OUT:-$PWD/gpu-checks-out}
mkdir -p "$OUT"
work=$(mktemp -d)
mkdir -p "$work/logs" "$work/results"
summary="$OUT/summary.txt"
: > "$summary"
say() { echo "$*" | tee -a "$summary"; }
step() {  # step NAME SECONDS COMMAND...: run with a time limit, log it, note the exit status
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    say "== $name (limit ${limit}s): $*"
    timeout -s TERM -k 60 "$limit" "$@" > "$work/logs/$name.log" 2>&1
    local rc=$?
    say "   exit $rc after $((SECONDS - t0))s; last lines:"
    tail -n 6 "$work/logs/$name.log" | tr '\r' '\n' | tail -n 6 | sed 's/^/   | /' | tee -a "$summary"
}
finish() {
    cp -r benchmarks/results "$work/results/benchmarks" 2>/dev/null
    tar -czf "$OUT/gpu-checks.tar.gz" -C "$work" logs results
    say "wrote $OUT/gpu-checks.tar.gz ($(du -h "$OUT/gpu-checks.tar.gz" | cut -f1))"
    rm -rf "$work"
}
trap finish EXIT

# --- 0. the packages the image lacks, from the carried wheels ---
if [ -d .gpu-wheels ] && ! python3 -c "import warp, mujoco_warp" 2> /dev/null; then
    missing=""
    for p in a/WARP_WHEEL_NAME a/WARP_SHA256 a/warp.part.0 b/warp.part.1 c/warp.part.2 d/warp.part.3; do
        [ -e ".gpu-wheels/$p" ] || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        say "missing .gpu-wheels pieces:$missing (the machine went back between calls? carry a, b, c, d again)"
        exit 3
    fi
    wheel="$work/$(cat .gpu-wheels/a/WARP_WHEEL_NAME)"
    cat .gpu-wheels/a/warp.part.0 .gpu-wheels/b/warp.part.1 .gpu-wheels/c/warp.part.2 .gpu-wheels/d/warp.part.3 > "$wheel"
    if [ "$(sha256sum "$wheel" | cut -d' ' -f1)" != "$(cat .gpu-wheels/a/WARP_SHA256)" ]; then
        say "Warp's wheel does not match its checksum: fetch the wheels again"
        exit 3
    fi
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .gpu-wheels/a/*.whl "$wheel" || { say "pip install of the wheels failed"; exit 3; }
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MUJOCO_GL=egl
export WARP_CACHE_PATH=${WARP_CACHE_PATH:-/tmp/warp-cache}  # compiled kernels, shared by the steps below
say "== $(date -u +%FT%TZ) on $(hostname); device $DEVICE, backend $BACKEND"
python3 - <<'EOF' 2>&1 | tee -a "$summary"
import mujoco, mujoco_warp, torch, warp
print(f"   torch {torch.__version__}, mujoco {mujoco.__version__}, warp {warp.__version__}")
print(f"   CUDA: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
EOF
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$summary"

if [ "$QUICK" = 1 ]; then
    train_args=(--steps 40000 --num-envs 16)
    distill_args=(--quick --num-envs 16)
else
    train_args=(--steps 8000000 --num-envs 4096)
    distill_args=(--num-envs 1024 4096)
fi

if [ "$CHECKS" = 1 ]; then
    # --- 1. the gpu-marked tests (the first one compiles Warp's kernels for CUDA) ---
    if [ "${DEVICE%%:*}" = cuda ]; then
        step pytest-gpu 200 python3 -m pytest -m gpu -p no:cacheprovider -q tests/envs/test_gpu.py
    fi
    # --- 2. PPO training throughput on the device ---
    step bench-train 150 python3 scripts/bench_train.py --backend "$BACKEND" --device "$DEVICE" --no-sb3 \
        "${train_args[@]}" --json "$work/results/bench_train_gpu.json"
    # --- 3. distillation throughput and KV-cache inference on the device ---
    step bench-distill 170 python3 scripts/bench_distill.py --backend "$BACKEND" --device "$DEVICE" \
        "${distill_args[@]}" --json "$work/results/bench_distill_gpu.json"
    # --- 3b. the world model's student (KV cache) against recompute and the teacher ---
    if [ "${DEVICE%%:*}" = cuda ]; then
        step bench-world-model 80 python3 scripts/bench_world_model.py --device "$DEVICE" --quick \
            --json "$work/results/bench_world_model_gpu.json"
    fi
    # --- 3c. two processes under torchrun, one GPU each (NCCL), where two GPUs exist ---
    gpus=$(command -v nvidia-smi > /dev/null && nvidia-smi -L | wc -l || echo 0)
    if [ "${DEVICE%%:*}" = cuda ] && [ "$gpus" -ge 2 ]; then
        step torchrun-2gpu 150 python3 -m torch.distributed.run --nproc_per_node 2 scripts/train_teacher.py \
            --env egopush-goal --backend "$BACKEND" --device cuda --num-envs 1024 --total-steps 2000000 \
            --eval-episodes 0 --run-dir "$work/results/torchrun-2gpu"
    else
        say "== torchrun-2gpu: skipped ($gpus GPU(s); it needs 2)"
    fi
fi
# --- 4. optional: a shipped fov_gated teacher fine-tuned on the device (its shipped critic loaded by
#        --init-from), stopped by SIGTERM (which saves its checkpoint) ---
if [ "$TRAIN_SECONDS" -gt 0 ]; then
    run="$work/results/egopush-line-fov_gated-gpu"
    step train-fov_gated "$TRAIN_SECONDS" python3 scripts/train_teacher.py --env egopush-line \
        --observability fov_gated --backend "$BACKEND" --device "$DEVICE" --num-envs 4096 \
        --total-steps 2000000000 --eval-episodes 0 --init-from "$TRAIN_INIT" \
        --preset "$TRAIN_PRESET" --env-overrides "$TRAIN_OVERRIDES" --run-dir "$run"
    ls "$run" 2>/dev/null | sed 's/^/   run dir: /' | tee -a "$summary"
fi
