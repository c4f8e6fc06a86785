"""Learners and policies on the batched env contract: PPO teachers, the policy registry, evaluation.

Importing ``agents`` registers the teacher checkpoint kind (``gaussian_mlp``) and CoFlow's
(``coflow``) with ``make_policy``.
"""

import agents.coflow  # noqa: F401  (registers the ``coflow`` checkpoint kind)
from agents.actor import load_teacher_policy
from agents.policies import Policy, RandomPolicy, make_policy, register_policy_kind

register_policy_kind("gaussian_mlp", load_teacher_policy)

__all__ = ["Policy", "RandomPolicy", "make_policy", "register_policy_kind"]
