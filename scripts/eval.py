"""Evaluate a policy: win, draw and loss rates in soccer, success rate in EgoPush (95% CIs).

python scripts/eval.py --env soccer-1v1 --policy scripted --opponent random --episodes 200
python scripts/eval.py --env soccer-2v2 --policy random --episodes 100 --json out.json
python scripts/eval.py --checkpoint checkpoints/egopush-line-teacher-global --episodes 200
python scripts/eval.py --checkpoint checkpoints/egopush-line-student-fov_gated --blank-camera
python scripts/eval.py --checkpoint checkpoints/egopush-line-teacher-fov_gated --env-overrides '{"memory_seconds": 5}'

A checkpoint is evaluated in the env it was trained on; a vision student's env renders its camera.
``--blank-camera`` replaces every camera image the policy is given with zeros: robustness to a
failed camera, and a measure of how much a student relies on vision. ``--env-overrides`` changes
the env's config over the checkpoint's (e.g. a memory teacher evaluated with a shorter memory).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Literal

import tyro

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import envs  # noqa: E402
from agents.checkpoint import CheckpointError  # noqa: E402
from agents.evaluate import play_matches, run_episodes  # noqa: E402
from agents.policies import BlankCamera, checkpoint_env, make_policy  # noqa: E402
from envs.config import parse_overrides  # noqa: E402
from envs.io import write_json  # noqa: E402


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Evaluate a policy (team 0) against an opponent (team 1)."""

    env: str = "soccer-1v1"
    """Registered env name (see ``envs.registered()``); ignored with ``--checkpoint``."""
    policy: str = "scripted"
    """Policy (team 0 in competitive envs): ``scripted``, ``random`` or a checkpoint directory."""
    checkpoint: Path | None = None
    """Evaluate this checkpoint in the env (and env config) it was trained on."""
    opponent: str = "scripted"
    """Policy of team 1 (competitive envs only): ``scripted``, ``random`` or a checkpoint directory."""
    episodes: int = 100
    """Episodes (matches) in all."""
    num_envs: int = 32
    """Worlds played at once."""
    backend: Literal["cpu", "warp"] = "cpu"
    """Physics backend."""
    device: str | None = None
    """Device for the warp backend (default: CUDA when present)."""
    seed: int = 0
    """Seed of the env and of random policies."""
    blank_camera: bool = False
    """Give the policy all-zero camera images (a failed camera)."""
    env_overrides: str = "{}"
    """More env config as JSON, over the checkpoint's, e.g. ``'{"memory_seconds": 5}'`` or ``'{"nthread": 1}'``."""
    json: Path | None = None
    """Write the results to this JSON file as well."""


def _overrides(text: str) -> dict:
    try:
        return parse_overrides(text)
    except ValueError as err:
        raise SystemExit(f"--env-overrides {err}") from None


def _policy(spec: str, env: object, seed: int, flag: str) -> object:
    """``make_policy``, with a bad ``spec`` (CheckpointError included: a folder that is not a policy, or
    one for another env) an exit naming ``flag`` instead of a traceback."""
    try:
        return make_policy(spec, env, seed=seed)
    except ValueError as err:
        env.close()
        raise SystemExit(f"{flag}: {err}") from None


def main(cfg: EvalConfig) -> dict:
    extra = _overrides(cfg.env_overrides)
    over: dict = {}
    if cfg.checkpoint is not None:
        try:
            name, config = checkpoint_env(cfg.checkpoint)
        except CheckpointError as err:
            raise SystemExit(f"--checkpoint: {err}") from None
        # The checkpoint's world and observations; the task's own rewards for the returns.
        over = {k: v for k, v in config.items() if k != "reward_scales"}
        cfg = dataclasses.replace(cfg, env=name, policy=str(cfg.checkpoint))
    if cfg.env not in envs.registered():
        raise SystemExit(f"unknown env {cfg.env!r}; registered: {envs.registered()}")
    W = min(cfg.num_envs, cfg.episodes)
    env = envs.make(cfg.env, num_envs=W, backend=cfg.backend, device=cfg.device, **{**over, **extra})
    policy = _policy(cfg.policy, env, cfg.seed, "--checkpoint" if cfg.checkpoint is not None else "--policy")
    if cfg.blank_camera:
        policy = BlankCamera(policy)
    head = {
        "env": cfg.env,
        "policy": cfg.policy,
        "seed": cfg.seed,
        "blank_camera": cfg.blank_camera,
        "env_overrides": extra,
    }
    blank = " (blank camera)" if cfg.blank_camera else ""
    if env.competitive:
        opponent = _policy(cfg.opponent, env, cfg.seed + 1, "--opponent")
        result = {**head, "opponent": cfg.opponent, **play_matches(env, policy, opponent, cfg.episodes, seed=cfg.seed)}
        lo, hi = result["win_rate_ci95"]
        print(
            f"{cfg.env}: {cfg.policy}{blank} vs {cfg.opponent} over {cfg.episodes} episodes: "
            f"win {result['win_rate']:.3f} [{lo:.3f}, {hi:.3f}]  draw {result['draw_rate']:.3f}  "
            f"loss {result['loss_rate']:.3f}  mean return {result['mean_return']:.3f}"
        )
    else:
        result = {**head, **run_episodes(env, policy, cfg.episodes, seed=cfg.seed)}
        lo, hi = result["success_rate_ci95"]
        print(
            f"{cfg.env}: {cfg.policy}{blank} over {cfg.episodes} episodes: success {result['success_rate']:.3f} "
            f"[{lo:.3f}, {hi:.3f}]  reach {result['reach_rate']:.3f}  path length {result['path_length']:.2f} m  "
            f"mean return {result['mean_return']:.3f}"
        )
    env.close()
    if cfg.json is not None:
        write_json(cfg.json, result)  # atomic: no half-written results
    return result


if __name__ == "__main__":
    main(tyro.cli(EvalConfig))
