"""Soccer rules, observations and symmetry, checked on placed states."""

import math

import pytest
import torch
from conftest import place

import envs
from envs.policies import RandomPolicy
from envs.soccer import SEG_CLASSES, scene
from envs.soccer.scripted import ScriptedSoccer


def _step_ball_into(env, world, direction):
    """Roll the ball through the mouth of the goal at +x (direction 1) or -x (-1)."""
    hl = float(env.half_length[world])
    place(env, world, ball=(direction * (hl + 0.02), 0.0, scene.BALL_RADIUS), ball_vel=(direction * 3.0, 0, 0))
    return env.step(torch.zeros(env.num_envs, env.num_agents, 3))


@pytest.mark.parametrize("direction,scorer", [(1, 0), (-1, 1)])
def test_goal_scores_for_the_right_team(direction, scorer):
    env = envs.make("soccer-2v2", num_envs=2)
    env.reset(seed=0)
    obs, reward, term, trunc, info = _step_ball_into(env, 1, direction)
    sign = torch.tensor([1.0, 1.0, -1.0, -1.0]) * (1 if scorer == 0 else -1)
    assert torch.equal(info["reward_terms"]["goal"][1], sign)
    assert torch.equal(reward[1], sign)  # default scales: goal only
    assert term.tolist() == [False, True]
    assert info["score"][1].tolist() == ([1, 0] if scorer == 0 else [0, 1])
    assert reward[0].abs().sum() == 0


def test_ball_beside_the_goal_is_no_goal(soccer1):
    soccer1.reset(seed=0)
    hl = float(soccer1.half_length[0])
    hw = float(soccer1.half_width[0])
    place(soccer1, 0, ball=(hl - 0.05, hw - 0.2, scene.BALL_RADIUS), ball_vel=(3.0, 0, 0))
    for _ in range(10):
        _, reward, term, *_ = soccer1.step(torch.zeros(4, 2, 3))
        assert not term[0] and reward[0].abs().sum() == 0
    # The wall kept it in play, at the pitch size of this world.
    ball_x = float(soccer1.sim.qpos[0, soccer1.ball_qadr])
    assert ball_x < hl


def test_kickoff_mode_restarts_play_and_keeps_the_score():
    env = envs.make("soccer-1v1", num_envs=2, on_goal="kickoff")
    env.reset(seed=0)
    _, reward, term, trunc, info = _step_ball_into(env, 0, 1)
    assert not term[0] and not trunc[0]
    assert reward[0].tolist() == [1.0, -1.0]
    assert info["score"][0].tolist() == [1, 0]
    ball = env.sim.qpos[0, env.ball_qadr : env.ball_qadr + 2]
    assert ball.abs().max() < 0.25  # back on the centre spot
    _, reward, *_ = _step_ball_into(env, 0, -1)
    assert env.score[0].tolist() == [1, 1]


def test_pitch_size_is_randomised_per_world():
    env = envs.make("soccer-1v1", num_envs=8)
    env.reset(seed=0)
    assert env.half_length.unique().numel() == 8
    assert (env.half_length >= 2.0).all() and (env.half_length <= 3.0).all()
    gp = env.sim.field("geom_pos")
    top = env.mj_model.geom("wall_top").id
    expected = env.half_width + scene.WALL_THICK / 2
    assert torch.allclose(gp[:, top, 1].float(), expected, atol=1e-5)


def _mirror(env, src, dst):
    """World dst := world src turned 180 degrees with the teams' roles swapped."""
    n = env.cfg.team_size
    q, v = env.sim.qpos, env.sim.qvel
    q[dst], v[dst] = q[src], v[src]
    env.half_length[dst], env.half_width[dst] = env.half_length[src], env.half_width[src]
    for a in range(2 * n):
        b = (a + n) % (2 * n)  # blue i <-> red i
        sa, sb = int(env.robot_qadr[a]), int(env.robot_qadr[b])
        va, vb = int(env.robot_vadr[a]), int(env.robot_vadr[b])
        q[dst, sb : sb + 2] = -q[src, sa : sa + 2]
        q[dst, sb + 2] = q[src, sa + 2] + math.pi
        v[dst, vb : vb + 2] = -v[src, va : va + 2]
        v[dst, vb + 2] = v[src, va + 2]
    b, bv = env.ball_qadr, env.ball_vadr
    q[dst, b : b + 2] = -q[src, b : b + 2]
    v[dst, bv : bv + 2] = -v[src, bv : bv + 2]


