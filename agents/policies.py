"""The policy interface, a random policy, and names -> policies for scripts and adapters."""

from __future__ import annotations

from typing import Any, Protocol

import torch


class Policy(Protocol):
    """Maps observation groups of K agents, each ``[W, K, ...]``, to actions ``[W, K, act_dim]``."""

    def __call__(self, obs: dict[str, torch.Tensor]) -> torch.Tensor: ...


class RandomPolicy:
    """Uniform actions in [-1, 1], from its own seeded generator."""

    def __init__(self, act_dim: int, seed: int = 0) -> None:
        self.act_dim = act_dim
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        ref = next(iter(obs.values()))
        a = torch.rand(*ref.shape[:2], self.act_dim, generator=self.generator) * 2 - 1
        return a.to(ref.device)


def make_policy(spec: str | Policy, env: Any, seed: int = 0) -> Policy:
    """``"scripted"``, ``"random"`` or a policy object, for env ``env``."""
    if callable(spec) and not isinstance(spec, str):
        return spec
    if spec == "random":
        return RandomPolicy(env.act_dim, seed)
    if spec == "scripted":
        name = getattr(env, "name", "")
        if name.startswith("soccer"):
            from agents.scripted_soccer import ScriptedSoccer

            return ScriptedSoccer(env.cfg.team_size)
        if name.startswith("egopush"):
            from agents.scripted_egopush import ScriptedEgoPush

            return ScriptedEgoPush(env.n_slots)
        raise ValueError(f"no scripted policy for env {name!r}")
    raise ValueError(f"policy must be 'scripted', 'random' or a callable, got {spec!r}")
