"""The fixed policies the envs ship: uniform random actions, and each task's scripted player.

They live beside the tasks (not in ``agents/``) because a scripted player is task knowledge written
by hand, and the adapters (``make_sb3``'s opponent) need them without importing a learner.
"""

from __future__ import annotations

from typing import Any

import torch


class RandomPolicy:
    """Uniform actions in [-1, 1], from its own seeded generator."""

    def __init__(self, act_dim: int, seed: int = 0) -> None:
        self.act_dim = act_dim
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        ref = next(iter(obs.values()))
        a = torch.rand(*ref.shape[:2], self.act_dim, generator=self.generator) * 2 - 1
        return a.to(ref.device)


FIXED_POLICIES = ("scripted", "scripted-defend", "random")
SCRIPTED_STYLES = {"scripted": "attack", "scripted-defend": "defend"}
"""The scripted players' names and the ``style`` each asks of ``env.scripted_policy``."""


def fixed_policy(name: str, env: Any, seed: int = 0) -> Any:
    """``"random"``, or ``"scripted"``: the env's own hand-written player (``env.scripted_policy()``);
    ``"scripted-defend"``: its defending one, where the env has one (soccer)."""
    if name == "random":
        return RandomPolicy(env.act_dim, seed)
    if name in SCRIPTED_STYLES:
        make = getattr(env, "scripted_policy", None)
        if make is None:
            raise ValueError(f"no scripted policy for env {getattr(env, 'name', env)!r}")
        if name == "scripted":
            return make()
        style = SCRIPTED_STYLES[name]
        if style not in getattr(env, "scripted_styles", ()):
            raise ValueError(f"env {getattr(env, 'name', env)!r} has no {name!r} player; it has 'scripted'")
        return make(style)
    raise ValueError(f"fixed policy must be one of {FIXED_POLICIES}, got {name!r}")
