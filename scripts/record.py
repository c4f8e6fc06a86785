"""Record batched rollouts of a policy into a sharded dataset (see ``envs/recording.py``).

    python scripts/record.py --env soccer-1v1 --policy scripted --episodes 64 --out data/soccer-expert
    python scripts/record.py --env egopush-line --policy scripted --episodes 100 --cameras depth_layers \\
        --out data/push-expert
    # graded offline datasets: the same player, noisier, and a random one
    python scripts/record.py --env egopush-goal --policy scripted --action-noise 0.3 --epsilon 0.2 \\
        --label medium --episodes 200 --out data/goal-medium
    python scripts/record.py --env egopush-goal --policy random --label random --episodes 200 --out data/goal-random
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Literal

import tyro

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import envs  # noqa: E402
from agents.policies import make_policy  # noqa: E402
from agents.rollout import NoisyPolicy, TeamPolicy, record  # noqa: E402
from envs.config import to_dict  # noqa: E402
from envs.recording import RecordingWriter, file_sha256  # noqa: E402

__version__ = "0.1.0"


@dataclasses.dataclass(frozen=True)
class RecordConfig:
    """Record rollouts."""

    env: str = "soccer-1v1"
    """Registered env name."""
    policy: str = "scripted"
    """``scripted``, ``random`` or a policy checkpoint directory."""
    opponent: str = "scripted"
    """Competitive envs: ``scripted``, ``random`` or a checkpoint for the other team."""
    episodes: int = 32
    """Episodes to record in all."""
    out: Path = Path("data/recording")
    """Output directory (must not hold a recording yet)."""
    num_envs: int = 16
    """Worlds recorded at once."""
    cameras: tuple[str, ...] = ()
    """Cameras to render and record: soccer ``rgb``, ``depth``, ``segmentation``; EgoPush ``depth_layers``, ``rgb``."""
    obs_groups: tuple[str, ...] | None = None
    """Groups to record (default: ``privileged``, ``proprio`` and the cameras')."""
    action_noise: float = 0.0
    """Std of Gaussian noise added to the policy's actions."""
    epsilon: float = 0.0
    """Probability per agent and step of a uniformly random action instead."""
    label: str = ""
    """Dataset quality label stored in the manifest (``expert``, ``medium``, ``random``, ...)."""
    episodes_per_shard: int = 16
    """Episodes per shard file."""
    compress: bool = True
    """zlib-compress shards: camera frames shrink about 16x, at a cost in recording speed."""
    backend: Literal["cpu", "warp"] = "cpu"
    """Physics backend."""
    device: str | None = None
    """Device for the warp backend."""
    seed: int = 0
    """Seed of the worlds, random policies and noise."""


def _policy_meta(spec: str) -> dict:
    if spec in ("scripted", "random"):
        return {"kind": spec}
    return {"kind": "checkpoint", "path": str(spec), "sha256": file_sha256(Path(spec) / "policy.safetensors")}


def main(cfg: RecordConfig) -> Path:
    if cfg.env not in envs.registered():
        raise SystemExit(f"unknown env {cfg.env!r}; registered: {envs.registered()}")
    camera_groups = {"rgb": "camera", "depth": "depth", "segmentation": "segmentation", "depth_layers": "depth_layers"}
    over = {"cameras": tuple(cfg.cameras)} if cfg.cameras else {}
    env = envs.make(cfg.env, num_envs=min(cfg.num_envs, cfg.episodes), backend=cfg.backend, device=cfg.device, **over)
    # By default the state groups the env has (a peer PettingZoo env has no ``proprio``).
    default = [g for g in ("privileged", "proprio") if g in env.observation_spaces]
    groups = list(cfg.obs_groups or [*default, *(camera_groups[c] for c in cfg.cameras)])
    policy = make_policy(cfg.policy, env, seed=cfg.seed)
    meta = {
        "env": cfg.env,
        "config": to_dict(env.cfg),
        "policy": _policy_meta(cfg.policy),
        "seed": cfg.seed,
        "label": cfg.label,
        "action_noise": cfg.action_noise,
        "epsilon": cfg.epsilon,
        "egoteach_version": __version__,
        "agents": env.agents,
    }
    if env.competitive:
        n = env.num_agents // 2
        policy = TeamPolicy(policy, make_policy(cfg.opponent, env, seed=cfg.seed + 1), n)
        meta["opponent"] = _policy_meta(cfg.opponent)
    if cfg.action_noise or cfg.epsilon:
        policy = NoisyPolicy(policy, cfg.action_noise, cfg.epsilon, seed=cfg.seed + 2)
    writer = RecordingWriter(cfg.out, meta, groups, episodes_per_shard=cfg.episodes_per_shard, compress=cfg.compress)
    try:
        n = record(env, policy, writer, cfg.episodes, groups, seed=cfg.seed)
    except KeyboardInterrupt:
        print(f"\ninterrupted: {writer.num_episodes} finished episodes kept in {cfg.out}")
        raise SystemExit(130) from None
    finally:
        env.close()
    print(f"recorded {n} episodes of {cfg.env} into {cfg.out}")
    return cfg.out


if __name__ == "__main__":
    main(tyro.cli(RecordConfig))
