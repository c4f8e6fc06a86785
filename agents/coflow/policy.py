"""CoFlow policies: the model (planner and inverse dynamics, or the BC baseline) with its data
normaliser, its training loss, and how it acts.

Acting, per variant (``cfg.algo``):

- ``coflow-c`` / ``flow``: one plan per world from every agent's current observation (in-painted);
  each agent's action is the shared inverse dynamics of its own (o_t, planned o_{t+1}).
- ``coflow-d``: each agent plans the joint future from its own observation only (the others'
  current observations are not given) and keeps its own row; its own inverse-dynamics MLP turns
  that row into its action. W worlds of A agents are A*W plans, sampled in one batch.
- ``bc``: an MLP per agent (shared weights) from its observation to its action.
"""

from __future__ import annotations

import torch
from torch import nn

from agents.coflow.config import CoFlowConfig
from agents.coflow.dataset import Batch
from agents.coflow.losses import flow_loss, inverse_dynamics_loss
from agents.coflow.networks import AgentMLP, InverseDynamics, TemporalUNet
from agents.coflow.sampler import sample_plan


class CoFlowModel(nn.Module):
    """Every trained part of a CoFlow policy (or a baseline) and the observation normaliser.

    Args:
        cfg: the variant and its hyper-parameters.
        obs_dim, act_dim, n_agents: D, the action size and A.
    """

    def __init__(self, cfg: CoFlowConfig, obs_dim: int, act_dim: int, n_agents: int) -> None:
        super().__init__()
        self.cfg, self.obs_dim, self.act_dim, self.n_agents = cfg, obs_dim, act_dim, n_agents
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))
        if cfg.residual:
            self.register_buffer("delta_std", torch.ones(obs_dim))
        if cfg.algo == "bc":
            self.bc = AgentMLP(obs_dim, cfg.id_hidden, act_dim)
        else:
            self.unet = TemporalUNet(obs_dim, cfg)
            self.inv = InverseDynamics(obs_dim, act_dim, cfg.id_hidden, n_agents if cfg.decentralised else 1)

    def set_normaliser(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.obs_mean.copy_(torch.as_tensor(mean))
        self.obs_std.copy_(torch.as_tensor(std))

    def normalise(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.obs_mean) / self.obs_std

    def to_plan(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised trajectories ``[B, H, A, D]`` as the planner generates them (``cfg.residual``:
        steps 1.. as scaled changes from step 0)."""
        if not self.cfg.residual:
            return x
        return torch.cat((x[:, :1], (x[:, 1:] - x[:, :1]) / self.delta_std), 1)

    def loss(self, batch: Batch, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        """Training loss of one batch, and its parts for logging (``loss/flow``, ``loss/action``)."""
        obs = self.normalise(batch.obs)
        if self.cfg.algo == "bc":
            act = nn.functional.mse_loss(self.bc(obs[:, 0]), batch.actions[:, 0])
            return self.cfg.action_weight * act, {"loss/action": act.item()}
        flow = flow_loss(self.unet, self.to_plan(obs), batch.returns, self.cfg, generator)
        act = inverse_dynamics_loss(self.inv, obs, batch.actions, batch.valid)
        return flow + self.cfg.action_weight * act, {"loss/flow": flow.item(), "loss/action": act.item()}

    @torch.no_grad()
    def act(self, obs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Actions ``[W, A, act]`` in [-1, 1] for raw observations ``[W, A, D]``."""
        x = self.normalise(obs.float())
        if self.cfg.algo == "bc":
            return self.bc(x).clamp(-1, 1)
        nxt = self.plan_next(x, generator)
        return self.inv(x, nxt).clamp(-1, 1)

    def plan_next(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Each agent's planned next observation ``[W, A, D]`` (normalised) from ``x`` ``[W, A, D]``:
        from the joint plan (C), or from the plan it made from its own observation (D)."""
        cfg = self.cfg
        W, A, D = x.shape
        target = torch.full((W, A), cfg.target_return, device=x.device)
        kw = {"steps": cfg.sample_steps, "guidance": cfg.guidance, "mean_flow": cfg.mean_flow, "generator": generator}
        if not cfg.decentralised:
            mask = torch.ones(W, A, dtype=torch.bool, device=x.device)
            return self._next(sample_plan(self.unet, x, mask, cfg.horizon, target, **kw))
        # Plan (w, i) is agent i's in world w: given its own observation only.
        own = torch.eye(A, dtype=torch.bool, device=x.device).repeat(W, 1)  # [W*A, A]
        given = x.repeat_interleave(A, 0)
        plans = sample_plan(self.unet, given, own, cfg.horizon, target.repeat_interleave(A, 0), **kw)
        return self._next(plans).view(W, A, A, D).diagonal(dim1=1, dim2=2).permute(0, 2, 1)

    def _next(self, plan: torch.Tensor) -> torch.Tensor:
        """The next observation ``[B, A, D]`` (normalised) of plans ``[B, H, A, D]`` from the sampler."""
        if self.cfg.residual:
            return plan[:, 0] + plan[:, 1] * self.delta_std
        return plan[:, 1]


class CoFlowPolicy:
    """A ``CoFlowModel`` as a policy: observation groups ``[W, A, ...]`` -> actions ``[W, A, act]``.

    It reads ``obs_group``; its sampling noise comes from its own seeded generator. ``alpha``
    scales every CVA output (the dose-response probe).
    """

    def __init__(self, model: CoFlowModel, obs_group: str = "privileged", seed: int = 0, alpha: float | None = None):
        self.model = model.eval()
        self.obs_group = obs_group
        self.generator = torch.Generator().manual_seed(seed)
        if model.cfg.algo != "bc":
            model.unet.alpha = model.cfg.alpha if alpha is None else alpha

    def __call__(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        x = obs[self.obs_group]
        if x.shape[1:] != (self.model.n_agents, self.model.obs_dim):
            raise ValueError(
                f"observation {self.obs_group!r} must be [W, {self.model.n_agents}, {self.model.obs_dim}], "
                f"got {list(x.shape)}"
            )
        return self.model.act(x.cpu(), self.generator).to(x.device)
