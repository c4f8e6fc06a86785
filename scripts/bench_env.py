"""Env-steps/s of soccer-2v2 on the cpu backend, side by side with its ceiling and the alternative.

In one run, for each W:
  ceiling  raw ``mujoco.batch`` stepping of the same model and substeps, no observation work;
  state    ``envs.make("soccer-2v2")``: physics + privileged/critic/proprio observations;
  camera   the same with every agent's 64x64 egocentric RGB camera;
and once, what a user would write otherwise: gymnasium ``AsyncVectorEnv`` over single-world
envs of the same model (``envs.make_gym``, one physics thread each), one process per world up
to ``--async-workers``.

    python scripts/bench_env.py                # W in {16, 64, 256}
    python scripts/bench_env.py --quick        # under a minute
    python scripts/bench_env.py --backend warp --device cuda:0 --worlds 1024 4096 --no-baselines \
        --json benchmarks/results/bench_env_gpu.json                                  # on a GPU
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import tyro

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import envs  # noqa: E402

ENV = "soccer-2v2"


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """Env throughput benchmark."""

    worlds: tuple[int, ...] = (16, 64, 256)
    """Numbers of worlds W to measure."""
    seconds: float = 3.0
    """Measuring time per configuration (after warm-up)."""
    async_workers: int = 16
    """Processes of the AsyncVectorEnv baseline (one single-world env each)."""
    backend: Literal["cpu", "warp"] = "cpu"
    """Backend of the batched env (ceiling and async baseline always use mujoco on the CPU)."""
    device: str | None = None
    """Device for the warp backend."""
    quick: bool = False
    """W in {16, 64}, 1 s each, 4 async workers: finishes in under a minute."""
    cameras: bool = True
    """Also measure with every agent's RGB camera."""
    baselines: bool = True
    """Measure the CPU ceiling and the AsyncVectorEnv baseline (turn off for GPU runs)."""
    json: Path = Path("benchmarks/results/bench_env.json")
    """Where the figures go."""


def _rate(step, n_per_call: int, seconds: float, warmup: int = 3) -> float:
    for _ in range(warmup):
        step()
    calls, start = 0, time.perf_counter()
    while True:
        step()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and calls >= 3:
            return calls * n_per_call / elapsed


def bench_ceiling(W: int, seconds: float) -> float:
    # The same worlds the env would step (kick-off states, per-world pitches), stepped raw.
    env = envs.make(ENV, num_envs=W)
    env.reset(seed=0)
    batch = env.sim._batch
    batch.bind("ctrl")[:] = np.random.default_rng(0).uniform(-1, 1, (W, env.mj_model.nu))
    rate = _rate(lambda: batch.step(nstep=env.n_substeps), W, seconds)
    env.close()
    return rate


def bench_env(W: int, seconds: float, backend: str, device: str | None, cameras: bool) -> float:
    over = {"cameras": ("rgb",)} if cameras else {}
    env = envs.make(ENV, num_envs=W, backend=backend, device=device, **over)
    env.reset(seed=0)
    g = torch.Generator().manual_seed(0)
    actions = [(torch.rand(W, env.num_agents, 3, generator=g) * 2 - 1).to(env.device) for _ in range(8)]
    k = [0]

    def step() -> None:
        env.step(actions[k[0] % 8])
        k[0] += 1

    rate = _rate(step, W, seconds if not cameras else max(1.0, seconds))
    if env.device.type == "cuda":
        torch.cuda.synchronize()
    env.close()
    return rate


def _make_single():
    import envs as e

    return e.make_gym(ENV, obs_groups=("privileged",), nthread=1)


def bench_async(workers: int, seconds: float) -> float:
    import gymnasium as gym

    venv = gym.vector.AsyncVectorEnv([_make_single for _ in range(workers)])
    venv.reset(seed=0)
    rng = np.random.default_rng(0)
    acts = [rng.uniform(-1, 1, venv.action_space.shape).astype(np.float32) for _ in range(8)]
    k = [0]

    def step() -> None:
        venv.step(acts[k[0] % 8])
        k[0] += 1

    rate = _rate(step, workers, seconds)
    venv.close()
    return rate


def _finite(x):  # noqa: ANN001, ANN202 - JSON has no NaN: a figure not measured is null
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return None if isinstance(x, float) and x != x else x


def main(cfg: BenchConfig) -> dict:
    worlds = (16, 64) if cfg.quick else cfg.worlds
    seconds = 1.0 if cfg.quick else cfg.seconds
    workers = 4 if cfg.quick else cfg.async_workers
    rows = []
    async_rate = bench_async(workers, seconds) if cfg.baselines else float("nan")
    print(f"async baseline: AsyncVectorEnv x {workers} single-world envs: {async_rate:,.0f} env-steps/s", flush=True)
    A = envs.make(ENV, num_envs=1).num_agents
    for W in worlds:
        ceiling = bench_ceiling(W, seconds) if cfg.baselines else float("nan")
        state = bench_env(W, seconds, cfg.backend, cfg.device, cameras=False)
        row = {
            "worlds": W,
            "ceiling_steps_per_s": ceiling,
            "steps_per_s": state,
            "ratio_to_ceiling": state / ceiling,
            "speedup_vs_async": state / async_rate,
        }
        if cfg.cameras:
            cam = bench_env(W, seconds, cfg.backend, cfg.device, cameras=True)
            row["camera_steps_per_s"] = cam
            row["camera_fps"] = cam * A
        rows.append(row)
        cam_txt = (
            f", cameras {row['camera_steps_per_s']:,.0f} steps/s = {row['camera_fps']:,.0f} frames/s"
            if cfg.cameras
            else ""
        )
        print(
            f"W={W:5d}: ceiling {ceiling:,.0f}  state {state:,.0f} steps/s "
            f"({row['ratio_to_ceiling']:.0%} of ceiling, {row['speedup_vs_async']:.1f}x async){cam_txt}",
            flush=True,
        )
    head = rows[-1]
    result = {
        "env": ENV,
        "backend": cfg.backend,
        "device": cfg.device or "cpu",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
        "n_substeps": envs.make(ENV, num_envs=1).n_substeps,
        "camera_resolution": [64, 64],
        "async_workers": workers,
        "async_steps_per_s": async_rate,
        "rows": rows,
        # Headline figures: the largest W measured.
        "worlds": head["worlds"],
        "steps_per_s": head["steps_per_s"],
        "ratio_to_ceiling": head["ratio_to_ceiling"],
        "speedup_vs_async": head["speedup_vs_async"],
        "camera_fps": head.get("camera_fps"),
    }
    cfg.json.parent.mkdir(parents=True, exist_ok=True)
    tmp = cfg.json.with_suffix(".tmp")
    tmp.write_text(json.dumps(_finite(result), indent=2))
    os.replace(tmp, cfg.json)
    print(f"wrote {cfg.json}")
    return result


if __name__ == "__main__":
    main(tyro.cli(BenchConfig))
