"""Multi-agent robot soccer."""

from envs.soccer.config import SEG_CLASSES, RewardScales, SoccerConfig
from envs.soccer.env import SoccerEnv

__all__ = ["SEG_CLASSES", "RewardScales", "SoccerConfig", "SoccerEnv"]
