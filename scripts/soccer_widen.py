"""Widen a soccer teacher to a larger team: a warm start for ``train_teacher.py --init-from``.

Each player of the new team starts as the source teacher: the input columns the source had (ball,
its opponent, the landmarks, its own motion) keep their weights and normaliser statistics; the new
ones (teammates, further opponents) start with zero weight, so the widened policy first acts as the
source does and PPO then learns to use them. The critic, when the source holds a training state, is
widened the same way (own robot, first opponent, ball and pitch).

    python scripts/soccer_widen.py runs/soccer-1v1-mixed-s0/checkpoint --team-size 2 \
        --out runs/soccer-2v2-from-1v1-init
    python scripts/train_teacher.py --env soccer-2v2 --init-from runs/soccer-2v2-from-1v1-init ...
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import tyro

import envs
from agents.actor import GaussianActor, widen
from agents.ppo.algorithm import Critic
from agents.run_state import load_state_file, save_state_file
from envs.config import to_dict

OTHER = 6  # features per other robot in the privileged group (ego position 2, velocity 2, cos/sin yaw)
ROBOT = 7  # features per robot in the critic group (position 2, cos/sin yaw, velocity 2, yaw rate)


def actor_columns(n_src: int, n_dst: int) -> list[int]:
    """For each source privileged column, its column in the destination layout: ball (4), teammates,
    opponents, landmarks (12), own velocity (3), previous action (3)."""
    mates_src, mates_dst = OTHER * (n_src - 1), OTHER * (n_dst - 1)
    cols = list(range(4))
    cols += [4 + i for i in range(mates_src)]  # teammate k keeps slot k
    cols += [4 + mates_dst + i for i in range(OTHER * n_src)]  # opponent k keeps slot k
    cols += [4 + mates_dst + OTHER * n_dst + i for i in range(12 + 6)]
    return cols


def critic_columns(n_src: int, n_dst: int) -> list[int]:
    """Critic columns: robots in the order own, teammates, opponents (7 each), then ball (2), ball
    velocity (2), pitch half length and width, time left."""
    cols = list(range(ROBOT))  # own robot
    cols += [ROBOT * (1 + i) + j for i in range(n_src - 1) for j in range(ROBOT)]
    cols += [ROBOT * (n_dst + i) + j for i in range(n_src) for j in range(ROBOT)]
    cols += [ROBOT * 2 * n_dst + i for i in range(7)]
    return cols


def _widen(src: torch.nn.Module, dst: torch.nn.Module, cols: list[int]) -> None:
    """``widen``, after checking that the source reads the soccer layout ``cols`` maps."""
    if len(cols) != src.net[0].weight.shape[1]:
        raise SystemExit(
            f"the source reads {src.net[0].weight.shape[1]} inputs, not the {len(cols)} of its soccer layout"
        )
    widen(src, dst, cols)


@dataclasses.dataclass(frozen=True)
class WidenConfig:
    """Widen a soccer teacher to a larger team."""

    src: tyro.conf.Positional[Path]
    """Soccer teacher checkpoint (a run's checkpoint/ keeps its critic too)."""
    team_size: int
    """Players per team of the widened teacher."""
    out: Path
    """Directory to write the widened checkpoint to."""


def main(args: WidenConfig) -> None:
    actor, meta = GaussianActor.load(args.src)
    n_src, n_dst = meta["env_config"].get("team_size"), args.team_size
    if not meta["env"].startswith("soccer") or n_src is None or n_dst <= n_src:
        raise SystemExit(
            f"{args.src}: a soccer teacher with fewer than {n_dst} players per team is expected "
            f"(this one was trained on {meta['env']})"
        )
    env_name = f"soccer-{n_dst}v{n_dst}"
    if env_name not in envs.registered():
        raise SystemExit(f"--team-size {n_dst}: no registered env {env_name!r}; registered: {envs.registered()}")
    env = envs.make(env_name, num_envs=1)
    obs_dim, critic_dim = env.observation_spaces["privileged"].shape[-1], env.observation_spaces["critic"].shape[-1]
    env.close()
    wide = GaussianActor(obs_dim, actor.act_dim, actor.hidden, actor.group)
    _widen(actor, wide, actor_columns(n_src, n_dst))
    config = to_dict(env.cfg)
    config["reward_scales"] = meta["env_config"].get("reward_scales", config["reward_scales"])
    wide.save(args.out, env_name, config, widened_from=str(args.src))
    state = args.src / "train_state.safetensors"
    if state.is_file():
        tensors = load_state_file(state)
        src_dim = tensors["critic/norm.mean"].shape[0]
        critic = Critic(src_dim, actor.hidden)
        critic.load_state_dict({k[7:]: v for k, v in tensors.items() if k.startswith("critic/")})
        wide_critic = Critic(critic_dim, actor.hidden)
        _widen(critic, wide_critic, critic_columns(n_src, n_dst))
        save_state_file(
            args.out / "train_state.safetensors", {f"critic/{k}": v for k, v in wide_critic.state_dict().items()}
        )
    print(
        f"wrote {args.out}: {env_name} teacher widened from {args.src} ({'with' if state.is_file() else 'no'} critic)"
    )


if __name__ == "__main__":
    main(tyro.cli(WidenConfig))
