"""Sampling a plan: every agent's future observations, from noise, in ``k`` steps.

From s = 1 (noise) to s = 0 (data) on the times ``1 = s_0 > s_1 > ... > s_k = 0``, each step moves
by the averaged velocity over its interval: ``z <- z - (s_i - s_{i+1}) u(z, s_{i+1}, s_i)``; one
step is ``x0 = z1 - u(z1, 0, 1)``. A plain flow-matching network (trained with r = t) is stepped
with its instantaneous velocity ``u(z, s_i, s_i)`` instead (Euler). The given observations are
in-painted before every pass and after the last, so they come out exactly as given. The return
condition is applied by classifier-free guidance, both passes in one batch.
"""

from __future__ import annotations

import torch

from agents.coflow.losses import inpaint


def guided_velocity(
    net: torch.nn.Module,
    z: torch.Tensor,
    r: torch.Tensor,
    t: torch.Tensor,
    returns: torch.Tensor | None,
    guidance: float,
) -> torch.Tensor:
    """``u_uncond + guidance * (u_cond - u_uncond)`` for ``z`` ``[B, H, A, D]``, times ``[B]``,
    ``returns`` ``[B, A]`` (None, or guidance 1: one conditional pass)."""
    if returns is None or guidance == 1.0:
        return net(z, r, t, returns)
    B = z.shape[0]
    keep = torch.cat((torch.ones(B), torch.zeros(B))).to(z)
    u = net(torch.cat((z, z)), torch.cat((r, r)), torch.cat((t, t)), torch.cat((returns, returns)), keep)
    cond, uncond = u[:B], u[B:]
    return uncond + guidance * (cond - uncond)


@torch.no_grad()
def sample_plan(
    net: torch.nn.Module,
    given: torch.Tensor,
    mask: torch.Tensor,
    horizon: int,
    returns: torch.Tensor | None,
    steps: int = 1,
    guidance: float = 1.0,
    mean_flow: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A plan ``[B, H, A, D]`` whose step 0 is ``given`` ``[B, A, D]`` where ``mask`` ``[B, A]``.

    Args:
        net: the velocity network ``u(z, r, t, returns, keep)``.
        given: the current observations (normalised); rows outside ``mask`` are never read.
        mask: which agents' current observations condition the plan.
        horizon: H.
        returns: target returns-to-go ``[B, A]`` (scaled), or None.
        steps: k.
        guidance: w.
        mean_flow: step with the averaged velocity (else the instantaneous one, Euler).
        generator: for the initial noise.
    """
    B, A, D = given.shape
    noise = torch.randn((B, horizon, A, D), generator=generator)
    z = noise.to(given)
    full = torch.zeros_like(z)
    full[:, 0] = torch.where(mask.unsqueeze(-1), given, torch.zeros_like(given))  # nothing outside the mask
    where = torch.zeros(B, horizon, A, dtype=torch.bool, device=given.device)
    where[:, 0] = mask
    times = torch.linspace(1.0, 0.0, steps + 1)
    for i in range(steps):
        t = times[i].expand(B).to(given)
        r = times[i + 1].expand(B).to(given)
        z = inpaint(z, full, where)
        u = guided_velocity(net, z, r if mean_flow else t, t, returns, guidance)
        z = z - (times[i] - times[i + 1]).item() * u
    return inpaint(z, full, where)
