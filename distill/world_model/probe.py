"""Inter-agent consistency of generated soccer views: a small probe, trained on real frames, reads the
ball from one player's camera; read from every player's generated view at the same step, do the
players agree on where the ball is?

- ``BallProbe``: a CNN from one RGB frame to the ball's position in that robot's frame (metres) and
  whether the ball is in its camera's view (a logit).
- Labels come from a recording's ``privileged`` group (soccer, global observability): the ball in the
  robot frame (inputs 0-1) and the field's landmarks in the robot frame (inputs ``16 + 12 N`` minus
  the tail: opponent goal, own goal, four corners), from which the robot's pose in its team's frame
  is solved (``team_pose``), and visibility by the env's own frustum test (``SoccerEnv.ball_in_view``).
- ``consistency``: per generated step, the ball each player's view places in the world (the probe's
  robot-frame reading moved by that player's real pose), against the truth and against the other
  players' readings; the same on the real frames gives the probe's own floor.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from distill.world_model.metrics import held_still

BALL_SCALE = 4.0
"""Metres the probe's position outputs are scaled by (the field is about 4.5 x 3 m)."""
LANDMARKS = 12
"""Inputs of the six landmarks (x, y each) in soccer's ``privileged`` group."""


class BallProbe(nn.Module):
    """RGB frames uint8 ``[..., 3, H, W]`` -> ball position in the robot frame ``[..., 2]`` (m) and
    an in-view logit ``[...]``."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        w = width
        self.conv = nn.Sequential(
            nn.Conv2d(3, w, 4, 2, 1),
            nn.SiLU(),
            nn.Conv2d(w, 2 * w, 4, 2, 1),
            nn.SiLU(),
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1),
            nn.SiLU(),
            nn.Conv2d(4 * w, 4 * w, 4, 2, 1),
            nn.SiLU(),
            nn.AdaptiveAvgPool2d(4),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(64 * w, 128), nn.SiLU(), nn.Linear(128, 3))

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lead = frames.shape[:-3]
        x = frames.reshape(-1, *frames.shape[-3:]).float() / 127.5 - 1
        out = self.head(self.conv(x)).view(*lead, 3)
        return out[..., :2] * BALL_SCALE, out[..., 2]


InView = Callable[[torch.Tensor], torch.Tensor]
"""``SoccerEnv.ball_in_view``: robot-frame ball positions ``[..., 2]`` -> in the camera's view ``[...]``."""


def ball_labels(privileged: torch.Tensor, in_view: InView) -> tuple[torch.Tensor, torch.Tensor]:
    """The ball in the robot frame ``[..., 2]`` and whether it is in view ``[...]`` (bool) from
    soccer's ``privileged`` observations ``[..., P]``; ``in_view`` is ``SoccerEnv.ball_in_view``."""
    ego = privileged[..., :2].float()
    return ego, in_view(ego)


def landmarks(privileged: torch.Tensor, team_size: int) -> torch.Tensor:
    """The six landmarks in the robot frame ``[..., 6, 2]`` (opponent goal, own goal, corners)."""
    start = 4 + 6 * (2 * team_size - 1)  # after the ball (4) and the 2n - 1 other robots (6 each)
    return privileged[..., start : start + LANDMARKS].float().unflatten(-1, (6, 2))


