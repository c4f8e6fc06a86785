"""Small PPO runs the agents tests share: a runner on a few egopush-goal worlds, its weights, and a
tiny trained teacher to warm-start from."""

import dataclasses

import torch

import envs
from agents.ppo.algorithm import PPOConfig
from agents.ppo.learner_env import LearnerEnv
from agents.ppo.runner import Runner


def train_module():
    """``agents.ppo.train``: what ``scripts/train_teacher.py`` runs."""
    from agents.ppo import train

    return train


def small_source(tmp_path, name):
    """A tiny egopush-goal teacher (2 x 16 units, 128 env-steps) to warm-start from: the config it
    was trained with, its checkpoint folder and its actor."""
    train_teacher = train_module()
    from agents.actor import GaussianActor

    base = train_teacher.TrainConfig(
        env="egopush-goal",
        num_envs=4,
        total_steps=128,
        eval_episodes=0,
        ppo=PPOConfig(steps_per_env=16, hidden=(16, 16)),
    )
    src = train_teacher.train(dataclasses.replace(base, run_dir=tmp_path / name))
    return base, src / "checkpoint", GaussianActor.load(src / "checkpoint")[0]


def runner(tmp_path, seed, total=4 * 8 * 4, name="run", **ppo):
    env = envs.make("egopush-goal", num_envs=4, episode_seconds=0.6, reward_scales={"approach": 1.0})
    cfg = PPOConfig(steps_per_env=8, minibatches=2, epochs=2, hidden=(16, 16), **ppo)
    learner = LearnerEnv(env, "privileged", "critic")
    return Runner(learner, cfg, total, seed, tmp_path / name, env.name, {})


def weights(runner):
    return torch.cat([p.detach().flatten() for p in list(runner.actor.parameters()) + list(runner.critic.parameters())])
