"""Batched MuJoCo worlds and the interfaces researchers use on them.

``make`` gives the batched env (the contract of DESIGN.md); ``make_parallel`` a PettingZoo
``ParallelEnv`` over one world; ``make_sb3`` a Stable-Baselines3 ``VecEnv``; ``make_gym`` a
Gymnasium env over one world with every agent's action joined; ``from_pettingzoo`` the other way:
a peer PettingZoo env batched into the contract. The adapters are imported on first use, so that
``import envs`` does not pay for PettingZoo and SB3.
"""

from typing import Any

from envs.registry import config_for, make, presets, registered


def make_parallel(name: str, **kwargs: Any):  # noqa: ANN201
    """PettingZoo ``ParallelEnv`` of one world; see ``envs.adapters.parallel_env.make_parallel``."""
    from envs.adapters.parallel_env import make_parallel as _make

    return _make(name, **kwargs)


def make_sb3(name: str, **kwargs: Any):  # noqa: ANN201
    """Stable-Baselines3 ``VecEnv``; see ``envs.adapters.vec_env.make_sb3``."""
    from envs.adapters.vec_env import make_sb3 as _make

    return _make(name, **kwargs)


def make_gym(name: str, **kwargs: Any):  # noqa: ANN201
    """Gymnasium env of one world; see ``envs.adapters.gym_env.make_gym``."""
    from envs.adapters.gym_env import make_gym as _make

    return _make(name, **kwargs)


def from_pettingzoo(factory: Any, num_envs: int, **kwargs: Any):  # noqa: ANN201
    """``num_envs`` peer PettingZoo ``ParallelEnv``s as one batched env; see ``envs.pettingzoo.from_pettingzoo``."""
    from envs.pettingzoo import from_pettingzoo as _from

    return _from(factory, num_envs, **kwargs)


def _register_gymnasium() -> None:
    import gymnasium

    if "egoteach/EgoPush-v0" not in gymnasium.registry:
        gymnasium.register(id="egoteach/EgoPush-v0", entry_point="envs.adapters.gym_env:make_egopush_gym")


_register_gymnasium()

__all__ = ["config_for", "from_pettingzoo", "make", "make_gym", "make_parallel", "make_sb3", "presets", "registered"]
