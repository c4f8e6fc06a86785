"""A scripted soccer player: get behind the ball on the line to the goal, then push through it;
in larger teams only the player nearest the ball attacks, the others guard their goal.

It reads only the ``privileged`` group (ego-frame ball and goal), so it plays either team.
"""

from __future__ import annotations

import torch

ROBOT_RADIUS = 0.15
BALL_RADIUS = 0.08


class ScriptedSoccer:
    """Policy for ``team_size`` players per team (see ``envs.soccer.SoccerEnv`` for the layout)."""

    def __init__(self, team_size: int, gain: float = 2.5) -> None:
        self.n = team_size
        self.gain = gain
        # privileged = ball pos 2, ball vel 2, teammates 6(n-1), opponents 6n, landmarks 12, ...
        self._goal = 4 + 6 * (team_size - 1) + 6 * team_size

    def __call__(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        p = obs["privileged"]
        ball = p[..., 0:2]
        goal = p[..., self._goal : self._goal + 2]
        to_goal = goal - ball
        aim = to_goal / to_goal.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        stand_off = ROBOT_RADIUS + BALL_RADIUS + 0.12
        behind = ball - aim * stand_off
        # Am I behind the ball, looking along the aim line? Then push through the ball.
        me_to_ball = ball / ball.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        aligned = (me_to_ball * aim).sum(-1) > 0.9
        close = ball.norm(dim=-1) < stand_off + 0.15
        push = aligned & close
        target = torch.where(push.unsqueeze(-1), ball + aim * 0.5, behind)
        # Going round: if the ball lies between me and the stand-off point, sidestep it.
        side = torch.stack((-aim[..., 1], aim[..., 0]), -1)
        sign = torch.sign((ball * side).sum(-1, keepdim=True) * -1 + 1e-6)
        blocked = (~aligned) & ((ball * aim).sum(-1) < 0) & (ball.norm(dim=-1) < 0.6)
        target = torch.where(blocked.unsqueeze(-1), behind + side * sign * 0.4, target)
        if self.n > 1:
            # The player nearest the ball attacks; the others guard the line from ball to own goal.
            mates = p[..., 4 : 4 + 6 * (self.n - 1)].unflatten(-1, (self.n - 1, 6))[..., :2]
            mate_dist = (ball.unsqueeze(-2) - mates).norm(dim=-1)  # [..., n-1]
            support = (mate_dist < ball.norm(dim=-1, keepdim=True)).any(-1)
            own_goal = p[..., self._goal + 2 : self._goal + 4]
            guard = ball + 0.45 * (own_goal - ball)
            target = torch.where(support.unsqueeze(-1), guard, target)
        move = (self.gain * target).clamp(-1, 1)
        turn = (torch.atan2(ball[..., 1], ball[..., 0]) * 1.5).clamp(-1, 1)
        return torch.cat((move, turn.unsqueeze(-1)), -1)
