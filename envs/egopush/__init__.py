"""EgoPush: egocentric multi-object rearrangement for a mobile robot."""

from envs.egopush.config import OBSERVABILITY, ROLES, EgoPushConfig, RewardScales
from envs.egopush.env import EgoPushEnv

__all__ = ["OBSERVABILITY", "ROLES", "EgoPushConfig", "EgoPushEnv", "RewardScales"]
