"""EgoPush: egocentric multi-object rearrangement for a mobile robot."""

from envs.egopush.env import OBSERVABILITY, ROLES, EgoPushConfig, EgoPushEnv, RewardScales

__all__ = ["OBSERVABILITY", "ROLES", "EgoPushConfig", "EgoPushEnv", "RewardScales"]
