"""Named training presets for EgoPush: typed changes to an ``EgoPushConfig`` (``envs.make(...,
preset=NAME)``, ``train_teacher.py --preset NAME``). The envs' defaults keep only the task's own
rewards (stages and success)."""

from __future__ import annotations

import dataclasses

from envs.egopush.config import EgoPushConfig


def train(cfg: EgoPushConfig) -> EgoPushConfig:
    """PPO's dense shaping: the pusher's approach to the active box (1.0), the box's progress to its
    target (3.0) and a small time penalty (0.001)."""
    scales = dataclasses.replace(cfg.reward_scales, approach=1.0, progress=3.0, time=0.001)
    return dataclasses.replace(cfg, reward_scales=scales)


def knock_anchor(cfg: EgoPushConfig) -> EgoPushConfig:
    """``train`` plus the knock (2.0) and anchor (1.0) terms: a placed box knocked out of place, and
    the anchor pushed away, cost return (the shipped ``*-knock_anchor`` teachers' shaping)."""
    cfg = train(cfg)
    return dataclasses.replace(cfg, reward_scales=dataclasses.replace(cfg.reward_scales, knock=2.0, anchor=1.0))


def knock_anchor_memory(cfg: EgoPushConfig) -> EgoPushConfig:
    """``knock_anchor`` with a 60 s keypoint memory for the ``fov`` teachers (the shipped
    ``egopush-line-teacher-fov_gated-knock_anchor`` recipe)."""
    return dataclasses.replace(knock_anchor(cfg), memory_seconds=60.0)


PRESETS = {"train": train, "knock_anchor": knock_anchor, "knock_anchor_memory": knock_anchor_memory}
