"""CoFlow's training objective: the MeanFlow averaged velocity with a finite-difference surrogate,
classifier-free condition dropout, in-painting of the current observations, inverse dynamics.

The path and target: ``z_s = (1 - s) x0 + s noise`` with the data ``x0`` at s = 0 and noise at
s = 1, so the (conditional) velocity is ``v = dz/ds = noise - x0``. MeanFlow learns the average
velocity ``u(z_t, r, t)`` over ``[r, t]``, which satisfies ``u = v - (t - r) du/dt`` (the total
derivative along the path, with r held), i.e. ``V = u + (t - r) sg[du/dt]`` should equal ``v``.
MeanFlow computes ``du/dt = dz/dt . grad_z u + d_t u`` with a Jacobian-vector product; the
surrogate replaces it by the finite difference along the same path from r to t::

    (t - r) du/dt  ~=  u(z_t, r, t) - u(z_r, r, r)        (z_r = (1 - r) x0 + r noise)

    V = u(z_t, r, t) + sg[u(z_t, r, t) - u(z_r, r, r)]

whose error against the JVP form is O((t - r)^2) (the tests check it on an analytic field). The
gradient flows through the pass at (r, t) only; the pass at (r, r) is the instantaneous velocity
at the path's earlier point, run without gradient. For r = t the difference is exactly 0 and the
loss is plain flow matching. (Differencing two passes at the same z_t, or a network that sees
one time only, as the released code does, loses the ``dz/dt . grad_z u`` term.)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from agents.coflow.config import CoFlowConfig

VelocityFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def sample_times(
    batch: int, cfg: CoFlowConfig, generator: torch.Generator, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(r, t)`` ``[B]`` each, ``r <= t``: the smaller and larger of two logit-normal draws, with
    ``r = t`` for a share ``equal_time_share`` of the batch (all of it without the surrogate)."""
    draws = torch.sigmoid(cfg.time_mu + cfg.time_sigma * torch.randn(2, batch, generator=generator))
    t, r = draws.max(0).values, draws.min(0).values
    equal = torch.rand(batch, generator=generator) < cfg.equal_time_share
    if not cfg.mean_flow:
        equal[:] = True
    r = torch.where(equal, t, r)
    return r.to(device), t.to(device)


def condition_mask(batch: int, horizon: int, n_agents: int, decentralised: bool, generator: torch.Generator):
    """Where observations are given (in-painted), ``[B, H, A]`` bool: step 0 of every agent, or
    (CoFlow-D) step 0 of one agent per sample, drawn uniformly, as each agent plans from its own."""
    mask = torch.zeros(batch, horizon, n_agents, dtype=torch.bool)
    if decentralised:
        who = torch.randint(n_agents, (batch,), generator=generator)
        mask[torch.arange(batch), 0, who] = True
    else:
        mask[:, 0] = True
    return mask


def inpaint(z: torch.Tensor, given: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``z`` ``[B, H, A, D]`` with ``given`` (same shape) where ``mask`` ``[B, H, A]``: exactly, not noised."""
    return torch.where(mask.unsqueeze(-1), given, z)


def surrogate_velocity(
    u: VelocityFn, x0: torch.Tensor, noise: torch.Tensor, r: torch.Tensor, t: torch.Tensor, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(V, u(z_t, r, t))`` of the module docstring for data ``x0`` and ``noise`` ``[B, ...]``, times
    ``[B]``; ``u(z, r, t)`` is the network (conditions bound). ``mask`` in-paints ``x0`` in both passes."""
    shape = (-1,) + (1,) * (x0.dim() - 1)
    tb, rb = t.view(shape), r.view(shape)
    z_t = (1 - tb) * x0 + tb * noise
    z_r = (1 - rb) * x0 + rb * noise
    if mask is not None:
        z_t, z_r = inpaint(z_t, x0, mask), inpaint(z_r, x0, mask)
    u_t = u(z_t, r, t)
    with torch.no_grad():
        u_r = u(z_r, r, r)
    return u_t + (u_t.detach() - u_r), u_t


def flow_loss(
    net: torch.nn.Module,
    x0: torch.Tensor,
    returns: torch.Tensor,
    cfg: CoFlowConfig,
    generator: torch.Generator,
) -> torch.Tensor:
    """Flow loss of observation trajectories ``x0`` ``[B, H, A, D]`` (normalised) conditioned on
    ``returns`` ``[B, A]``: mean squared error of ``V`` against ``noise - x0`` over what is not given.

    The return condition is dropped (zeroed) for a share ``cond_drop`` of the samples, the same in
    both passes, so that the unconditional velocity for guidance is learnt too.
    """
    B, H, A, _ = x0.shape
    noise = torch.randn(x0.shape, generator=generator).to(x0)
    r, t = sample_times(B, cfg, generator, x0.device)
    mask = condition_mask(B, H, A, cfg.decentralised, generator).to(x0.device)
    keep = (torch.rand(B, generator=generator) >= cfg.cond_drop).to(x0)
    if cfg.mean_flow:
        V, _ = surrogate_velocity(lambda z, r_, t_: net(z, r_, t_, returns, keep), x0, noise, r, t, mask)
    else:
        V = net(inpaint((1 - t.view(-1, 1, 1, 1)) * x0 + t.view(-1, 1, 1, 1) * noise, x0, mask), t, t, returns, keep)
    free = (~mask).unsqueeze(-1).to(x0)
    return ((V - (noise - x0)) ** 2 * free).sum() / (free.sum() * x0.shape[-1])


def inverse_dynamics_loss(
    inv: torch.nn.Module, obs: torch.Tensor, actions: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """MSE of ``inv(o_k, o_{k+1})`` against ``a_k`` over the segment's real transitions: ``obs``
    ``[B, H, A, D]`` (normalised), ``actions`` ``[B, H, A, act]``, ``valid`` ``[B, H]``."""
    pred = inv(obs[:, :-1], obs[:, 1:])
    err = F.mse_loss(pred, actions[:, :-1], reduction="none").mean((-1, -2))  # [B, H - 1]
    w = valid[:, :-1].to(err)
    return (err * w).sum() / w.sum().clamp(min=1)
