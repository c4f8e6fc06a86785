"""The learner's view of a batched env: each (world, learning agent) is one slot, the agents
of a team share the policy, and the other agents are driven by a fixed opponent policy."""

from __future__ import annotations

from typing import Any

import torch

from agents.policies import Policy


class LearnerEnv:
    """Slots ``w * K + k``: learning agent ``k`` of world ``w``; everything ``[N = W K, ...]``.

    Args:
        env: the batched env.
        actor_group, critic_group: observation groups of the actor and the critic.
        opponent: policy of the agents that do not learn (the second team in competitive envs).
    """

    def __init__(self, env: Any, actor_group: str, critic_group: str, opponent: Policy | None = None) -> None:
        for g in (actor_group, critic_group):
            if g not in env.observation_spaces:
                raise ValueError(f"unknown observation group {g!r}; available: {list(env.observation_spaces)}")
        self.env, self.actor_group, self.critic_group = env, actor_group, critic_group
        A = env.num_agents
        self.learners = list(range(A // 2)) if env.competitive else list(range(A))
        self.others = [i for i in range(A) if i not in self.learners]
        if self.others and opponent is None:
            raise ValueError("an opponent policy is needed: the env has agents that do not learn")
        self.opponent = opponent
        self.K = len(self.learners)
        self.num_slots = env.num_envs * self.K
        self.obs_dim = env.observation_spaces[actor_group].shape[0]
        self.critic_dim = env.observation_spaces[critic_group].shape[0]
        self.act_dim = env.act_dim
        self._obs: dict[str, torch.Tensor] | None = None

    def _slots(self, obs: dict[str, torch.Tensor], group: str) -> torch.Tensor:
        x = obs[group][:, self.learners]
        return x.reshape(self.num_slots, *x.shape[2:]).float()

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        self._obs = self.env.reset(seed=seed)
        return self._slots(self._obs, self.actor_group), self._slots(self._obs, self.critic_group)

    def current(self) -> tuple[torch.Tensor, torch.Tensor]:
        assert self._obs is not None, "reset() first"
        return self._slots(self._obs, self.actor_group), self._slots(self._obs, self.critic_group)

    def step(self, actions: torch.Tensor) -> dict[str, Any]:
        """Actions ``[N, act_dim]`` -> next actor/critic obs, rewards, dones, final critic obs of
        truncated slots (for bootstrapping), and the env's info."""
        assert self._obs is not None, "reset() first"
        W, A = self.env.num_envs, self.env.num_agents
        full = torch.zeros(W, A, self.act_dim, device=self.env.device)
        full[:, self.learners] = actions.view(W, self.K, -1).to(full)
        if self.others:
            with torch.no_grad():
                full[:, self.others] = self.opponent({k: v[:, self.others] for k, v in self._obs.items()}).to(full)
        obs, reward, term, trunc, info = self.env.step(full)
        self._obs = obs
        rep = lambda x: x.repeat_interleave(self.K)  # noqa: E731
        out = {
            "obs": self._slots(obs, self.actor_group),
            "critic_obs": self._slots(obs, self.critic_group),
            "rewards": reward[:, self.learners].reshape(-1).float(),
            "dones": rep((term | trunc).float()),
            "truncated": rep((trunc & ~term).float()),
            "info": info,
        }
        if "final_obs" in info:
            out["final_critic_obs"] = self._slots(info["final_obs"], self.critic_group)
        return out
