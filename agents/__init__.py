"""Policies that act on the batched env contract: scripted players, and (later) learners."""

from agents.policies import Policy, RandomPolicy, make_policy
from agents.scripted_egopush import ScriptedEgoPush
from agents.scripted_soccer import ScriptedSoccer

__all__ = ["Policy", "RandomPolicy", "ScriptedEgoPush", "ScriptedSoccer", "make_policy"]