def test_teams_are_mirror_symmetric():
    env = envs.make("soccer-2v2", num_envs=2)
    env.reset(seed=5)
    for _ in range(10):
        env.step(torch.rand(2, 4, 3) * 2 - 1)
    _mirror(env, 0, 1)
    env.prev_action[1] = env.prev_action[0][[2, 3, 0, 1]]
    obs = env.observe()
    swap = [2, 3, 0, 1]
    for group in ("privileged", "critic", "proprio"):
        torch.testing.assert_close(obs[group][1], obs[group][0][swap], atol=1e-4, rtol=1e-4)
    # ...and the sides are not trivially equal: blue and red see different things.
    assert not torch.allclose(obs["privileged"][0, 0], obs["privileged"][0, 2], atol=1e-3)


def test_privileged_ball_is_in_the_ego_frame(soccer1):
    soccer1.reset(seed=0)
    place(soccer1, 0, robots={0: (0.0, 0.0, math.pi / 2), 1: (-1.0, -1.0, 0.0)}, ball=(1.0, 0.0, scene.BALL_RADIUS))
    p = soccer1.observe()["privileged"][0]
    # Blue faces +y; the ball at +x lies to its right: ego (0, -1).
    torch.testing.assert_close(p[0, :2], torch.tensor([0.0, -1.0]), atol=1e-5, rtol=0)
    # Red faces +x from (-1, -1): the ball is at ego (2, 1).
    torch.testing.assert_close(p[1, :2], torch.tensor([2.0, 1.0]), atol=1e-5, rtol=0)


def test_shaping_terms_match_hand_worked_values():
    env = envs.make("soccer-1v1", num_envs=1, reward_scales={"goal": 1.0, "vel_to_ball": 0.5, "ball_vel_to_goal": 2.0})
    env.reset(seed=0)
    place(env, 0, robots={0: (-1.0, 0.0, 0.0), 1: (1.0, 1.0, math.pi)}, ball=(0.0, 0.0, scene.BALL_RADIUS))
    # Blue drives at the ball; the ball rolls toward red's goal (+x).
    _, reward, _, _, info = env.step(torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]]))
    s = env.task_state()
    vb = float(s["vel"][0, 0, 0])  # blue's x velocity is its velocity toward the ball (on the x axis)
    terms = info["reward_terms"]
    assert vb > 0.1
    torch.testing.assert_close(terms["vel_to_ball"][0, 0], torch.tensor(0.5 * vb), atol=2e-3, rtol=1e-3)
    assert terms["goal"].abs().sum() == 0
    torch.testing.assert_close(reward[0], sum(t[0] for t in terms.values()))


def test_scripted_player_beats_random_team():
    env = envs.make("soccer-1v1", num_envs=32, episode_seconds=12.0)
    obs = env.reset(seed=0)
    me, rnd = ScriptedSoccer(1), RandomPolicy(3, seed=1)
    wins = losses = finished = 0
    while finished < 64:
        a = torch.cat((me({k: v[:, :1] for k, v in obs.items()}), rnd({k: v[:, 1:] for k, v in obs.items()})), 1)
        obs, _, term, trunc, info = env.step(a)
        done = term | trunc
        if done.any():
            sc = info["score"][done]
            wins += int((sc[:, 0] > sc[:, 1]).sum())
            losses += int((sc[:, 0] < sc[:, 1]).sum())
            finished += int(done.sum())
    assert wins / finished > 0.7 and losses / finished < 0.1, (wins, losses, finished)


