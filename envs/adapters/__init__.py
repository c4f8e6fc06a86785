"""PettingZoo, Stable-Baselines3 and Gymnasium views of the batched env contract."""

from envs.adapters.gym_env import GymEnv, make_gym
from envs.adapters.parallel_env import ParallelEnv, make_parallel
from envs.adapters.vec_env import SB3VecEnv, make_sb3

__all__ = ["GymEnv", "ParallelEnv", "SB3VecEnv", "make_gym", "make_parallel", "make_sb3"]
