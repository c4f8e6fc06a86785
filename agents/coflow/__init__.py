"""CoFlow: offline multi-agent policies from recordings, by one-step flow planners that coordinate
agents through attention across the agent axis (and their baselines: BC, a flow-matching planner).

``dataset`` (segments from recordings), ``networks`` (U-Net, CVA, inverse dynamics), ``losses``
(MeanFlow surrogate), ``sampler`` (k-step plans, in-painting, guidance), ``policy`` (the model and
how it acts), ``checkpoint`` (save, load). Importing it registers the ``coflow`` checkpoint kind.
"""

from agents.coflow.checkpoint import load_coflow_policy, load_model, save_model
from agents.coflow.config import CoFlowConfig, for_algo
from agents.coflow.dataset import SegmentDataset
from agents.coflow.policy import CoFlowModel, CoFlowPolicy
from agents.policies import register_policy_kind

register_policy_kind("coflow", load_coflow_policy)

__all__ = [
    "CoFlowConfig",
    "CoFlowModel",
    "CoFlowPolicy",
    "SegmentDataset",
    "for_algo",
    "load_model",
    "save_model",
]
