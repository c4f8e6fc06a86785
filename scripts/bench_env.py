"""Env-steps/s on the cpu backend, side by side with the raw-physics ceiling and the alternative.

For each env (``soccer-2v2``: 4 robots, RGB cameras; ``egopush-line``: 1 robot, role-layered
depth camera) and each W, in one run:
  ceiling  raw ``mujoco.batch`` stepping of the env's own worlds (same model, start states,
           substeps and action sequence), no observation, reward or reset work;
  state    ``envs.make(name)``: physics + state observation groups;
  camera   the same with every agent's 64x64 egocentric camera;
and once per env, what a user would write otherwise: ``PlainMujocoEnv``, a plain single-world
Gymnasium env of the same MJCF (``mujoco.mj_step`` for the env's substeps, actions mapped onto
the actuators' control ranges, observation ``qpos, qvel`` read from ``MjData``; no reward work, so
the baseline is spared what our env computes), in gymnasium's ``AsyncVectorEnv`` with as many
worker processes as cores (``--async-workers``).

The JSON is rewritten after every measurement, so a run cut short keeps what it measured.

    python scripts/bench_env.py                # W in {16, 64, 256}, both envs
    python scripts/bench_env.py --quick        # about a minute on 2 cores
    python scripts/bench_env.py --backend warp --device cuda:0 --worlds 1024 4096 --no-baselines \\
        --json benchmarks/results/bench_env_gpu.json                                  # on a GPU
"""

from __future__ import annotations

import dataclasses
import functools
import os
import platform
import time
from pathlib import Path
from typing import Literal

import gymnasium as gym
import numpy as np
import torch
import tyro

import envs
from envs.io import write_json
from envs.plain import PlainMujocoEnv

# The camera each env's students read.
CAMERAS = {"soccer-2v2": ("rgb",), "egopush-line": ("depth_layers",)}
HEADLINE = ("worlds", "steps_per_s", "ratio_to_ceiling", "speedup_vs_async", "camera_fps")


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """Env throughput benchmark."""

    envs: tuple[str, ...] = ("soccer-2v2", "egopush-line")
    """Envs to measure (each with its students' camera: see CAMERAS)."""
    worlds: tuple[int, ...] = (16, 64, 256)
    """Numbers of worlds W to measure."""
    seconds: float = 3.0
    """Measuring time per configuration (after warm-up)."""
    episodes: float = 2.0
    """The state-only figure and its ceiling time at least this many episodes of every world, so that
    every world's resets fall inside the window (soccer-2v2: 500 steps an episode, egopush-line 1200);
    the two are stepped in alternate blocks of 50 steps, so that a change in the machine's load hits
    both alike. 0: ``seconds`` alone, one after the other (``--quick``)."""
    async_workers: int | None = None
    """Processes of the AsyncVectorEnv baseline, one plain single-world env each (default: one per core)."""
    backend: Literal["cpu", "warp"] = "cpu"
    """Backend of the batched env (ceiling and async baseline always use mujoco on the CPU)."""
    device: str | None = None
    """Device for the warp backend."""
    quick: bool = False
    """W in {16, 64}, 1 s each: about a minute on 2 cores."""
    cameras: bool = True
    """Also measure with every agent's camera."""
    baselines: bool = True
    """Measure the CPU ceiling and the AsyncVectorEnv baseline (turn off for GPU runs)."""
    json: Path = Path("runs/benchmarks/bench_env.json")
    """Where the figures go. By default ``runs/benchmarks/`` (ignored by git); the published figures in
    ``benchmarks/results/bench_env.json`` are replaced only when that path is given here."""


def _rate(step, n_per_call: int, seconds: float, warmup: int = 3) -> float:  # noqa: ANN001
    for _ in range(warmup):
        step()
    calls, start = 0, time.perf_counter()
    while True:
        step()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and calls >= 3:
            return calls * n_per_call / elapsed


def _actions(env, W: int) -> list[torch.Tensor]:  # noqa: ANN001
    g = torch.Generator().manual_seed(0)
    return [(torch.rand(W, env.num_agents, env.act_dim, generator=g) * 2 - 1).to(env.device) for _ in range(8)]


def _raw_stepper(name: str, W: int):  # noqa: ANN202
    """(env, step): the env's own worlds (start states, per-world fields) under the same action
    sequence, stepped raw: only the controls are written, no observation, reward or reset work."""
    env = envs.make(name, num_envs=W)
    env.reset(seed=0)
    ctrls = []
    for a in _actions(env, W):  # the controls those actions become, written with numpy alone
        env._apply_actions(a)
        ctrls.append(env.sim.ctrl.numpy().copy())
    batch = env.sim._batch
    ctrl = batch.bind("ctrl")
    k = [0]

    def step() -> None:
        ctrl[:] = ctrls[k[0] % 8]
        batch.step(nstep=env.n_substeps)
        k[0] += 1

    return env, step


def bench_ceiling(name: str, W: int, seconds: float) -> float:
    env, step = _raw_stepper(name, W)
    rate = _rate(step, W, seconds)
    env.close()
    return rate


def bench_interleaved(name: str, W: int, seconds: float, episodes: float) -> tuple[float, float, int, int]:
    """(ceiling, state-only env-steps/s, steps timed, episode ends in the window): the raw stepper and
    the env stepped in alternate blocks of 50 steps over at least ``episodes`` episodes of every world."""
    raw, raw_step = _raw_stepper(name, W)
    env = envs.make(name, num_envs=W)
    env.reset(seed=0)
    actions = _actions(env, W)
    ends = [0]

    def env_step() -> None:
        _, _, term, trunc, _ = env.step(actions[env_step.k % 8])
        ends[0] += int((term | trunc).sum())
        env_step.k += 1

    env_step.k = 0
    for _ in range(3):  # warm-up
        raw_step()
        env_step()
    ends[0] = 0
    need = max(3, int(np.ceil(episodes * env.max_episode_steps)))
    t_raw = t_env = 0.0
    steps = 0
    while steps < need or t_raw + t_env < seconds:
        for fn, is_env in ((raw_step, False), (env_step, True)):
            start = time.perf_counter()
            for _ in range(50):
                fn()
            took = time.perf_counter() - start
            if is_env:
                t_env += took
            else:
                t_raw += took
        steps += 50
    raw.close()
    env.close()
    return steps * W / t_raw, steps * W / t_env, steps, ends[0]


