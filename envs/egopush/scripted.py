"""A scripted privileged EgoPush controller: drive behind the active box on the line through its
target, then push it there, steering to keep the box centred on the pusher.

It reads only the ``privileged`` group (keypoints in the robot frame), so it runs in any
observability mode; it is meant for ``global``, where the keypoints it needs are always shown.
"""

from __future__ import annotations

import torch

BOX_HALF = 0.1
STAND_OFF = 0.38  # robot centre behind the box centre when starting a push (m)


def _angle(v: torch.Tensor) -> torch.Tensor:
    return torch.atan2(v[..., 1], v[..., 0])


class ScriptedEgoPush:
    """Policy for an ``EgoPushEnv`` with ``n_slots`` obstacle slots (see its ``privileged`` layout)."""

    def __init__(self, n_slots: int) -> None:
        self.n_slots = n_slots
        self.ref = 12 * (2 + n_slots)  # reference keypoints come after active, anchor, obstacles

    @staticmethod
    def _subgoal(box: torch.Tensor, tgt: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
        """Where to push the box next: formation targets are entered from outside the formation
        (from the side away from the anchor), and the anchor is pushed around, not through."""
        out = tgt - anchor
        out_n = out.norm(dim=-1, keepdim=True)
        outward = out / out_n.clamp_min(1e-6)
        rel = box - tgt
        along = (rel * outward).sum(-1, keepdim=True)
        across = (rel - along * outward).norm(dim=-1, keepdim=True)
        lined_up = (along > 0.05) & (across < 0.6 * along + 0.1)  # within a cone opening outwards
        near = rel.norm(dim=-1, keepdim=True) < 0.2
        has_side = out_n > 0.05  # the goal task's target is the anchor (region) itself
        goal = torch.where(has_side & ~lined_up & ~near, tgt + outward * 0.45, tgt)
        # Detour round the anchor when the straight push would run the box into it.
        seg = goal - box
        t = (((anchor - box) * seg).sum(-1, keepdim=True) / (seg * seg).sum(-1, keepdim=True).clamp_min(1e-6)).clamp(
            0, 1
        )
        gap = (box + t * seg - anchor).norm(dim=-1, keepdim=True)
        perp = torch.stack((-seg[..., 1], seg[..., 0]), -1) / seg.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        side = torch.sign(((box - anchor) * perp).sum(-1, keepdim=True) + 1e-6)
        detour = anchor + side * perp * 0.6
        blocked = has_side & (gap < 0.36) & (t > 0) & (t < 1)
        return torch.where(blocked, detour, goal)

    @staticmethod
    def _avoid(goal: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
        """Steer round the first other object (anchor, obstacles) that lies on the way to ``goal``."""
        centre = others[..., :2].mean(-2)  # [..., K, 2]
        shown = others[..., 2].amax(-1) > 0.5
        g = goal.unsqueeze(-2)
        t = ((centre * g).sum(-1) / (g * g).sum(-1).clamp_min(1e-6)).clamp(0, 1)
        gap = (centre - t.unsqueeze(-1) * g).norm(dim=-1)
        in_way = shown & (gap < 0.33) & (t > 0.05) & (t < 0.95) & ((centre - g).norm(dim=-1) > 0.3)
        first = torch.where(in_way, t, 2.0).argmin(-1, keepdim=True)  # nearest along the way
        any_in_way = in_way.any(-1, keepdim=True)
        c = centre.gather(-2, first.unsqueeze(-1).expand(*first.shape, 2)).squeeze(-2)
        perp = torch.stack((-goal[..., 1], goal[..., 0]), -1) / goal.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        side = torch.sign((-c * perp).sum(-1, keepdim=True) + 1e-6)  # pass on the side we are already on
        detour = c + side * perp * 0.45
        return torch.where(any_in_way, detour, goal)

    def __call__(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        p = obs["privileged"]
        active = p[..., 0:12].unflatten(-1, (4, 3))
        ref = p[..., self.ref : self.ref + 12].unflatten(-1, (4, 3))
        anchor = p[..., 12:24].unflatten(-1, (4, 3))[..., :2].mean(-2)
        box = active[..., :2].mean(-2)
        tgt = self._subgoal(box, ref[..., :2].mean(-2), anchor)
        to_tgt = tgt - box
        push_dir = to_tgt / to_tgt.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        heading_err = _angle(push_dir)
        # Pushing: the box sits on the pusher, and we face (about) along the push direction.
        pushing = (box[..., 0] > 0) & (box[..., 0] < 0.48) & (box[..., 1].abs() < 0.08) & (heading_err.abs() < 0.5)
        # Ease off near the target: a box slides on a little after the pusher stops.
        push_fwd = (0.25 + 2.0 * (to_tgt.norm(dim=-1) - 0.03)).clamp(0.25, 0.8)
        push_turn = 2.0 * heading_err + 5.0 * box[..., 1]
        # Otherwise go to the stand-off point behind the box, around the box if it is in the way.
        stand = box - push_dir * STAND_OFF
        perp = torch.stack((-push_dir[..., 1], push_dir[..., 0]), -1)
        side = torch.sign((-box * perp).sum(-1, keepdim=True) + 1e-6)  # the side of the box we are on
        way_round = box + side * perp * 0.42 - push_dir * 0.15
        # Is the box between us and the stand-off point? (closest point of the segment to the box)
        seg = stand
        t = ((box * seg).sum(-1) / (seg * seg).sum(-1).clamp_min(1e-6)).clamp(0, 1)
        blocked = (box - t.unsqueeze(-1) * seg).norm(dim=-1) < 0.3
        goal = torch.where(blocked.unsqueeze(-1), way_round, stand)
        goal = self._avoid(goal, p[..., 12 : 24 + 12 * self.n_slots].unflatten(-1, (1 + self.n_slots, 4, 3)))
        dist = goal.norm(dim=-1)
        a = _angle(goal)
        fwd = torch.where(a.abs() < 1.0, (2.0 * dist).clamp(max=1.0) * torch.cos(a).clamp(min=0) ** 2, 0.0)
        turn = 2.5 * a
        at_stand = (stand.norm(dim=-1) < 0.06) & ~blocked
        fwd = torch.where(at_stand, 0.0, fwd)
        turn = torch.where(at_stand, 2.5 * heading_err, turn)
        fwd = torch.where(pushing, push_fwd, fwd)
        turn = torch.where(pushing, push_turn, turn)
        # Stuck (driving forward last step but not moving): back off, turning.
        speed, last_fwd = p[..., -5], p[..., -3]
        stuck = (last_fwd > 0.1) & (speed.abs() < 0.01)
        fwd = torch.where(stuck, -0.8, fwd)
        turn = torch.where(stuck, 1.0, turn)
        return torch.stack((fwd, turn), -1).clamp(-1, 1)
