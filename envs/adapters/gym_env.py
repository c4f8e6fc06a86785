"""A Gymnasium env over one world of a batched env, every agent's action joined."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from envs.base import BatchedEnv, real_actions
from envs.registry import make


class GymEnv(gym.Env):
    """One world. Action ``[A, act_dim]``; observation a ``Dict`` of groups, each ``[A, ...]``.
    With one agent (EgoPush) the agent axis is dropped: action ``[act_dim]``, groups ``[...]``.

    The reward is agent 0's (the only agent in single-agent tasks); ``info["rewards"]`` has all.
    ``info`` also carries the task's per-world statistics (EgoPush: ``success``, ``stage``,
    ``reach``, ``path_length``).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 25}

    def __init__(
        self, env: BatchedEnv, obs_groups: tuple[str, ...] | None = None, render_mode: str | None = None
    ) -> None:
        if env.num_envs != 1:
            raise ValueError(f"GymEnv wraps one world, got num_envs={env.num_envs}")
        self.env = env
        self.render_mode = render_mode
        self.groups = tuple(obs_groups or env.observation_spaces)
        A = env.num_agents
        self._lead = () if A == 1 else (A,)
        spaces = {}
        for g in self.groups:
            s = env.observation_spaces[g]
            shape = (*self._lead, *s.shape)
            spaces[g] = gym.spaces.Box(np.broadcast_to(s.low, shape), np.broadcast_to(s.high, shape), shape, s.dtype)
        self.observation_space = gym.spaces.Dict(spaces)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (*self._lead, env.act_dim), np.float32)
        self.metadata = {**self.metadata, "render_fps": round(1 / env.control_dt)}

    def _np(self, obs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        if not self._lead:
            return {g: obs[g][0, 0].cpu().numpy() for g in self.groups}
        return {g: obs[g][0].cpu().numpy() for g in self.groups}

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        return self._np(self.env.reset(seed=seed)), {}

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        act = real_actions(action, "action")
        if tuple(act.shape) != self.action_space.shape:
            raise ValueError(f"action must have shape {self.action_space.shape}, got {tuple(act.shape)}")
        act = act.reshape(1, self.env.num_agents, self.env.act_dim)
        obs, reward, term, trunc, info = self.env.step(act)
        if bool(term[0] or trunc[0]):
            obs = info["final_obs"]
        out_info: dict[str, Any] = {"rewards": reward[0].cpu().numpy()}
        for key in ("score", "success", "stage", "reach", "path_length"):
            if key in info:
                value = info[key][0].cpu().numpy()
                out_info[key] = value.item() if value.ndim == 0 else value
        return self._np(obs), float(reward[0, 0]), bool(term[0]), bool(trunc[0]), out_info

    def render(self) -> np.ndarray | None:
        return self.env.render_frame(0) if self.render_mode == "rgb_array" else None

    def close(self) -> None:
        self.env.close()


def make_gym(
    name: str, render_mode: str | None = None, obs_groups: tuple[str, ...] | None = None, **overrides: Any
) -> GymEnv:
    """A Gymnasium env of one world of env ``name`` (config ``overrides`` as ``make``)."""
    backend = overrides.pop("backend", "cpu")
    device = overrides.pop("device", None)
    return GymEnv(make(name, num_envs=1, backend=backend, device=device, **overrides), obs_groups, render_mode)


def make_egopush_gym(
    task: str = "line", observability: str = "global", render_mode: str | None = None, **overrides: Any
) -> GymEnv:
    """The entry point of ``gymnasium.make("egoteach/EgoPush-v0", task=..., observability=...)``."""
    return make_gym(f"egopush-{task}", render_mode=render_mode, observability=observability, **overrides)