def bench_env(name: str, W: int, seconds: float, backend: str, device: str | None, cameras: bool) -> float:
    over = {"cameras": CAMERAS[name]} if cameras else {}
    env = envs.make(name, num_envs=W, backend=backend, device=device, **over)
    env.reset(seed=0)
    actions = _actions(env, W)
    k = [0]

    def step() -> None:
        env.step(actions[k[0] % 8])
        k[0] += 1

    rate = _rate(step, W, seconds)
    if env.device.type == "cuda":
        torch.cuda.synchronize()
    env.close()
    return rate


def bench_async(name: str, workers: int, seconds: float) -> float:
    # spawn, not fork: a forked child of a process whose mujoco.batch thread pool is running hangs.
    make_one = functools.partial(PlainMujocoEnv, name)
    venv = gym.vector.AsyncVectorEnv([make_one for _ in range(workers)], context="spawn")
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


def bench_one(name: str, cfg: BenchConfig, worlds: tuple[int, ...], seconds: float, workers: int, save) -> dict:  # noqa: ANN001
    """Measure env ``name``, filling its entry of the result and calling ``save()`` after each figure."""
    probe = envs.make(name, num_envs=1)
    A, n_sub = probe.num_agents, probe.n_substeps
    probe.close()
    out: dict = {"agents": A, "n_substeps": n_sub, "camera": list(CAMERAS[name]), "async_workers": workers, "rows": []}
    save(out)
    async_rate = bench_async(name, workers, seconds) if cfg.baselines else float("nan")
    out["async_steps_per_s"] = async_rate
    out["async_baseline"] = "PlainMujocoEnv (mj_step, qpos/qvel from MjData) in gymnasium AsyncVectorEnv"
    save(out)
    print(
        f"{name}: AsyncVectorEnv x {workers} plain single-world MuJoCo envs: {async_rate:,.0f} env-steps/s", flush=True
    )
    for W in worlds:
        episodes = 0.0 if cfg.quick else cfg.episodes
        timed: dict = {}
        if cfg.baselines and cfg.backend == "cpu" and episodes > 0:
            ceiling, state, steps, ends = bench_interleaved(name, W, seconds, episodes)
            timed = {"steps_timed": steps, "episode_ends_timed": ends, "interleaved": True}
        else:
            ceiling = bench_ceiling(name, W, seconds) if cfg.baselines else float("nan")
            state = bench_env(name, W, seconds, cfg.backend, cfg.device, cameras=False)
        row = {
            "worlds": W,
            "ceiling_steps_per_s": ceiling,
            "steps_per_s": state,
            "ratio_to_ceiling": state / ceiling,
            "speedup_vs_async": state / async_rate,
            **timed,
        }
        out["rows"].append(row)
        save(out)
        cam_txt = ""
        if cfg.cameras:
            cam = bench_env(name, W, seconds, cfg.backend, cfg.device, cameras=True)
            row["camera_steps_per_s"] = cam
            row["camera_fps"] = cam * A
            cam_txt = f", {'+'.join(CAMERAS[name])} camera {cam:,.0f} steps/s = {cam * A:,.0f} frames/s"
        # Headline figures: the largest W measured so far.
        out.update({k: row.get(k) for k in ("steps_per_s", "ratio_to_ceiling", "speedup_vs_async", "camera_fps")})
        out["worlds"] = W
        save(out)
        window = f" over {timed['steps_timed']} steps, {timed['episode_ends_timed']} episode ends" if timed else ""
        print(
            f"{name} W={W:5d}: ceiling {ceiling:,.0f}  state {state:,.0f} steps/s "
            f"({row['ratio_to_ceiling']:.0%} of ceiling, {row['speedup_vs_async']:.1f}x async){cam_txt}{window}",
            flush=True,
        )
    return out


def main(cfg: BenchConfig) -> dict:
    unknown = [n for n in cfg.envs if n not in CAMERAS]
    if unknown:
        raise SystemExit(f"bench_env knows {sorted(CAMERAS)}, got {unknown}")
    worlds = (16, 64) if cfg.quick else cfg.worlds
    seconds = 1.0 if cfg.quick else cfg.seconds
    workers = cfg.async_workers or os.cpu_count() or 1
    result: dict = {
        "backend": cfg.backend,
        "device": cfg.device or "cpu",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
        "torch_threads": torch.get_num_threads(),
        "camera_resolution": [64, 64],
        "complete": False,
        "envs": {},
        "env": cfg.envs[0],
    }

    def save_env(name: str, figures: dict) -> None:
        result["envs"][name] = figures
        if name == cfg.envs[0]:  # the first env's headline figures at the top level (soccer-2v2 by default)
            result.update({k: figures.get(k) for k in HEADLINE})
        write_json(cfg.json, _finite(result))

    for name in cfg.envs:
        bench_one(name, cfg, worlds, seconds, workers, functools.partial(save_env, name))
    result["torch_threads"] = torch.get_num_threads()
    result["complete"] = True
    write_json(cfg.json, _finite(result))
    print(f"wrote {cfg.json}")
    return result


if __name__ == "__main__":
    main(tyro.cli(BenchConfig))
