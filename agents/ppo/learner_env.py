"""The learner's view of a batched env: each (world, learning agent) is one slot, the agents
of a team share the policy, and the other agents are driven by a fixed opponent policy."""

from __future__ import annotations

from typing import Any

import torch

from agents.policies import Policy


class Team:
    """The agents a learner controls in a batched env and the slots they make.

    Learners are team 0 in competitive envs and every agent otherwise (or ``learners``); the
    other agents are driven by ``opponent``. Slot ``w * K + k`` is learning agent ``k`` of world
    ``w``, so per-slot tensors are ``[N = W K, ...]``.
    """

    def __init__(self, env: Any, opponent: Policy | None = None, learners: list[int] | None = None) -> None:
        A = env.num_agents
        if learners is None:
            learners = list(range(A // 2)) if env.competitive else list(range(A))
        self.env, self.learners, self.opponent = env, learners, opponent
        self.others = [i for i in range(A) if i not in learners]
        if self.others and opponent is None:
            raise ValueError("an opponent policy is needed: the env has agents that do not learn")
        self.K = len(learners)
        self.num_slots = env.num_envs * self.K

    def slots(self, obs: dict[str, torch.Tensor], group: str) -> torch.Tensor:
        """Group ``[W, A, ...]`` -> the learners' rows ``[N, ...]``."""
        x = obs[group][:, self.learners]
        return x.reshape(self.num_slots, *x.shape[2:])

    def joint(self, obs: dict[str, torch.Tensor], actions: torch.Tensor) -> torch.Tensor:
        """The learners' actions ``[N, act_dim]`` plus the opponent's on ``obs`` -> ``[W, A, act_dim]``."""
        env = self.env
        full = torch.zeros(env.num_envs, env.num_agents, env.act_dim, device=env.device)
        full[:, self.learners] = actions.view(env.num_envs, self.K, -1).to(full)
        if self.others:
            with torch.no_grad():
                full[:, self.others] = self.opponent({k: v[:, self.others] for k, v in obs.items()}).to(full)
        return full


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
        self.team = Team(env, opponent)
        self.learners, self.others, self.opponent = self.team.learners, self.team.others, opponent
        self.K, self.num_slots = self.team.K, self.team.num_slots
        self.obs_dim = env.observation_spaces[actor_group].shape[0]
        self.critic_dim = env.observation_spaces[critic_group].shape[0]
        self.act_dim = env.act_dim
        self._obs: dict[str, torch.Tensor] | None = None

    def _slots(self, obs: dict[str, torch.Tensor], group: str) -> torch.Tensor:
        return self.team.slots(obs, group).float()

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
        obs, reward, term, trunc, info = self.env.step(self.team.joint(self._obs, actions))
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
