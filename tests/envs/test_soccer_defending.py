"""The defending scripted soccer player (``scripted-defend``): it keeps goal, plays either end, and
in larger teams splits into a keeper and an outfield player."""

import math

import pytest
import torch
from conftest import place

import envs
from envs.policies import fixed_policy
from envs.soccer import scene
from envs.soccer.scripted import DefendingSoccer, ScriptedSoccer


def _blue(obs):
    return {k: v[:, :1] for k, v in obs.items()}


def test_the_name_resolves_to_the_defending_player_and_only_in_soccer():
    assert isinstance(fixed_policy("scripted-defend", envs.make("soccer-1v1", num_envs=1)), DefendingSoccer)
    assert isinstance(fixed_policy("scripted", envs.make("soccer-1v1", num_envs=1)), ScriptedSoccer)
    with pytest.raises(ValueError, match="has no 'scripted-defend' player"):
        fixed_policy("scripted-defend", envs.make("egopush-goal", num_envs=1))


def test_the_keeper_steps_across_to_a_ball_rolling_toward_its_goal():
    env = envs.make("soccer-1v1", num_envs=1)
    env.reset(seed=0)
    hl = float(env.half_length[0])
    # Blue keeps the -x goal from 0.4 m out, 0.5 m to the left of the centre; the ball, 2 m out
    # and 0.4 m to the right, rolls at 1.5 m/s toward the goal centre; red is far away.
    start = (-hl + 0.4, 0.5)
    ball = (-hl + 2.0, -0.4)
    speed = torch.tensor([-2.0, 0.4]) / math.hypot(2.0, 0.4) * 1.5
    place(env, 0, robots={0: (*start, 0.0), 1: (hl - 0.5, 1.0, math.pi)}, ball=(*ball, scene.BALL_RADIUS))
    place(env, 0, ball_vel=(float(speed[0]), float(speed[1]), 0.0))
    keeper, obs = DefendingSoccer(1), env.observe()
    for _ in range(15):  # 0.6 s
        obs, *_ = env.step(torch.cat((keeper(_blue(obs)), torch.zeros(1, 1, 3)), 1))
    x, y = env.task_state()["pos"][0, 0].tolist()
    assert y < start[1] - 0.3, f"the keeper did not step across toward the ball's path: y {y:.2f}"
    assert -hl < x < -hl + 1.0, f"the keeper left its goal: x {x:.2f} (goal line at {-hl:.2f})"


def test_it_plays_either_end_the_same():
    env = envs.make("soccer-1v1", num_envs=1)
    env.reset(seed=0)
    # A layout and the same layout turned 180 degrees: blue's view of one is red's of the other.
    place(env, 0, robots={0: (-1.2, 0.3, 0.4), 1: (0.9, -0.5, 2.8)}, ball=(0.2, 0.4, scene.BALL_RADIUS))
    place(env, 0, ball_vel=(-0.6, 0.2, 0.0))
    obs = env.observe()
    turned = envs.make("soccer-1v1", num_envs=1)
    turned.reset(seed=0)
    turned.half_length[:], turned.half_width[:] = env.half_length, env.half_width
    place(turned, 0, robots={1: (1.2, -0.3, 0.4 + math.pi), 0: (-0.9, 0.5, 2.8 - math.pi)}, ball=(-0.2, -0.4, 0.08))
    place(turned, 0, ball_vel=(0.6, -0.2, 0.0))
    obs_t = turned.observe()
    keeper = DefendingSoccer(1)
    act_blue = keeper({k: v[:, :1] for k, v in obs.items()})
    act_red = keeper({k: v[:, 1:] for k, v in obs_t.items()})
    assert act_blue.abs().sum() > 0.1
    torch.testing.assert_close(act_blue, act_red, atol=1e-4, rtol=0)


def test_in_2v2_the_player_nearer_its_goal_keeps_and_the_other_goes_to_the_ball():
    env = envs.make("soccer-2v2", num_envs=1)
    env.reset(seed=0)
    hl = float(env.half_length[0])
    # Blue: blue0 by its own goal, blue1 at the centre line; the ball 1 m into red's half; red far.
    red = {2: (hl - 0.3, 1.0, math.pi), 3: (hl - 0.3, -1.0, math.pi)}
    place(env, 0, robots={0: (-hl + 0.5, 0.3, 0.0), 1: (-0.3, -0.6, 0.0), **red}, ball=(1.0, 0.0, scene.BALL_RADIUS))
    team, obs = DefendingSoccer(2), env.observe()
    for _ in range(25):  # 1 s
        blue = team({k: v[:, :2] for k, v in obs.items()})
        obs, *_ = env.step(torch.cat((blue, torch.zeros(1, 2, 3)), 1))
    s = env.task_state()
    keeper, outfield, ball = s["pos"][0, 0], s["pos"][0, 1], s["ball"][0, :2]
    assert keeper[0] < -hl + 1.0, f"the keeper left its goal: x {keeper[0]:.2f} (goal line at {-hl:.2f})"
    gap = float((outfield - ball).norm())
    assert gap < 0.5, f"the outfield player did not go to the ball: {gap:.2f} m from it"
