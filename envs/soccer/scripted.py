"""Scripted soccer players, hand-written: ``ScriptedSoccer`` attacks (get behind the ball on the line
to the goal, then push through it; in larger teams only the player nearest the ball attacks, the
others guard their goal); ``DefendingSoccer`` keeps goal and clears (a keeper between the ball and
its own goal that wins the ball when it safely can; in larger teams one keeper, the others defend
or attack).

Both read only the ``privileged`` group (ego-frame ball, robots and landmarks), so they play either
team, under either observability (``fov`` appends its in-view flags after the layout read here).
"""

from __future__ import annotations

import torch

ROBOT_RADIUS = 0.15
BALL_RADIUS = 0.08
STAND_OFF = ROBOT_RADIUS + BALL_RADIUS + 0.12
"""How far behind the ball (on the line to the goal) a player lines up before pushing."""


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-6)


def attack_target(ball: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
    """Where to drive (ego frame, ``[..., 2]``) to push the ball at ``ball`` toward ``goal``
    (both ego ``[..., 2]``): behind the ball on the line to the goal, going round it when it
    is in the way, then through it."""
    aim = _unit(goal - ball)
    behind = ball - aim * STAND_OFF
    # Am I behind the ball, looking along the aim line? Then push through the ball.
    me_to_ball = _unit(ball)
    aligned = (me_to_ball * aim).sum(-1) > 0.9
    close = ball.norm(dim=-1) < STAND_OFF + 0.15
    push = aligned & close
    target = torch.where(push.unsqueeze(-1), ball + aim * 0.5, behind)
    # Going round: if the ball lies between me and the stand-off point, sidestep it.
    side = torch.stack((-aim[..., 1], aim[..., 0]), -1)
    sign = torch.sign((ball * side).sum(-1, keepdim=True) * -1 + 1e-6)
    blocked = (~aligned) & ((ball * aim).sum(-1) < 0) & (ball.norm(dim=-1) < 0.6)
    return torch.where(blocked.unsqueeze(-1), behind + side * sign * 0.4, target)


def _face_ball(move_to: torch.Tensor, ball: torch.Tensor, gain: float) -> torch.Tensor:
    """Actions ``[..., 3]``: drive toward ego point ``move_to``, turn toward the ball."""
    move = (gain * move_to).clamp(-1, 1)
    turn = (torch.atan2(ball[..., 1], ball[..., 0]) * 1.5).clamp(-1, 1)
    return torch.cat((move, turn.unsqueeze(-1)), -1)


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
        target = attack_target(ball, goal)
        if self.n > 1:
            # The player nearest the ball attacks; the others guard the line from ball to own goal.
            mates = p[..., 4 : 4 + 6 * (self.n - 1)].unflatten(-1, (self.n - 1, 6))[..., :2]
            mate_dist = (ball.unsqueeze(-2) - mates).norm(dim=-1)  # [..., n-1]
            support = (mate_dist < ball.norm(dim=-1, keepdim=True)).any(-1)
            own_goal = p[..., self._goal + 2 : self._goal + 4]
            guard = ball + 0.45 * (own_goal - ball)
            target = torch.where(support.unsqueeze(-1), guard, target)
        return _face_ball(target, ball, self.gain)


def _around(target: torch.Tensor, ball: torch.Tensor, clearance: float) -> torch.Tensor:
    """``target`` (ego ``[..., 2]``), or, when the ball lies within ``clearance`` of the straight
    path there, a point beside the ball on the far side from that path (so as not to push it)."""
    way = _unit(target)
    along = (ball * way).sum(-1, keepdim=True)
    off = ball - along * way  # the ball's offset from the path
    left = torch.stack((-way[..., 1], way[..., 0]), -1)
    side = torch.where(off.norm(dim=-1, keepdim=True) > 1e-3, _unit(off), left)
    blocked = (along > 0) & (along < target.norm(dim=-1, keepdim=True)) & (off.norm(dim=-1, keepdim=True) < clearance)
    return torch.where(blocked, ball - side * clearance, target)


class DefendingSoccer:
    """A scripted player that defends as well as attacks (policy name ``scripted-defend``), hand-written.

    1v1, a keeper: it stands on the line from its own goal centre to where the ball will be in
    ``lookahead`` seconds, ``shadow`` metres short of the ball but between ``keep_min`` and
    ``keep_max`` metres out of the goal and at most ``keep_width`` to either side of its centre
    (never behind the goal line), going round the ball rather than through it. It leaves that spot
    to play the ball toward the opponent goal (``attack_target``, the attacker's move) only from the
    goal side: when, seen from the ball, it stands within ``acos(cover)`` of the line to its own goal
    (so a push cannot go into its own goal) and is at most ``margin`` metres farther from the ball
    than the nearest opponent. In larger teams the player nearest its own goal keeps (as above); the
    others defend or attack: the one nearest the ball (the keeper aside) attacks it when no opponent
    is nearer, and otherwise each marks the line from the ball to its own goal, ``mark`` metres from
    the ball.
    """

    def __init__(
        self,
        team_size: int,
        gain: float = 2.5,
        lookahead: float = 0.4,
        shadow: float = 0.5,
        keep_min: float = 0.18,
        keep_max: float = 0.9,
        margin: float = 1.0,
        mark: float = 0.6,
        keep_width: float = 0.5,
        cover: float = 0.8,
    ) -> None:
        self.n = team_size
        self.gain, self.lookahead, self.margin, self.mark = gain, lookahead, margin, mark
        self.shadow, self.keep_min, self.keep_max = shadow, keep_min, keep_max
        self.keep_width, self.cover = keep_width, cover
        self._opps = 4 + 6 * (team_size - 1)  # privileged: ball 2, ball vel 2, teammates 6(n-1), opponents 6n
        self._goal = self._opps + 6 * team_size  # then landmarks: opponent goal, own goal, corners

    def __call__(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        p = obs["privileged"]
        ball, ball_vel = p[..., 0:2], p[..., 2:4]
        opps = p[..., self._opps : self._goal].unflatten(-1, (self.n, 6))[..., :2]  # [..., n, 2]
        goal, own = p[..., self._goal : self._goal + 2], p[..., self._goal + 2 : self._goal + 4]
        my_dist = ball.norm(dim=-1)
        opp_dist = (ball.unsqueeze(-2) - opps).norm(dim=-1).min(-1).values
        attack = attack_target(ball, goal)
        # Keeper: on the line from the own goal to the ball a moment ahead, kept in front of the
        # goal mouth (never behind the goal line, where it would push the ball in).
        axis = _unit(goal - own)  # the pitch's long axis, out of the own goal
        across = torch.stack((-axis[..., 1], axis[..., 0]), -1)
        out = ball + ball_vel * self.lookahead - own
        reach = (out.norm(dim=-1, keepdim=True) - self.shadow).clamp(self.keep_min, self.keep_max)
        line = _unit(out) * reach
        depth = (line * axis).sum(-1, keepdim=True).clamp_min(self.keep_min)
        width = (line * across).sum(-1, keepdim=True).clamp(-self.keep_width, self.keep_width)
        keep = _around(own + depth * axis + width * across, ball, ROBOT_RADIUS + BALL_RADIUS + 0.1)
        # Goal-side: roughly between the ball and the own goal (within ``cover`` of that line, seen from the ball).
        cos = (_unit(-ball) * _unit(own - ball)).sum(-1)
        goal_side = cos > self.cover
        challenge = goal_side & (my_dist < opp_dist + self.margin)
        target = torch.where(challenge.unsqueeze(-1), attack, keep)
        if self.n > 1:
            mates = p[..., 4 : self._opps].unflatten(-1, (self.n - 1, 6))[..., :2]  # [..., n-1, 2]
            mate_home = (mates - own.unsqueeze(-2)).norm(dim=-1)  # [..., n-1] teammates to own goal
            keeper = (own.norm(dim=-1, keepdim=True) <= mate_home).all(-1)
            # Outfield: the one nearest the ball (the keeper aside) attacks it if no opponent is
            # nearer; the others mark.
            their_keeper = mate_home == mate_home.min(-1, keepdim=True).values
            mate_dist = (ball.unsqueeze(-2) - mates).norm(dim=-1)  # [..., n-1]
            nearest = ~((mate_dist < my_dist.unsqueeze(-1)) & ~their_keeper).any(-1)
            mark = _around(ball + _unit(own - ball) * self.mark, ball, ROBOT_RADIUS + BALL_RADIUS + 0.1)
            field = torch.where((nearest & (my_dist < opp_dist)).unsqueeze(-1), attack, mark)
            target = torch.where(keeper.unsqueeze(-1), target, field)
        return _face_ball(target, ball, self.gain)
