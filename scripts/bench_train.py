"""Training throughput and time-to-threshold: egoteach's batched PPO against Stable-Baselines3's PPO
twice, and egoteach's PPO under each torch thread count, side by side in one run on one machine.

  egoteach   this PPO on ``--num-envs`` batched ``egopush-goal`` worlds (training shaping);
  sb3_plain  SB3 PPO over ``PlainMujocoEnv`` (``envs/plain.py``: the same MJCF, ``mj_step`` and
             observations read from ``MjData``, the reward restated in numpy) in ``SubprocVecEnv``
             with one process per core, under ``VecNormalize`` (what a user would do otherwise);
  sb3_batched SB3 PPO over the batched env itself through ``envs.make_sb3``, under ``VecNormalize``.
Same network sizes (2 x 256; ours ELU, SB3's tanh default), 2,048-sample rollouts, 5 epochs of
512-sample minibatches, gamma and lambda, and the same env-step budget on every side.

Threads: the same PPO for ``--threads-steps`` env-steps, each run in a fresh process started as a
user would start it: with nothing set (``envs.threads``' default), with torch's own default
(``EGOTEACH_TORCH_THREADS=0``), with 1 and with 2 threads; ``--threads-rounds`` rounds, the
variants interleaved within each, and each variant's best round kept (the cores are shared and
noisy); ratios are to the default's rate. With ``--threads-busy 1`` the comparison is made again
while one other process keeps a core busy (a shared machine: another user's job, a test run).

The JSON is rewritten after every run, so a run cut short keeps what it measured.

    python scripts/bench_train.py                    # 300k env-steps each, threads at 40k
    python scripts/bench_train.py --quick            # 20k env-steps each, threads at 10k: 2 to 5 min on 2 cores
    python scripts/bench_train.py --device cuda:0 --backend warp --num-envs 4096 --no-sb3   # on a GPU
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import tyro

import envs
from agents.ppo.algorithm import PPOConfig
from agents.ppo.learner_env import LearnerEnv
from agents.ppo.runner import Runner
from envs import threads
from envs.io import write_json
from envs.plain import PlainMujocoEnv

ENV = "egopush-goal"
SHAPING = {"reward_scales": {"approach": 1.0, "progress": 3.0, "time": 0.001}}
ROLLOUT = 2048  # samples per PPO update on every side
HIDDEN = (256, 256)


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
    """Env-steps budget of both SB3 runs (default: ``steps``)."""
    num_envs: int = 64
    """Worlds of egoteach's PPO and of SB3 over ``make_sb3``."""
    sb3_workers: int | None = None
    """SubprocVecEnv processes, one plain single-world env each (default: one per core)."""
    threads_steps: int = 40_000
    """Env-steps of each run of the thread-count comparison (0: skip it)."""
    threads_rounds: int = 2
    """Rounds of the thread-count comparison (each variant once per round, in a fresh process)."""
    threads_busy: tuple[int, ...] = (0, 1)
    """Busy processes beside each thread comparison (0: a quiet machine; 1: another job on a core)."""
    threads_child: bool = False
    """Internal: run egoteach's PPO alone for ``threads_steps`` and write its figures to ``json``."""
    backend: Literal["cpu", "warp"] = "cpu"
    """Backend of egoteach's env."""
    device: str | None = None
    """Device of egoteach's env and networks."""
    sb3: bool = True
    """Also run SB3 (turn off on a GPU run)."""
    quick: bool = False
    """At most 20k env-steps each, 10k per thread count."""
    json: Path = Path("runs/benchmarks/bench_train.json")
    """Where the figures go. By default ``runs/benchmarks/`` (ignored by git); the published figures in
    ``benchmarks/results/bench_train.json`` are replaced only when that path is given here."""


def _rolling(cfg: BenchConfig, outcomes: list[float]) -> float | None:
    recent = outcomes[-cfg.window :]
    return sum(recent) / len(recent) if recent else None


