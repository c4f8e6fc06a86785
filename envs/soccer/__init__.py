"""Multi-agent robot soccer."""

from envs.soccer.env import SEG_CLASSES, RewardScales, SoccerConfig, SoccerEnv

__all__ = ["SEG_CLASSES", "RewardScales", "SoccerConfig", "SoccerEnv"]
