"""Named training presets for soccer: typed changes to a ``SoccerConfig`` (``envs.make(..., preset=NAME)``,
``train_teacher.py --preset NAME``). The envs' defaults keep only the task's own reward (a goal)."""

from __future__ import annotations

import dataclasses

from envs.soccer.config import SoccerConfig


def train(cfg: SoccerConfig) -> SoccerConfig:
    """PPO's dense shaping: a goal is worth 10 (summed over a 20 s match the dense terms reach +-20
    or more, which drowns a goal worth 1), velocity toward the ball 0.05, the ball's velocity
    toward the opponent goal 0.1."""
    scales = dataclasses.replace(cfg.reward_scales, goal=10.0, vel_to_ball=0.05, ball_vel_to_goal=0.1)
    return dataclasses.replace(cfg, reward_scales=scales)


PRESETS = {"train": train}
