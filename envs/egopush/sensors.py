"""What a robot's own sensors give a student in EgoPush: the depth image split into layers (by role,
or by box identity as distinct colours would give), and the wheel speeds (exact, or with a slip and
noise of their own). The options are off by default, and then nothing is drawn."""

from __future__ import annotations

import torch

from envs.streams import WorldDraws


def depth_by_role(depth: torch.Tensor, obj: torch.Tensor, roles: torch.Tensor, n: int = 3) -> torch.Tensor:
    """The student's ``depth_layers``: depth ``[W, H, Wd]`` (m) split into one layer per role
    (active, anchor, obstacle) ``[W, 3, H, Wd]``, 0 where the role is absent (or, with ``n`` and an
    identity table in place of ``roles``, one layer per box identity ``[W, n, H, Wd]``); ``obj`` ``[W, H, Wd]``
    is the object each pixel shows (box ``i``, the region ``B``, else -1), ``roles`` ``[W, B + 1]``
    each object's role index (see ``EgoPushEnv.roles``)."""
    none = torch.full((roles.shape[0], 1), -1, dtype=torch.long, device=roles.device)
    role_tab = torch.cat((roles, none), 1)
    role = role_tab.gather(1, torch.where(obj < 0, role_tab.shape[1] - 1, obj).flatten(1)).view_as(obj)
    return torch.stack([torch.where(role == r, depth, 0.0) for r in range(n)], 1)


def identity_order(draw: WorldDraws, n_boxes: int, goal_task: bool) -> torch.Tensor:
    """``[k, n_boxes + 1]`` depth layer of each object (box ``i``, then the region) for the ``k``
    new episodes of ``draw``: the anchor (box 0, or the goal task's region) first, then the other
    boxes in a random order kept through the episode; -1 for an object no layer shows (a
    formation's hidden region)."""
    k, device = len(draw), draw.device
    first = 0 if goal_task else 1  # the boxes other than the anchor: first .. n_boxes - 1
    rank = draw.rand(n_boxes - first).argsort(1).argsort(1)
    table = torch.full((k, n_boxes + 1), -1, dtype=torch.long, device=device)
    table[:, first:n_boxes] = rank + 1
    table[:, n_boxes if goal_task else 0] = 0
    return table


def wheel_readings(
    wheels: torch.Tensor, scale: torch.Tensor | None, noise: float, generator: torch.Generator
) -> torch.Tensor:
    """The wheel speeds ``[W, 2]`` (m/s) as read: times each world's per-episode ``scale`` ``[W, 2]``
    (a slip; None: exact), plus Gaussian ``noise`` (standard deviation, m/s) drawn each step."""
    if scale is not None:
        wheels = wheels * scale
    if noise > 0:
        wheels = wheels + noise * torch.randn(wheels.shape, generator=generator).to(wheels.device)
    return wheels
