"""Name -> (env class, default config) for every registered env."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from envs.base import BatchedEnv
from envs.config import apply_overrides

_REGISTRY: dict[str, tuple[Callable[..., BatchedEnv], Callable[[], Any]]] = {}
_PRESETS: dict[str, Callable[[], dict[str, Callable[[Any], Any]]]] = {}


def register(
    name: str,
    env_cls: Callable[..., BatchedEnv],
    default_config: Callable[[], Any],
    presets: Callable[[], dict[str, Callable[[Any], Any]]] | None = None,
) -> None:
    """Register env ``name``: its class, its default config, and (a function giving) its named
    presets, each a typed change of the config (``config -> config``)."""
    if name in _REGISTRY:
        raise ValueError(f"env {name!r} is already registered")
    _REGISTRY[name] = (env_cls, default_config)
    _PRESETS[name] = presets or dict


def presets(name: str) -> list[str]:
    """The named presets of env ``name`` (``make(name, preset=...)``)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown env {name!r}; registered envs: {registered()}")
    return sorted(_PRESETS[name]())


def registered() -> list[str]:
    """Names accepted by ``make``."""
    return sorted(_REGISTRY)


def config_for(name: str, preset: str | None = None, **overrides: Any) -> Any:
    """The resolved config of env ``name``: its default, then the named ``preset``, then
    ``overrides`` (strictly: an unknown key or preset is a ``ValueError`` naming the valid ones)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown env {name!r}; registered envs: {registered()}")
    cfg = _REGISTRY[name][1]()
    if preset is not None:
        table = _PRESETS[name]()
        if preset not in table:
            raise ValueError(f"unknown preset {preset!r} for {name}; its presets: {sorted(table)}")
        cfg = table[preset](cfg)
    return apply_overrides(cfg, overrides, where=f"{name} config")


def make(
    name: str,
    num_envs: int = 16,
    backend: str = "cpu",
    device: str | None = None,
    preset: str | None = None,
    **overrides: Any,
) -> BatchedEnv:
    """The batched env ``name`` with ``num_envs`` worlds.

    Args:
        name: one of ``registered()``.
        num_envs: W, worlds stepped together.
        backend: ``"cpu"`` (``mujoco.batch``) or ``"warp"`` (MuJoCo Warp).
        device: for ``warp``: ``"cuda:0"``, ``"cpu"``...; default CUDA when present.
        preset: a named preset of the env (``presets(name)``), applied before ``overrides``.
        **overrides: fields of the env's config dataclass (unknown keys raise ``ValueError``).
    """
    cfg = config_for(name, preset, **overrides)
    if backend == "warp" and device is None:
        from envs.warp_setup import warp_modules

        wp, _ = warp_modules()
        device = "cuda:0" if wp.is_cuda_available() else "cpu"
    env_cls = _REGISTRY[name][0]
    return env_cls(cfg, num_envs=num_envs, backend=backend, device=device, name=name)


def _soccer(team_size: int) -> Callable[[], Any]:
    def default() -> Any:
        from envs.soccer import SoccerConfig

        return dataclasses.replace(SoccerConfig(), team_size=team_size)

    return default


def _soccer_env(*args: Any, **kwargs: Any) -> BatchedEnv:
    from envs.soccer import SoccerEnv

    return SoccerEnv(*args, **kwargs)


def _soccer_presets() -> dict[str, Callable[[Any], Any]]:
    from envs.soccer.presets import PRESETS

    return PRESETS


register("soccer-1v1", _soccer_env, _soccer(1), _soccer_presets)
register("soccer-2v2", _soccer_env, _soccer(2), _soccer_presets)


def _egopush(task: str) -> Callable[[], Any]:
    def default() -> Any:
        from envs.egopush import EgoPushConfig

        n_boxes = 1 if task == "goal" else 3
        return dataclasses.replace(EgoPushConfig(), task=task, n_boxes=n_boxes)

    return default


def _egopush_env(*args: Any, **kwargs: Any) -> BatchedEnv:
    from envs.egopush import EgoPushEnv

    return EgoPushEnv(*args, **kwargs)


def _egopush_presets() -> dict[str, Callable[[Any], Any]]:
    from envs.egopush.presets import PRESETS

    return PRESETS


for _task in ("goal", "line", "cross"):
    register(f"egopush-{_task}", _egopush_env, _egopush(_task), _egopush_presets)


def _spread_config() -> Any:
    from envs.mpe import SpreadConfig

    return SpreadConfig()


def _spread_env(*args: Any, **kwargs: Any) -> BatchedEnv:
    from envs.mpe import make_spread

    return make_spread(*args, **kwargs)


register("mpe-spread", _spread_env, _spread_config)