def team_pose(marks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A robot's position ``[..., 2]`` and yaw ``[...]`` in its team's frame from the landmarks in its
    own frame ``[..., 6, 2]``: the goals sit at ``(+-L, 0)``, so the line from the own goal to the
    opponent goal gives the yaw and the opponent goal the position (``L`` is half their distance)."""
    g1, g2 = marks[..., 0, :], marks[..., 1, :]
    d = g1 - g2
    yaw = -torch.atan2(d[..., 1], d[..., 0])
    half = d.norm(dim=-1) / 2
    c, s = torch.cos(yaw), torch.sin(yaw)
    rotated = torch.stack((c * g1[..., 0] - s * g1[..., 1], s * g1[..., 0] + c * g1[..., 1]), -1)  # R(yaw) g1
    pos = torch.stack((half, torch.zeros_like(half)), -1) - rotated
    return pos, yaw


def to_world(ego: torch.Tensor, pos: torch.Tensor, yaw: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Robot-frame points ``[..., 2]`` to the world, by the robot's team-frame pose and its team's
    ``flip`` (+1 blue, -1 red: the red team's frame is the world turned half a turn)."""
    c, s = torch.cos(yaw), torch.sin(yaw)
    team = pos + torch.stack((c * ego[..., 0] - s * ego[..., 1], s * ego[..., 0] + c * ego[..., 1]), -1)
    return team * flip.unsqueeze(-1)


def train_probe(
    frames: torch.Tensor,
    ego: torch.Tensor,
    visible: torch.Tensor,
    steps: int = 1500,
    batch: int = 128,
    lr: float = 1e-3,
    generator: torch.Generator | None = None,
    width: int = 16,
) -> tuple[BallProbe, list[float]]:
    """A ``BallProbe`` trained on single frames ``[N, 3, H, W]`` with labels ``ego`` ``[N, 2]`` and
    ``visible`` ``[N]``: cross-entropy on visibility, and the squared position error (in units of
    ``BALL_SCALE``) where the ball is in view. Returns it (eval mode) and the loss every 100 steps."""
    gen = generator or torch.Generator().manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(int(torch.randint(2**31, (1,), generator=gen)))
        probe = BallProbe(width)
    opt = torch.optim.Adam(probe.parameters(), lr=lr)
    losses: list[float] = []
    for step in range(steps):
        i = torch.randint(frames.shape[0], (batch,), generator=gen)
        pred, logit = probe(frames[i])
        vis = visible[i].float()
        pos = (((pred - ego[i]) / BALL_SCALE) ** 2).sum(-1)
        loss = F.binary_cross_entropy_with_logits(logit, vis) + (pos * vis).sum() / vis.sum().clamp(min=1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            losses.append(float(loss.detach()))
    return probe.eval(), losses


@torch.no_grad()
def read(probe: BallProbe, frames: torch.Tensor, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """The probe over frames ``[..., 3, H, W]`` in chunks: positions ``[..., 2]``, in view ``[...]``."""
    flat = frames.reshape(-1, *frames.shape[-3:])
    parts = [probe(f) for f in flat.split(chunk)]
    pos = torch.cat([p for p, _ in parts]).view(*frames.shape[:-3], 2)
    seen = torch.cat([v for _, v in parts]).view(frames.shape[:-3]) > 0
    return pos, seen


@torch.no_grad()
def consistency(
    probe: BallProbe,
    real: torch.Tensor,
    generated: torch.Tensor,
    privileged: torch.Tensor,
    in_view: InView,
    team_size: int,
    context: int,
) -> dict[str, float]:
    """Ball readings of clips ``real`` and ``generated`` ``[B, T, A, 3, H, W]`` (the generated ones
    after ``context`` frames), with the real ``privileged`` ``[B, T, A, P]``. Over the generated steps:

    - ``error_real_m`` / ``error_generated_m``: mean distance (m) between where a player's view places
      the ball (the probe's reading moved by the player's real pose) and the ball, where it is in view;
    - ``agreement_real_m`` / ``agreement_generated_m``: mean distance between two players' placements
      of the ball, where it is in both their views;
    - ``in_view_accuracy_real`` / ``_generated``: how often the probe's in-view call is right;
    - the same with ``copy`` for the last real context frame held still (the floor of a model that
      learnt no dynamics, as in ``metrics.horizon_metrics``);
    - ``pairs``, ``views``: how many player pairs and player-steps the means are over."""
    A = real.shape[2]
    priv = privileged[:, context:]
    ego_true, visible = ball_labels(priv, in_view)
    pos, yaw = team_pose(landmarks(priv, team_size))
    flip = torch.tensor([1.0] * (A // 2) + [-1.0] * (A - A // 2))
    truth = to_world(ego_true, pos, yaw, flip)  # [B, T, A, 2]: the same ball, seen from each player
    out: dict[str, float] = {"views": int(visible.sum())}
    pairs = [(i, j) for i in range(A) for j in range(i + 1, A)]
    both = torch.stack([visible[..., i] & visible[..., j] for i, j in pairs], -1)  # [B, T, P]
    out["pairs"] = int(both.sum())
    copy = held_still(real, context)
    for name, frames in (("real", real[:, context:]), ("generated", generated[:, context:]), ("copy", copy)):
        reading, seen = read(probe, frames)
        placed = to_world(reading, pos, yaw, flip)
        err = (placed - truth).norm(dim=-1)
        out[f"error_{name}_m"] = float(err[visible].mean()) if visible.any() else math.nan
        gap = torch.stack([(placed[..., i, :] - placed[..., j, :]).norm(dim=-1) for i, j in pairs], -1)
        out[f"agreement_{name}_m"] = float(gap[both].mean()) if both.any() else math.nan
        out[f"in_view_accuracy_{name}"] = float((seen == visible).float().mean())
    out["truth_spread_m"] = float(
        torch.stack([(truth[..., i, :] - truth[..., j, :]).norm(dim=-1) for i, j in pairs], -1).max()
    )
    return out
