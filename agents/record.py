"""Record policy rollouts as a recording (see ``envs.recording``); ``scripts/record.py`` is its command
line."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import envs
from agents.policies import make_policy
from agents.rollout import NoisyPolicy, TeamPolicy, record
from envs.config import to_dict
from envs.recording import RecordingWriter, file_sha256

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
    env_overrides: str = "{}"
    """JSON object of env config fields, e.g. ``'{"camera_resolution": [32, 32]}'`` (saved in the manifest's config)."""
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


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[dict[str, int]]:
    """Within the block, SIGTERM (``kill PID``, a scheduler's stop) stops the recording as Ctrl-C
    does; the dict yielded holds the number of the signal that stopped it. The previous handler is
    restored after; outside the main thread (no handlers there) nothing changes."""
    stopped = {"signum": signal.SIGINT}
    if threading.current_thread() is not threading.main_thread():
        yield stopped
        return

    def handler(signum: int, frame: object) -> None:
        stopped["signum"] = signum
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield stopped
    finally:
        signal.signal(signal.SIGTERM, previous)


def record_rollouts(cfg: RecordConfig) -> Path:
    """Record ``cfg.episodes`` episodes into ``cfg.out``. Ctrl-C or SIGTERM stops it, keeping every
    finished episode (a second one while they are written drops those not yet in a shard); the
    manifest then says ``interrupted`` and the process exits with 130 (Ctrl-C) or 143 (SIGTERM)."""
    if cfg.env not in envs.registered():
        raise ValueError(f"unknown env {cfg.env!r}; registered: {envs.registered()}")
    camera_groups = {"rgb": "camera", "depth": "depth", "segmentation": "segmentation", "depth_layers": "depth_layers"}
    try:
        extra = json.loads(cfg.env_overrides)
    except json.JSONDecodeError as err:
        raise ValueError(f"--env-overrides is not JSON ({err}): {cfg.env_overrides!r}") from None
    if not isinstance(extra, dict):
        raise ValueError(f"--env-overrides must be a JSON object, got {cfg.env_overrides!r}")
    over = {**extra, **({"cameras": tuple(cfg.cameras)} if cfg.cameras else {})}
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
    with _sigterm_as_interrupt() as stopped:
        try:
            n = record(env, policy, writer, cfg.episodes, groups, seed=cfg.seed)
        except KeyboardInterrupt:
            name = signal.Signals(stopped["signum"]).name
            print(f"\n{name}: {writer.num_episodes} finished episodes kept in {cfg.out} (status: interrupted)")
            raise SystemExit(128 + stopped["signum"]) from None
        finally:
            env.close()
    print(f"recorded {n} episodes of {cfg.env} into {cfg.out}")
    return cfg.out
