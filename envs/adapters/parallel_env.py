"""A PettingZoo ``ParallelEnv`` over one world of a batched env (numpy in, numpy out)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pettingzoo
import torch

from envs.base import BatchedEnv, real_actions
from envs.registry import make


class ParallelEnv(pettingzoo.ParallelEnv):
    """One world; each agent observes a ``Dict`` of the chosen observation groups.

    When the world's episode ends, the observations returned are the final ones (the batched
    env has already started the next episode inside) and ``agents`` becomes empty until
    ``reset``. ``render()`` with ``render_mode="rgb_array"`` gives the overview frame.
    """

    metadata = {"render_modes": ["rgb_array"], "name": "egoteach_parallel_v0", "is_parallelizable": True}

    def __init__(
        self, env: BatchedEnv, obs_groups: tuple[str, ...] | None = None, render_mode: str | None = None
    ) -> None:
        if env.num_envs != 1:
            raise ValueError(f"ParallelEnv wraps one world, got num_envs={env.num_envs}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        groups = tuple(obs_groups or env.observation_spaces)
        missing = [g for g in groups if g not in env.observation_spaces]
        if missing:
            raise ValueError(f"unknown observation group(s) {missing}; available: {list(env.observation_spaces)}")
        self.env = env
        self.groups = groups
        self.render_mode = render_mode
        self.possible_agents = list(env.agents)
        self.agents: list[str] = []
        space = gym.spaces.Dict({g: env.observation_spaces[g] for g in groups})
        self._obs_spaces = {a: space for a in self.possible_agents}
        self._act_spaces = {a: gym.spaces.Box(-1.0, 1.0, (env.act_dim,), np.float32) for a in self.possible_agents}
        self._idx = {a: i for i, a in enumerate(self.possible_agents)}

    def observation_space(self, agent: str) -> gym.spaces.Dict:
        return self._obs_spaces[agent]

    def action_space(self, agent: str) -> gym.spaces.Box:
        return self._act_spaces[agent]

    def _split(self, obs: dict[str, torch.Tensor]) -> dict[str, dict[str, np.ndarray]]:
        arrays = {g: obs[g][0].cpu().numpy() for g in self.groups}
        return {a: {g: arrays[g][i] for g in self.groups} for a, i in self._idx.items()}

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        obs = self.env.reset(seed=seed)
        self.agents = list(self.possible_agents)
        return self._split(obs), {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        if not self.agents:
            raise RuntimeError("step() after the episode ended: call reset()")
        if not isinstance(actions, dict):
            raise TypeError(f"actions must be a dict agent -> action, got {type(actions).__name__}")
        unknown = sorted(set(actions) - set(self.agents), key=str)
        if unknown:
            raise ValueError(f"actions for unknown or finished agents {unknown}; live agents: {self.agents}")
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise ValueError(f"no action for live agent(s) {missing}: every live agent {self.agents} needs one")
        full = torch.zeros(1, self.env.num_agents, self.env.act_dim)
        for a, act in actions.items():
            act = real_actions(act, f"action of {a}")
            if tuple(act.shape) != (self.env.act_dim,):
                raise ValueError(f"action of {a} must have shape ({self.env.act_dim},), got {tuple(act.shape)}")
            full[0, self._idx[a]] = act.cpu()
        obs, reward, term, trunc, info = self.env.step(full)
        done = bool(term[0] or trunc[0])
        if done:
            obs = info["final_obs"]
        out = self._split(obs)
        r = reward[0].cpu().numpy()
        live = list(self.agents)
        rewards = {a: float(r[self._idx[a]]) for a in live}
        terms = {a: bool(term[0]) for a in live}
        truncs = {a: bool(trunc[0]) for a in live}
        infos: dict[str, dict] = {a: {} for a in live}
        for a in live:
            infos[a]["reward_terms"] = {k: float(v[0, self._idx[a]]) for k, v in info["reward_terms"].items()}
            if "score" in info:
                infos[a]["score"] = info["score"][0].cpu().numpy().tolist()
            infos[a]["diverged"] = bool(info["diverged"][0])
        if done:
            self.agents = []
        return {a: out[a] for a in live}, rewards, terms, truncs, infos

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return self.env.render_frame(0)

    def close(self) -> None:
        self.env.close()


def make_parallel(
    name: str, render_mode: str | None = None, obs_groups: tuple[str, ...] | None = None, **overrides: Any
) -> ParallelEnv:
    """A PettingZoo ``ParallelEnv`` of one world of env ``name`` (config ``overrides`` as ``make``)."""
    backend = overrides.pop("backend", "cpu")
    device = overrides.pop("device", None)
    return ParallelEnv(make(name, num_envs=1, backend=backend, device=device, **overrides), obs_groups, render_mode)
