"""Batched MuJoCo worlds and the interfaces researchers use on them.

``make`` gives the batched env (the contract of DESIGN.md); ``make_parallel`` a PettingZoo
``ParallelEnv`` over one world; ``make_sb3`` a Stable-Baselines3 ``VecEnv``; ``make_gym`` a
Gymnasium env over one world with every agent's action joined.
"""

from envs.adapters import make_gym, make_parallel, make_sb3
from envs.registry import config_for, make, registered

__all__ = ["config_for", "make", "make_gym", "make_parallel", "make_sb3", "registered"]