def run_egoteach(cfg: BenchConfig, steps: int) -> dict:
    env = envs.make(ENV, num_envs=cfg.num_envs, backend=cfg.backend, device=cfg.device, **SHAPING)
    learner = LearnerEnv(env, "privileged", "critic")
    ppo = PPOConfig(steps_per_env=ROLLOUT // cfg.num_envs, hidden=HIDDEN)
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
        "torch_threads": torch.get_num_threads(),
        "steps": runner.env_steps,
        "wall_s": wall,
        "steps_per_s": runner.env_steps / wall,
        "time_to_threshold_s": None if solved is None else wall * solved["env_steps"] / runner.env_steps,
        "steps_to_threshold": None if solved is None else solved["env_steps"],
        "final_success_rate": _rolling(cfg, outcomes),
    }


def _make_plain() -> PlainMujocoEnv:
    return PlainMujocoEnv(ENV, reward=True, **SHAPING)


def run_sb3(cfg: BenchConfig, steps: int, over: Literal["plain", "batched"]) -> dict:
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import SubprocVecEnv, VecNormalize

    class Threshold(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.outcomes: list[float] = []
            self.reached_at: tuple[int, float] | None = None
            self.start = time.perf_counter()

        def _on_step(self) -> bool:
            for info, done in zip(self.locals["infos"], self.locals["dones"], strict=True):
                if done:  # egopush-goal ends early only on success
                    self.outcomes.append(float(info.get("success", not info.get("TimeLimit.truncated", False))))
            recent = self.outcomes[-cfg.window :]
            if self.reached_at is None and len(recent) >= cfg.window and np.mean(recent) >= cfg.threshold:
                self.reached_at = (self.num_timesteps, time.perf_counter() - self.start)
            return True

    if over == "plain":
        workers = cfg.sb3_workers or os.cpu_count() or 1
        venv = SubprocVecEnv([_make_plain for _ in range(workers)], start_method="spawn")
    else:
        workers = cfg.num_envs
        venv = envs.make_sb3(ENV, num_envs=cfg.num_envs, **SHAPING)
    venv = VecNormalize(venv, gamma=PPOConfig.gamma)
    model = PPO(
        "MlpPolicy",
        venv,
        n_steps=max(1, ROLLOUT // workers),
        batch_size=512,
        n_epochs=5,
        learning_rate=3e-4,
        gamma=PPOConfig.gamma,
        gae_lambda=PPOConfig.lam,
        seed=0,
        device="cpu",
        policy_kwargs={"net_arch": list(HIDDEN)},
    )
    cb = Threshold()
    start = time.perf_counter()
    model.learn(total_timesteps=steps, callback=cb)
    wall = time.perf_counter() - start
    venv.close()
    return {
        "env": "PlainMujocoEnv in SubprocVecEnv" if over == "plain" else "envs.make_sb3 (batched)",
        "workers" if over == "plain" else "worlds": workers,
        "torch_threads": torch.get_num_threads(),
        "steps": model.num_timesteps,
        "wall_s": wall,
        "steps_per_s": model.num_timesteps / wall,
        "time_to_threshold_s": None if cb.reached_at is None else cb.reached_at[1],
        "steps_to_threshold": None if cb.reached_at is None else cb.reached_at[0],
        "final_success_rate": _rolling(cfg, cb.outcomes),
        "episodes": len(cb.outcomes),
    }


def speedups(ours: dict, theirs: dict) -> dict:
    """Ratios of ours to theirs: env-steps/s, and wall time to the threshold (or its lower bound)."""
    out = {"steps_per_s": ours["steps_per_s"] / theirs["steps_per_s"]}
    if ours["time_to_threshold_s"] and theirs["time_to_threshold_s"]:
        out["time_to_threshold"] = theirs["time_to_threshold_s"] / ours["time_to_threshold_s"]
    elif ours["time_to_threshold_s"]:
        # SB3 did not get there within its budget: its whole wall time is a lower bound.
        out["time_to_threshold_at_least"] = theirs["wall_s"] / ours["time_to_threshold_s"]
    return out


# How each variant of the thread comparison is started: environment variables set (None: removed).
THREAD_VARIANTS: dict[str, dict[str, str | None]] = {
    "egoteach_default": {threads.ENV_VAR: None},
    "torch_default": {threads.ENV_VAR: "0"},
    "one": {threads.ENV_VAR: "1"},
    "two": {threads.ENV_VAR: "2"},
}


def _child(cfg: BenchConfig, variant: str, path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    for k, v in THREAD_VARIANTS[variant].items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    args = ["--threads-child", "--threads-steps", str(cfg.threads_steps), "--num-envs", str(cfg.num_envs)]
    args += ["--backend", cfg.backend, "--json", str(path)] + (["--device", cfg.device] if cfg.device else [])
    subprocess.run([sys.executable, __file__, *args], env=env, check=True)
    return json.loads(path.read_text())


def compare_threads(cfg: BenchConfig, busy: int, save) -> dict:  # noqa: ANN001
    """egoteach's PPO under each thread variant, best of ``threads_rounds``, beside ``busy`` processes
    that spin on a core each; ``save(figures)`` after each run."""
    figures: dict = {"steps": cfg.threads_steps, "busy_processes": busy, "rounds": [], "best": {}}
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(cfg.threads_rounds):
                figures["rounds"].append({})
                for variant in THREAD_VARIANTS:
                    run = _child(cfg, variant, Path(tmp) / f"{variant}{r}.json")
                    figures["rounds"][-1][variant] = run
                    best = figures["best"].get(variant)
                    if best is None or run["steps_per_s"] > best["steps_per_s"]:
                        figures["best"][variant] = run
                    rate = figures["best"]["egoteach_default"]["steps_per_s"]
                    figures["steps_per_s_ratio_to_default"] = {
                        k: v["steps_per_s"] / rate for k, v in figures["best"].items()
                    }
                    save(figures)
                    print(
                        f"threads, {busy} busy, round {r + 1}, {variant} ({run['torch_threads']} torch threads): "
                        f"{run['steps']} env-steps in {run['wall_s']:.1f} s = {run['steps_per_s']:,.0f} env-steps/s",
                        flush=True,
                    )
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    print({f"ratio_to_default ({busy} busy, best rounds)": figures["steps_per_s_ratio_to_default"]}, flush=True)
    return figures


def main(cfg: BenchConfig) -> dict:
    if cfg.quick:
        cfg = dataclasses.replace(cfg, steps=min(cfg.steps, 20_480), threads_steps=min(cfg.threads_steps, 10_240))
    if cfg.threads_child:
        write_json(cfg.json, run_egoteach(cfg, cfg.threads_steps) | {"chosen_by": threads.chosen_by()})
        return {}
    steps = cfg.steps
    default = threads.choose_threads()  # what this process uses: the SB3 runs' learners too
    result: dict = {
        "env": ENV,
        "threshold": cfg.threshold,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
        "threads": {"default": default, "chosen_by": threads.chosen_by(), "torch_default": threads.TORCH_AT_IMPORT},
        "complete": False,
    }

    def save(key: str, value: Any) -> None:
        result[key] = value
        write_json(cfg.json, result)

    if cfg.threads_steps:
        for busy in cfg.threads_busy:
            key = "threads_comparison" if busy == 0 else f"threads_comparison_busy{busy}"
            compare_threads(cfg, busy, functools.partial(save, key))
    ours = run_egoteach(cfg, steps)
    print(f"egoteach PPO ({cfg.num_envs} worlds): {ours}", flush=True)
    save("egoteach", ours)
    if cfg.sb3:
        for over in ("plain", "batched"):
            theirs = run_sb3(cfg, cfg.sb3_steps or steps, over)
            print(f"SB3 PPO over {theirs['env']}: {theirs}", flush=True)
            save(f"sb3_{over}", theirs)
            save(f"speedup_vs_sb3_{over}", speedups(ours, theirs))
            print({f"speedup_vs_sb3_{over}": result[f"speedup_vs_sb3_{over}"]}, flush=True)
    save("complete", True)
    print(f"wrote {cfg.json}")
    return result


if __name__ == "__main__":
    main(tyro.cli(BenchConfig))
