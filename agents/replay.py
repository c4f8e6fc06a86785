"""Rollouts as videos: a recording re-rendered from its states, or a policy run live, as the overview
camera with a HUD (step, score or success, reward) and one egocentric panel per agent.
``scripts/replay.py`` and ``scripts/play.py`` are its command lines."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

import envs
from agents.policies import checkpoint_env, make_policy
from agents.rollout import TeamPolicy
from envs.recording import Recording
from envs.resimulate import load_episode_state, make_env
from envs.video import VideoWriter, world_frame


@dataclasses.dataclass(frozen=True)
class ReplayConfig:
    """Replay a rollout as a video."""

    out: Path = Path("videos/replay.mp4")
    """Output video, ``.mp4`` (H.264) or ``.gif``."""
    recording: Path | None = None
    """Re-render this recording."""
    episode: int = 0
    """Episode of the recording to replay."""
    checkpoint: Path | None = None
    """Run this policy checkpoint live, in the env it was trained on."""
    env: str | None = None
    """Run live in this env (with ``--policy``)."""
    policy: str = "scripted"
    """Live: ``scripted``, ``random`` or a checkpoint directory."""
    opponent: str = "scripted"
    """Live, competitive envs: the other team's policy."""
    seconds: float | None = None
    """Live: episode length (default: the env's)."""
    width: int = 480
    """Overview width in pixels (height 3/4 of it)."""
    ego_size: int = 96
    """Side of each egocentric panel in pixels (0: none)."""
    agents: tuple[str, ...] | None = None
    """Agents whose egocentric views to show (default all)."""
    fps: float | None = None
    """Frames per second (default: the env's control rate, i.e. real time)."""
    seed: int = 0
    """Live: seed of the world and random policies."""
    still: Path | None = None
    """Also save the frame at ``still_at`` seconds as a PNG (for docs)."""
    still_at: float = 6.0
    """Time of the still, in seconds."""


def _append(video: VideoWriter, frame: np.ndarray, t: int, dt: float, cfg: ReplayConfig) -> None:
    video.append(frame)
    if cfg.still is not None and t == round(cfg.still_at / dt):
        import imageio.v2 as imageio

        cfg.still.parent.mkdir(parents=True, exist_ok=True)
        imageio.imwrite(cfg.still, frame)


def _text(step: int, info: dict, reward: np.ndarray) -> list[str]:
    parts = [f"step {step}"]
    if "score" in info:
        parts.append(f"blue {info['score'][0]} - {info['score'][1]} red")
    if "success" in info:
        parts.append(f"stage {info['stage']}  success {'yes' if info['success'] else 'no'}")
    parts.append(f"reward {' '.join(f'{r:+.2f}' for r in np.atleast_1d(reward))}")
    return ["   ".join(parts)]


def _replay_recording(cfg: ReplayConfig) -> tuple[int, Path]:
    rec = Recording(cfg.recording)
    ep = rec.episode(cfg.episode)
    env = make_env(rec, num_envs=1, cameras=())
    size = (cfg.width, cfg.width * 3 // 4)
    agents = () if cfg.ego_size == 0 else cfg.agents
    bar = tqdm(total=ep.length + 1, desc=f"replaying episode {cfg.episode}", unit="frame")
    with VideoWriter(cfg.out, cfg.fps or 1 / env.control_dt) as video:
        for t in range(ep.length + 1):
            load_episode_state(env, ep, t)
            info = {k[5:]: ep.data[k][max(t - 1, 0)] for k in ep.data if k.startswith("info/")}
            reward = ep.data["rewards"][t - 1] if t else np.zeros(env.num_agents)
            frame = world_frame(env, 0, _text(t, info, reward), agents, size, max(cfg.ego_size, 1))
            _append(video, frame, t, env.control_dt, cfg)
            bar.update(1)
    bar.close()
    env.close()
    return video.frames, cfg.out


def _show_final_state(env: Any, final_state: dict[str, torch.Tensor], fields: dict[str, torch.Tensor]) -> None:
    """Put world 0 back as its episode ended: the env has already reset it (its state, and the
    per-world fields a reset draws anew, like EgoPush's goal), so the last frame would show the next
    episode's start."""
    for name, value in fields.items():
        env.sim.field(name)[0] = value
    env.sim.set_state([0], {k: v[0:1] for k, v in final_state.items()})


def _replay_live(cfg: ReplayConfig) -> tuple[int, Path]:
    if cfg.checkpoint is not None:
        name, config = checkpoint_env(cfg.checkpoint)
        spec = str(cfg.checkpoint)
        over = dict(config)
    else:
        name, spec, over = cfg.env, cfg.policy, {}
    if name not in envs.registered():
        raise ValueError(f"unknown env {name!r}; registered: {envs.registered()}")
    if cfg.seconds is not None:
        over["episode_seconds"] = cfg.seconds
    if name.startswith("soccer"):
        over["on_goal"] = "kickoff"  # a video plays the whole match, whatever the policy trained with
    env = envs.make(name, num_envs=1, **over)
    policy = make_policy(spec, env, seed=cfg.seed)
    if env.competitive:
        policy = TeamPolicy(policy, make_policy(cfg.opponent, env, seed=cfg.seed + 1), env.num_agents // 2)
    size = (cfg.width, cfg.width * 3 // 4)
    agents = () if cfg.ego_size == 0 else cfg.agents
    obs = env.reset(seed=cfg.seed)
    fields = {n: env.sim.field(n)[0].clone() for n in getattr(env, "per_world_fields", ())}
    info: dict = {}
    reward = np.zeros(env.num_agents)
    t, done = 0, False
    bar = tqdm(total=env.max_episode_steps + 1, desc=f"{name} live", unit="frame")
    with VideoWriter(cfg.out, cfg.fps or 1 / env.control_dt) as video:
        while True:  # the start, then every step up to and including the one that ends the episode
            frame = world_frame(env, 0, _text(t, info, reward), agents, size, max(cfg.ego_size, 1))
            _append(video, frame, t, env.control_dt, cfg)
            bar.update(1)
            if done:
                break
            with torch.no_grad():
                obs, r, term, trunc, full = env.step(policy(obs))
            t += 1
            reward = r[0].cpu().numpy()
            info = {k: full[k][0].cpu().numpy().tolist() for k in ("score", "success", "stage") if k in full}
            done = bool(term[0] or trunc[0])
            if done:
                _show_final_state(env, full["final_state"], fields)
    bar.total = bar.n  # an episode that ended early: the bar ends full
    bar.close()
    env.close()
    return video.frames, cfg.out


def replay(cfg: ReplayConfig) -> tuple[int, Path]:
    """Write the video ``cfg.out``; (frames written, path). Exactly one source must be given."""
    sources = [cfg.recording is not None, cfg.checkpoint is not None, cfg.env is not None]
    if sum(sources) != 1:
        raise ValueError("give exactly one of --recording DIR, --checkpoint PATH, or --env NAME (with --policy)")
    return _replay_recording(cfg) if cfg.recording is not None else _replay_live(cfg)
