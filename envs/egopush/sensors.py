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


def role_table(active: torch.Tensor, n_boxes: int, goal_task: bool) -> torch.Tensor:
    """``[W, B + 1]`` role index (0 active, 1 anchor, 2 obstacle, -1 none) of each box and the region,
    for the active box ``active`` ``[W]``: the anchor is box 0, or the goal task's region."""
    W, B = active.shape[0], n_boxes
    role = torch.full((W, B + 1), 2, dtype=torch.long, device=active.device)
    if goal_task:
        role[:, B] = 1
    else:
        role[:, 0] = 1
        role[:, B] = -1
    role[torch.arange(W, device=active.device), active] = 0
    return role


def camera_modalities(cameras: tuple[str, ...]) -> tuple[str, ...]:
    """The renderer's modalities that the config's ``cameras`` (``rgb``, ``depth_layers``) need."""
    need = (("rgb", "rgb"), ("depth", "depth_layers"), ("segmentation", "depth_layers"))
    return tuple(m for m, c in need if c in cameras)


def camera_groups(
    img: dict[str, torch.Tensor], cameras: tuple[str, ...], geom_object: torch.Tensor, table: torch.Tensor, n: int
) -> dict[str, torch.Tensor]:
    """The observation groups of one render of the robot's camera ``img`` (``BatchRenderer.render``)
    for the config's ``cameras``: ``camera`` (RGB) and ``depth_layers`` split by ``table`` (roles or
    identities, ``n`` layers, see ``depth_by_role``); ``geom_object`` maps a geom id + 1 to its object index or -1."""
    out: dict[str, torch.Tensor] = {}
    if "rgb" in img:
        out["camera"] = img["rgb"]
    if "depth_layers" in cameras:
        obj = geom_object[img["segmentation"][:, 0, 0].long() + 1]  # [W, H, Wd] object index or -1
        out["depth_layers"] = depth_by_role(img["depth"][:, 0, 0], obj, table, n)[:, None]
    return out


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
