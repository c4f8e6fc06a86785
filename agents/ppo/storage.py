"""Rollout storage for PPO: ``T`` steps of ``N`` learner slots, and GAE over them."""

from __future__ import annotations

from collections.abc import Iterator

import torch


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    bootstrap: torch.Tensor,
    last_value: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation.

    Args:
        rewards, values, dones: ``[T, N]``; ``dones[t]`` is 1 when the episode ended at step t.
        bootstrap: ``[T, N]`` value of the final observation where an episode was *truncated*
            at step t (time limit): added as ``gamma * V(final)`` to that step's reward; 0 elsewhere.
        last_value: ``[N]`` value of the observation after the last step.

    Returns:
        (advantages, returns), each ``[T, N]``; returns = advantages + values.
    """
    T = rewards.shape[0]
    adv = torch.zeros_like(rewards)
    next_adv = torch.zeros_like(last_value)
    next_value = last_value
    for t in reversed(range(T)):
        not_done = 1.0 - dones[t]
        r = rewards[t] + gamma * bootstrap[t]
        delta = r + gamma * next_value * not_done - values[t]
        next_adv = delta + gamma * lam * not_done * next_adv
        adv[t] = next_adv
        next_value = values[t]
    return adv, adv + values


class RolloutStorage:
    """Tensors ``[T, N, ...]`` on one device, filled step by step, then read in minibatches."""

    def __init__(self, T: int, N: int, obs_dim: int, critic_dim: int, act_dim: int, device: torch.device) -> None:
        z = lambda *shape: torch.zeros(*shape, device=device)  # noqa: E731
        self.T, self.N = T, N
        self.obs, self.critic_obs = z(T, N, obs_dim), z(T, N, critic_dim)
        self.actions, self.log_probs = z(T, N, act_dim), z(T, N)
        self.mu, self.sigma = z(T, N, act_dim), z(T, N, act_dim)
        self.values, self.rewards, self.dones, self.bootstrap = z(T, N), z(T, N), z(T, N), z(T, N)
        self.advantages, self.returns = z(T, N), z(T, N)
        self.step = 0

    def add(self, **tensors: torch.Tensor) -> None:
        if self.step >= self.T:
            raise RuntimeError("rollout storage is full: call clear() after the update")
        for key, value in tensors.items():
            getattr(self, key)[self.step] = value
        self.step += 1

    def clear(self) -> None:
        self.step = 0

    def compute_returns(self, last_value: torch.Tensor, gamma: float, lam: float) -> None:
        self.advantages, self.returns = gae(
            self.rewards, self.values, self.dones, self.bootstrap, last_value, gamma, lam
        )

    def minibatches(
        self, n_minibatches: int, epochs: int, generator: torch.Generator
    ) -> Iterator[dict[str, torch.Tensor]]:
        """Shuffled minibatches over ``T * N`` samples, ``epochs`` times (advantages normalised per batch)."""
        total = self.T * self.N
        size = total // n_minibatches
        flat = {
            k: getattr(self, k).reshape(total, *getattr(self, k).shape[2:])
            for k in ("obs", "critic_obs", "actions", "log_probs", "mu", "sigma", "values", "advantages", "returns")
        }
        for _ in range(epochs):
            perm = torch.randperm(total, generator=generator).to(self.obs.device)
            for i in range(n_minibatches):
                idx = perm[i * size : (i + 1) * size]
                yield {k: v[idx] for k, v in flat.items()}
