#!/usr/bin/env bash
# Fetch, on a machine with internet, the wheels that the GPU machine lacks (its image has Python 3.12,
# CUDA PyTorch, numpy, matplotlib, tensorboard, safetensors, tqdm, imageio and pytest, but no MuJoCo,
# MuJoCo Warp, Warp, tyro, Gymnasium, PettingZoo or SB3) and cut them into pieces that fit the device
# tool's 64 MiB per call: .gpu-wheels/a holds the small wheels and the first piece of Warp's (about
# 150 MB), .gpu-wheels/b, c and d the rest. scripts/gpu/checks.sh says how they travel.
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.gpu-wheels/' .git/info/exclude 2>/dev/null || echo '/.gpu-wheels/' >> .git/info/exclude
rm -rf .gpu-wheels && mkdir -p .gpu-wheels/all .gpu-wheels/a .gpu-wheels/b .gpu-wheels/c .gpu-wheels/d
PLAT=()
for n in 17 27 28 31 34 35; do PLAT+=(--platform "manylinux_2_${n}_x86_64"); done
PLAT+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any)
# The versions this checkout was tested with on the CPU (pip show in the README's venv).
for spec in mujoco==4.0.0 mujoco-core==4.0.0 mujoco-studio==4.0.0 mujoco-warp==4.0.0 warp-lang==1.19.0 \
    glfw==2.11.0 pyopengl==3.1.10 websockets==17.4 tyro==1.0.17 docstring-parser==0.18.0 typeguard==4.6.1 \
    gymnasium==1.4.0 farama-notifications==0.0.6 pettingzoo==1.27.0 stable-baselines3==2.9.2; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${PLAT[@]}" -d .gpu-wheels/all "$spec"
done
warp=$(ls .gpu-wheels/all/warp_lang-*.whl)
basename "$warp" > .gpu-wheels/a/WARP_WHEEL_NAME
mv "$warp" .gpu-wheels/warp.whl
mv .gpu-wheels/all/*.whl .gpu-wheels/a/
rmdir .gpu-wheels/all
# Each call also carries the working tree (about 6 MiB), so no folder holds more than 45 MiB: a = the small
# wheels (about 29 MiB) and Warp's first 16 MiB; b, c and d the rest, in thirds.
size=$(stat -c %s .gpu-wheels/warp.whl)
first=$((16 * 1024 * 1024))
third=$(((size - first + 2) / 3))
piece() { dd if=.gpu-wheels/warp.whl of="$1" bs=1M iflag=skip_bytes,count_bytes skip="$2" count="$3" status=none; }
piece .gpu-wheels/a/warp.part.0 0 "$first"
piece .gpu-wheels/b/warp.part.1 "$first" "$third"
piece .gpu-wheels/c/warp.part.2 $((first + third)) "$third"
piece .gpu-wheels/d/warp.part.3 $((first + 2 * third)) "$third"
sha256sum .gpu-wheels/warp.whl | cut -d' ' -f1 > .gpu-wheels/a/WARP_SHA256
rm .gpu-wheels/warp.whl
du -sh .gpu-wheels/a .gpu-wheels/b .gpu-wheels/c .gpu-wheels/d
