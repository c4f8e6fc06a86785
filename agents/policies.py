"""The policy interface, and one registry from names and checkpoints to policies of every kind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch

from agents.checkpoint import CheckpointError, read_meta
from envs.policies import FIXED_POLICIES, RandomPolicy, fixed_policy

__all__ = ["RandomPolicy", "make_policy", "register_policy_kind"]


class Policy(Protocol):
    """Maps observation groups of K agents, each ``[W, K, ...]``, to actions ``[W, K, act_dim]``."""

    def __call__(self, obs: dict[str, torch.Tensor]) -> torch.Tensor: ...


PolicyLoader = Callable[[Path, Any], Policy]
_LOADERS: dict[str, PolicyLoader] = {}


def register_policy_kind(kind: str, loader: PolicyLoader) -> None:
    """Make checkpoints whose metadata says ``"kind": kind`` loadable by ``make_policy``.

    Each kind of policy registers itself where it is defined (teachers in ``agents``, students in
    ``distill``, ...), so that nothing here imports a layer above it. ``loader(path, env)`` returns
    the policy, checked against ``env``.
    """
    if kind in _LOADERS and _LOADERS[kind] is not loader:
        raise ValueError(f"policy kind {kind!r} is already registered")
    _LOADERS[kind] = loader


def registered_policy_kinds() -> list[str]:
    """Checkpoint kinds ``make_policy`` can load now."""
    return sorted(_LOADERS)


def make_policy(spec: str | Path | Policy, env: Any, seed: int = 0) -> Policy:
    """``"scripted"``, ``"random"``, a checkpoint directory, or a policy object, for env ``env``."""
    if callable(spec) and not isinstance(spec, str):
        return spec
    if isinstance(spec, str) and spec in FIXED_POLICIES:
        return fixed_policy(spec, env, seed)
    if isinstance(spec, str | Path):
        return load_checkpoint_policy(spec, env)
    raise ValueError(f"policy must be 'scripted', 'random', a checkpoint directory or a callable, got {spec!r}")


def episode_done(policy: Any, done: torch.Tensor) -> None:
    """Tell a policy with memory (e.g. a vision student) which worlds' episodes just ended
    (``done`` ``[W]`` bool), so that it forgets them; policies without memory ignore it."""
    hook = getattr(policy, "episode_done", None)
    if hook is not None:
        hook(done)


class BlankCamera:
    """Wraps a policy: every camera image it is given is replaced by zeros (a failed camera)."""

    IMAGE_GROUPS = ("camera", "depth_layers", "depth", "segmentation")

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def __call__(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.policy({k: torch.zeros_like(v) if k in self.IMAGE_GROUPS else v for k, v in obs.items()})

    def episode_done(self, done: torch.Tensor) -> None:
        episode_done(self.policy, done)


def checkpoint_kind(path: str | Path) -> str:
    """What a checkpoint directory holds: ``gaussian_mlp`` (a teacher), ``student``, ..."""
    return read_meta(path).get("kind", "")


def load_checkpoint_policy(path: str | Path, env: Any) -> Policy:
    """The policy of a checkpoint, through the loader its kind registered, checked against ``env``."""
    if not Path(path).exists():
        raise ValueError(f"policy must be 'scripted', 'random' or a checkpoint directory; {path} does not exist")
    kind = checkpoint_kind(path)
    if kind not in _LOADERS:
        raise CheckpointError(
            f"{path} holds a {kind!r} checkpoint, and no loader is registered for it (registered: "
            f"{registered_policy_kinds()}); import the package that defines it first (students: `import distill`)"
        )
    return _LOADERS[kind](Path(path), env)


def checkpoint_env(path: str | Path) -> tuple[str, dict[str, Any]]:
    """(env name, env config) to rebuild the env a checkpoint's policy runs in: its resolved
    training config, with the cameras only where the policy reads them (a vision student) and
    without the training machine's thread count."""
    meta = read_meta(path)
    drop = ("nthread",) if meta.get("kind") == "student" else ("nthread", "cameras")
    return meta["env"], {k: v for k, v in meta["env_config"].items() if k not in drop}