def test_fov_observability_shows_the_ball_only_in_view_then_where_last_seen():
    env = envs.make("soccer-1v1", num_envs=1, observability="fov")
    env.reset(seed=0)
    # Blue at the centre faces +x: the ball 1 m ahead (rolling) and red 1.5 m ahead are in view.
    place(env, 0, robots={0: (0.0, 0.0, 0.0), 1: (1.5, 0.3, math.pi)}, ball=(1.0, 0.0, scene.BALL_RADIUS))
    env.sim.qvel[0, env.ball_vadr] = 0.5
    p = env.observe()["privileged"][0, 0]
    assert p.shape == (30,)  # 28 of the global layout + 2 in-view flags
    torch.testing.assert_close(p[:4], torch.tensor([1.0, 0.0, 0.5, 0.0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(p[4:6], torch.tensor([1.5, 0.3]), atol=1e-5, rtol=0)
    assert p[-2:].tolist() == [1.0, 1.0]
    # Blue turns round and the ball rolls on: out of view, it is where blue last saw it (now behind,
    # ego (-1, 0)) and still; the global layout shows where it is.
    place(env, 0, robots={0: (0.0, 0.0, math.pi)}, ball=(1.2, 0.5, scene.BALL_RADIUS), ball_vel=(0.3, 0.0, 0.0))
    p = env.observe()["privileged"][0, 0]
    assert p[-2:].tolist() == [0.0, 0.0]
    torch.testing.assert_close(p[:4], torch.tensor([-1.0, 0.0, 0.0, 0.0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(p[4:6], torch.tensor([-1.5, -0.3]), atol=1e-5, rtol=0)
    glob = envs.make("soccer-1v1", num_envs=1)
    glob.reset(seed=0)
    place(glob, 0, robots={0: (0.0, 0.0, math.pi), 1: (1.5, 0.3, math.pi)}, ball=(1.2, 0.5, scene.BALL_RADIUS))
    g = glob.observe()["privileged"][0, 0]
    assert g.shape == (28,)
    torch.testing.assert_close(g[:2], torch.tensor([-1.2, -0.5]), atol=1e-5, rtol=0)
    # A ball at its nose shows at the bottom of the image (in view); one beside it does not.
    place(env, 0, robots={0: (0.0, 0.0, 0.0)}, ball=(0.24, 0.0, scene.BALL_RADIUS))
    assert env.observe()["privileged"][0, 0, -2] == 1.0
    place(env, 0, robots={0: (0.0, 0.0, 0.0)}, ball=(0.1, 0.3, scene.BALL_RADIUS))
    assert env.observe()["privileged"][0, 0, -2] == 0.0
    # A new episode starts from where everything is at kick-off, seen or not.
    env = envs.make("soccer-1v1", num_envs=8, observability="fov")
    p = env.reset(seed=1)["privileged"]
    assert (p[..., -2] == 0).any()  # some start with the ball out of view
    ball = env.sim.qpos[:, env.ball_qadr : env.ball_qadr + 2].float()
    torch.testing.assert_close(env.ball_seen, ball.unsqueeze(1).expand(8, 2, 2))
    with pytest.raises(ValueError, match="observability"):
        envs.make("soccer-1v1", num_envs=1, observability="fov_gated")


def test_fov_in_view_flag_agrees_with_the_rendered_camera():
    env = envs.make("soccer-1v1", num_envs=8, observability="fov", cameras=("segmentation",))
    env.reset(seed=0)
    g = torch.Generator().manual_seed(0)
    both = flag_only = pixels_only = 0
    for _ in range(30):
        obs, *_ = env.step(torch.rand(8, 2, 3, generator=g) * 2 - 1)
        flag = obs["privileged"][..., -2] > 0
        pixels = (obs["segmentation"][:, :, 0] == SEG_CLASSES.index("ball")).flatten(2).any(-1)
        both += int((flag & pixels).sum())
        flag_only += int((flag & ~pixels).sum())
        pixels_only += int((~flag & pixels).sum())
    env.close()
    # The flag is some of the ball in the frustum: the camera shows it then and only then (but
    # for occlusion by the other robot, which the flag ignores, and slivers below one pixel).
    assert both > 100 and flag_only <= 0.02 * both and pixels_only <= 0.01 * both, (both, flag_only, pixels_only)
