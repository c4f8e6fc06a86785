"""A Stable-Baselines3 ``VecEnv``: each (world, learning agent) is one slot, sharing a policy.

The other agents (by default the opposing team) are driven by a fixed policy the caller gives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnv

from envs.base import BatchedEnv, real_actions
from envs.policies import fixed_policy
from envs.registry import make

OpponentPolicy = Callable[[dict[str, torch.Tensor]], torch.Tensor]


class SB3VecEnv(VecEnv):
    """Slots ordered world-major: slot ``w * K + k`` is learning agent ``k`` of world ``w``.

    Args:
        env: the batched env.
        learners: indices of the agents SB3 controls (default: team 0, the first half).
        opponent: policy for the other agents, fed their observation groups ``[W, K', ...]``.
        obs_group: the observation group SB3 sees.
    """

    def __init__(
        self,
        env: BatchedEnv,
        learners: Sequence[int] | None = None,
        opponent: OpponentPolicy | None = None,
        obs_group: str = "privileged",
    ) -> None:
        if obs_group not in env.observation_spaces:
            raise ValueError(f"unknown observation group {obs_group!r}; available: {list(env.observation_spaces)}")
        A = env.num_agents
        learners = list(range(A // 2 if A > 1 else 1)) if learners is None else list(learners)
        if not learners or any(not 0 <= i < A for i in learners):
            raise ValueError(f"learners must be agent indices in [0, {A}), got {learners}")
        self.env = env
        self.learners = torch.tensor(learners, device=env.device)
        others = [i for i in range(A) if i not in learners]
        self.others = torch.tensor(others, dtype=torch.long, device=env.device)
        if others and opponent is None:
            raise ValueError("opponent policy required: the env has agents SB3 does not control")
        self.opponent = opponent
        self.obs_group = obs_group
        self.K = len(learners)
        super().__init__(env.num_envs * self.K, env.observation_spaces[obs_group], env.action_space)
        self._obs: dict[str, torch.Tensor] | None = None
        self._actions: torch.Tensor | None = None
        self._seed: int | None = None
        self._ep_return = np.zeros(self.num_envs, dtype=np.float64)
        self._ep_len = np.zeros(self.num_envs, dtype=np.int64)

    def _flat(self, obs: dict[str, torch.Tensor]) -> np.ndarray:
        x = obs[self.obs_group][:, self.learners]
        return x.reshape(self.num_envs, *x.shape[2:]).cpu().numpy()

    def reset(self) -> np.ndarray:
        self._obs = self.env.reset(seed=self._seed)
        self._seed = None
        self._ep_return[:] = 0
        self._ep_len[:] = 0
        return self._flat(self._obs)

    def step_async(self, actions: np.ndarray) -> None:
        """Take the slots' actions ``[num_envs, act_dim]`` (real floating or integer numbers):
        another shape is a ``ValueError`` naming the one expected, never broadcast or reshaped."""
        acts = real_actions(actions)
        expected = (self.num_envs, *self.action_space.shape)
        if tuple(acts.shape) != expected:
            raise ValueError(
                f"actions must have shape (slots, act_dim) = {expected} (slot w * {self.K} + k: learner k of"
                f" world w), got {tuple(acts.shape)}"
            )
        self._actions = acts

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        assert self._obs is not None and self._actions is not None, "call reset() and step_async() first"
        W, A = self.env.num_envs, self.env.num_agents
        full = torch.zeros(W, A, self.env.act_dim, device=self.env.device)
        full[:, self.learners] = self._actions.to(self.env.device).view(W, self.K, -1)
        if len(self.others):
            full[:, self.others] = self.opponent({k: v[:, self.others] for k, v in self._obs.items()}).to(full)
        obs, reward, term, trunc, info = self.env.step(full)
        self._obs = obs
        rew = reward[:, self.learners].reshape(-1).cpu().numpy().astype(np.float32)
        done_w = (term | trunc).cpu().numpy()
        dones = np.repeat(done_w, self.K)
        self._ep_return += rew
        self._ep_len += 1
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if done_w.any():
            final = self._flat(info["final_obs"])
            trunc_w = (trunc & ~term).cpu().numpy()
            for slot in np.flatnonzero(dones):
                w = slot // self.K
                infos[slot]["terminal_observation"] = final[slot]
                infos[slot]["TimeLimit.truncated"] = bool(trunc_w[w])
                infos[slot]["episode"] = {"r": float(self._ep_return[slot]), "l": int(self._ep_len[slot])}
            self._ep_return[dones] = 0
            self._ep_len[dones] = 0
        return self._flat(obs), rew, dones, infos

    def close(self) -> None:
        self.env.close()

    def seed(self, seed: int | None = None) -> list[int | None]:
        self._seed = seed
        return [seed] * self.num_envs

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self.env, attr_name)] * len(self._indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self.env, attr_name, value)

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list[Any]:
        result = getattr(self.env, method_name)(*args, **kwargs)
        return [result] * len(self._indices(indices))

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: Any = None) -> list[bool]:
        return [False] * len(self._indices(indices))

    def _indices(self, indices: Any) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        return [indices] if isinstance(indices, int) else list(indices)

    def get_images(self) -> list[np.ndarray]:
        return [self.env.render_frame(0)]


def make_sb3(
    name: str,
    num_envs: int = 16,
    opponent: str | OpponentPolicy = "scripted",
    obs_group: str = "privileged",
    backend: str = "cpu",
    device: str | None = None,
    **overrides: Any,
) -> SB3VecEnv:
    """An SB3 ``VecEnv`` over ``num_envs`` worlds of ``name``; the opposing team plays ``opponent``.

    ``opponent`` is ``"scripted"``, ``"random"`` or a policy callable (``obs -> actions``).
    """
    env = make(name, num_envs=num_envs, backend=backend, device=device, **overrides)
    if isinstance(opponent, str):
        opponent = fixed_policy(opponent, env)
    return SB3VecEnv(env, opponent=opponent, obs_group=obs_group)
