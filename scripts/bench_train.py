"""Training throughput and time-to-threshold: egoteach's batched PPO against Stable-Baselines3's
PPO over ``SubprocVecEnv`` single-world envs (what a user would do otherwise), side by side on
the same machine, same networks (2 x 256 ELU... SB3: its default tanh MLP of the same sizes),
same env (``egopush-goal`` with the training shaping) and the same step budget.

    python scripts/bench_train.py                    # both, 300k env-steps each
    python scripts/bench_train.py --quick            # 40k env-steps each
    python scripts/bench_train.py --device cuda:0 --backend warp --num-envs 4096 --no-sb3   # on a GPU
"""

from __future__ import annotations

import dataclasses
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import tyro

import envs
from agents.ppo.algorithm import PPOConfig
from agents.ppo.learner_env import LearnerEnv
from agents.ppo.runner import Runner
from envs.io import write_json

ENV = "egopush-goal"
SHAPING = {"reward_scales": {"approach": 1.0, "progress": 3.0, "time": 0.001}}


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """PPO training benchmark."""

    steps: int = 300_000
    """Env-steps each trainer may use."""
    threshold: float = 0.8
    """Success rate over the last ``window`` training episodes that counts as solved."""
    window: int = 100
    """Episodes in the rolling success rate."""
    sb3_steps: int | None = None
    """Env-steps budget of SB3 (default: ``steps``)."""
    num_envs: int = 64
    """Worlds of egoteach's PPO."""
    sb3_workers: int = 8
    """SubprocVecEnv processes (one single-world env each)."""
    backend: Literal["cpu", "warp"] = "cpu"
    """Backend of egoteach's env."""
    device: str | None = None
    """Device of egoteach's env and networks."""
    sb3: bool = True
    """Also run SB3 (turn off on a GPU run)."""
    quick: bool = False
    """40k steps each."""
    json: Path = Path("runs/benchmarks/bench_train.json")
    """Where the figures go. By default ``runs/benchmarks/`` (ignored by git); the published figures in
    ``benchmarks/results/bench_train.json`` are replaced only when that path is given here."""


def run_egoteach(cfg: BenchConfig, steps: int) -> dict:
    env = envs.make(ENV, num_envs=cfg.num_envs, backend=cfg.backend, device=cfg.device, **SHAPING)
    learner = LearnerEnv(env, "privileged", "critic")
    ppo = PPOConfig(steps_per_env=32, hidden=(256, 256))
    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner(learner, ppo, steps, 0, Path(tmp), ENV, {})
        start = time.perf_counter()
        history = runner.learn(progress=False)
        wall = time.perf_counter() - start
    # Rolling success rate over the last ``window`` finished episodes, iteration by iteration.
    outcomes: list[float] = []
    solved = None
    for h in history:
        n = int(h.get("episode/count", 0))
        outcomes += [h["episode/success_rate"]] * n if n else []
        if len(outcomes) >= cfg.window and sum(outcomes[-cfg.window :]) / cfg.window >= cfg.threshold:
            solved = h
            break
    env.close()
    return {
        "steps": runner.env_steps,
        "wall_s": wall,
        "steps_per_s": runner.env_steps / wall,
        "time_to_threshold_s": None if solved is None else wall * solved["env_steps"] / runner.env_steps,
        "steps_to_threshold": None if solved is None else solved["env_steps"],
        "final_success_rate": sum(outcomes[-cfg.window :]) / max(1, len(outcomes[-cfg.window :])) if outcomes else None,
    }


def _make_single():
    import gymnasium as gym

    import envs as e

    return gym.wrappers.FlattenObservation(e.make_gym(ENV, obs_groups=("privileged",), nthread=1, **SHAPING))


def run_sb3(cfg: BenchConfig, steps: int) -> dict:
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import SubprocVecEnv

    class Threshold(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.outcomes: list[float] = []
            self.reached_at: tuple[int, float] | None = None
            self.start = time.perf_counter()

        def _on_step(self) -> bool:
            for info, done in zip(self.locals["infos"], self.locals["dones"], strict=True):
                if done:
                    self.outcomes.append(float(info.get("success", 0.0)))
            recent = self.outcomes[-cfg.window :]
            if self.reached_at is None and len(recent) >= cfg.window and np.mean(recent) >= cfg.threshold:
                self.reached_at = (self.num_timesteps, time.perf_counter() - self.start)
            self.last = float(np.mean(recent)) if recent else None
            return True

    venv = SubprocVecEnv([_make_single for _ in range(cfg.sb3_workers)], start_method="spawn")
    model = PPO(
        "MlpPolicy",
        venv,
        n_steps=256,
        batch_size=512,
        n_epochs=5,
        learning_rate=3e-4,
        seed=0,
        device="cpu",
        policy_kwargs={"net_arch": [256, 256]},
    )
    cb = Threshold()
    start = time.perf_counter()
    model.learn(total_timesteps=steps, callback=cb)
    wall = time.perf_counter() - start
    venv.close()
    return {
        "steps": model.num_timesteps,
        "wall_s": wall,
        "steps_per_s": model.num_timesteps / wall,
        "time_to_threshold_s": None if cb.reached_at is None else cb.reached_at[1],
        "steps_to_threshold": None if cb.reached_at is None else cb.reached_at[0],
        "final_success_rate": getattr(cb, "last", None),
    }


def main(cfg: BenchConfig) -> dict:
    steps = 40_000 if cfg.quick else cfg.steps
    ours = run_egoteach(cfg, steps)
    print(f"egoteach PPO ({cfg.num_envs} worlds): {ours}", flush=True)
    result = {
        "env": ENV,
        "threshold": cfg.threshold,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
        "egoteach": ours,
    }
    if cfg.sb3:
        theirs = run_sb3(cfg, cfg.sb3_steps or steps)
        print(f"SB3 PPO (SubprocVecEnv x {cfg.sb3_workers}): {theirs}", flush=True)
        result["sb3"] = theirs
        result["speedup_steps_per_s"] = ours["steps_per_s"] / theirs["steps_per_s"]
        if ours["time_to_threshold_s"] and theirs["time_to_threshold_s"]:
            result["speedup_time_to_threshold"] = theirs["time_to_threshold_s"] / ours["time_to_threshold_s"]
        elif ours["time_to_threshold_s"]:
            # SB3 did not get there within its budget: its whole wall time is a lower bound.
            result["speedup_time_to_threshold_at_least"] = theirs["wall_s"] / ours["time_to_threshold_s"]
        print({k: v for k, v in result.items() if k.startswith("speedup")})
    write_json(cfg.json, result)
    print(f"wrote {cfg.json}")
    return result


if __name__ == "__main__":
    main(tyro.cli(BenchConfig))
