"""A Gymnasium env over one world of a batched env, every agent's action joined."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from envs.base import BatchedEnv
from envs.registry import make


class GymEnv(gym.Env):
    """One world. Action ``[A, act_dim]``; observation a ``Dict`` of groups, each ``[A, ...]``.

    The reward is agent 0's (the only agent in single-agent tasks); ``info["rewards"]`` has all.
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
        spaces = {}
        for g in self.groups:
            s = env.observation_spaces[g]
            spaces[g] = gym.spaces.Box(
                np.broadcast_to(s.low, (A, *s.shape)), np.broadcast_to(s.high, (A, *s.shape)), (A, *s.shape), s.dtype
            )
        self.observation_space = gym.spaces.Dict(spaces)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (A, env.act_dim), np.float32)
        self.metadata = {**self.metadata, "render_fps": round(1 / env.control_dt)}

    def _np(self, obs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        return {g: obs[g][0].cpu().numpy() for g in self.groups}

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        return self._np(self.env.reset(seed=seed)), {}

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        act = torch.as_tensor(np.asarray(action, dtype=np.float32)).reshape(1, *self.action_space.shape)
        obs, reward, term, trunc, info = self.env.step(act)
        if bool(term[0] or trunc[0]):
            obs = info["final_obs"]
        out_info: dict[str, Any] = {"rewards": reward[0].cpu().numpy()}
        if "score" in info:
            out_info["score"] = info["score"][0].cpu().numpy()
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
