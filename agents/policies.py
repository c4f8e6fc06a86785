"""The policy interface, a random policy, and names -> policies for scripts and adapters."""

from __future__ import annotations

from pathlib import Path
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


def make_policy(spec: str | Path | Policy, env: Any, seed: int = 0) -> Policy:
    """``"scripted"``, ``"random"``, a checkpoint directory, or a policy object, for env ``env``."""
    if callable(spec) and not isinstance(spec, str):
        return spec
    if isinstance(spec, Path) or (isinstance(spec, str) and spec not in ("scripted", "random")):
        return load_checkpoint_policy(spec, env)
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
    """``gaussian_mlp`` (a teacher) or ``student``: what a checkpoint directory holds."""
    from agents.checkpoint import read_meta

    return read_meta(path).get("kind", "")


def load_checkpoint_policy(path: str | Path, env: Any) -> Policy:
    """The policy of a checkpoint (a teacher's actor or a vision student), checked against
    ``env`` (name and observation sizes)."""
    from agents.actor import GaussianActor
    from agents.checkpoint import CheckpointError

    if not Path(path).exists():
        raise ValueError(f"policy must be 'scripted', 'random' or a checkpoint directory; {path} does not exist")
    name = getattr(env, "name", None)
    if checkpoint_kind(path) == "student":
        from distill.students import Student, StudentPolicy

        student, meta = Student.load(path)
        if meta["env"] != name:
            raise CheckpointError(f"{path} was trained on {meta['env']!r}, not {name!r}")
        space = env.observation_spaces.get(student.image_group)
        missing = [g for g in student.image_groups if g not in env.observation_spaces]
        if space is None or tuple(space.shape) != student.image_shape or missing:
            got = None if space is None else tuple(space.shape)
            raise CheckpointError(
                f"{path} is a student reading {' + '.join(student.image_groups)} {student.image_shape}; this env "
                f"gives {student.image_group!r} {got}{f' and no {missing}' if missing else ''} "
                "(make the env with the checkpoint's cameras, as eval.py --checkpoint does)"
            )
        return StudentPolicy(student.to(env.device))
    actor, meta = GaussianActor.load(path)
    if meta["env"] != name:
        raise CheckpointError(f"{path} was trained on {meta['env']!r}, not {name!r}")
    space = env.observation_spaces.get(actor.group)
    if space is None or space.shape != (actor.obs_dim,):
        got = None if space is None else space.shape
        raise CheckpointError(f"{path} reads {actor.group!r} of size {actor.obs_dim}; this env gives {got}")
    return actor.to(env.device)


def checkpoint_env(path: str | Path) -> tuple[str, dict[str, Any]]:
    """(env name, env config) to rebuild the env a checkpoint's policy runs in: its resolved
    training config, with the cameras only where the policy reads them (a vision student) and
    without the training machine's thread count."""
    from agents.checkpoint import read_meta

    meta = read_meta(path)
    drop = ("nthread",) if meta.get("kind") == "student" else ("nthread", "cameras")
    return meta["env"], {k: v for k, v in meta["env_config"].items() if k not in drop}
