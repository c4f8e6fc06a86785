"""EgoPush start states: the anchor, the formation's targets, the boxes and the robot, drawn per world
so that the formation fits in the room with space to work round it. Every draw comes from the env's
world's own stream (``env.draws``), in a fixed order."""

from __future__ import annotations

import math
from typing import Any

import torch

from envs.egopush import scene
from envs.egopush.plane import rot
from envs.streams import WorldDraws


def sample_free(draw: WorldDraws, taken: list[torch.Tensor], lim: float, clearance: float) -> torch.Tensor:
    """Per world of ``draw`` a point in ``[-lim, lim]^2`` at least ``clearance`` from every point in ``taken``."""
    k, device = len(draw), draw.device
    cand = (draw.rand(64, 2) * 2 - 1) * lim
    ok = torch.ones(k, 64, dtype=torch.bool, device=device)
    for t in taken:
        ok &= (cand - t[:, None]).norm(dim=-1) > clearance
    # The first valid candidate; if none (very unlikely), the one farthest from the others.
    score = ok.float() * 2 + torch.linspace(1, 0, 64, device=device)
    if taken:
        score = torch.where(
            ok.any(1, keepdim=True),
            score,
            torch.stack([(cand - t[:, None]).norm(dim=-1) for t in taken]).min(0).values,
        )
    return cand[torch.arange(k, device=device), score.argmax(1)]


def sample_start(env: Any, draw: WorldDraws) -> tuple[torch.Tensor, torch.Tensor]:
    """Fresh starts for the ``k`` worlds of ``draw`` (``env.draws(ids)``) of the EgoPush ``env``:
    ``qpos`` ``[k, nq]`` and the anchor's centre ``[k, 2]`` (the marked region's in the goal task)."""
    cfg, B, k = env.cfg, env.cfg.n_boxes, len(draw)
    rand = draw.rand
    qpos = env.consts.qpos0.repeat(k, 1)
    # The formation, plus room for the robot to work round its outer boxes, fits in the room.
    reach = env.formation_reach + scene.BOX_HALF + 0.7
    lim_anchor = max(0.1, cfg.arena_half - reach)
    anchor = (rand(2) * 2 - 1) * lim_anchor
    ayaw = (rand() * 2 - 1) * math.pi
    if env.goal_task:
        anchor_yaw = torch.zeros(k, device=env.device)
    else:
        anchor_yaw = ayaw
    c, s = torch.cos(anchor_yaw)[:, None], torch.sin(anchor_yaw)[:, None]
    targets = anchor[:, None] + rot(env.offsets[None].expand(k, -1, -1), c, s)
    taken = [anchor] + [targets[:, j] for j in range(env.n_placed)]
    # Boxes start far enough from the walls for the robot to get behind them.
    lim = cfg.arena_half - 0.65
    box_xy = torch.zeros(k, B, 2, device=env.device)
    first = 0
    if not env.goal_task:
        box_xy[:, 0] = anchor
        first = 1
    for i in range(first, B):
        box_xy[:, i] = sample_free(draw, taken, lim, 0.55)
        taken.append(box_xy[:, i])
    robot = sample_free(draw, taken, cfg.arena_half - 0.4, 0.5)
    for i in range(B):
        adr = env.box_qadr_list[i]
        qpos[:, adr : adr + 2] = box_xy[:, i]
        qpos[:, adr + 2] = anchor_yaw if (i == 0 and not env.goal_task) else (rand() * 2 - 1) * math.pi
    r = env.robot_qadr
    qpos[:, r : r + 2] = robot
    qpos[:, r + 2] = (rand() * 2 - 1) * math.pi
    return qpos, anchor
