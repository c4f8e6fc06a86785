"""The inter-agent consistency probe: a robot's pose is solved exactly from the landmarks it sees, the
ball placed by every player's true reading is one point, the probe learns from frames, and the
metrics tell a view that shows the ball where it is from one that does not."""

import pytest
import torch

import envs
from distill.world_model.probe import BallProbe, ball_labels, consistency, landmarks, team_pose, to_world, train_probe


@pytest.mark.parametrize("name", ["soccer-1v1", "soccer-2v2"])
def test_every_players_reading_places_the_ball_where_it_is(name):
    env = envs.make(name, num_envs=3)
    obs = env.reset(seed=1)
    g = torch.Generator().manual_seed(0)
    for _ in range(25):
        obs, *_ = env.step(torch.rand(3, env.num_agents, env.act_dim, generator=g) * 2 - 1)
    n = env.cfg.team_size
    pos, yaw = team_pose(landmarks(obs["privileged"], n))
    ego, visible = ball_labels(obs["privileged"], env.ball_in_view)
    world = to_world(ego, pos, yaw, torch.tensor([1.0] * n + [-1.0] * n))
    ball = env.sim.qpos[:, env.ball_qadr : env.ball_qadr + 2].float()
    torch.testing.assert_close(world, ball[:, None].expand_as(world), atol=1e-5, rtol=0)
    robots = torch.stack([env.sim.qpos[:, env.robot_qadr + k].float() for k in range(2)], -1)  # [W, A, 2]
    flip = torch.tensor([1.0] * n + [-1.0] * n)
    torch.testing.assert_close(to_world(torch.zeros_like(ego), pos, yaw, flip), robots, atol=1e-5, rtol=0)
    assert visible.dtype == torch.bool and visible.any() and not visible.all()
    env.close()


def _squares(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """16x16 frames with a white square whose column is the label's y (and none when out of view)."""
    y = torch.rand(n, generator=g) * 2 - 1
    visible = torch.rand(n, generator=g) < 0.7
    frames = torch.zeros(n, 3, 16, 16, dtype=torch.uint8)
    cols = ((y + 1) * 6).long()
    for i in range(n):
        if visible[i]:
            frames[i, :, 6:10, cols[i] : cols[i] + 4] = 255
    return frames, torch.stack((torch.ones(n), y), -1), visible


def test_the_probe_learns_to_read_a_position_and_visibility_from_frames():
    g = torch.Generator().manual_seed(0)
    frames, ego, visible = _squares(512, g)
    probe, losses = train_probe(frames, ego, visible, steps=300, batch=64, lr=3e-3, generator=g, width=8)
    assert losses[-1] < 0.3 * losses[0]
    test, ego_t, vis_t = _squares(128, g)
    with torch.no_grad():
        pos, logit = probe(test)
    assert ((logit > 0) == vis_t).float().mean() > 0.9
    assert (pos[vis_t, 1] - ego_t[vis_t, 1]).abs().mean() < 0.25


def test_consistency_scores_a_blank_dream_below_the_real_views():
    env = envs.make("soccer-1v1", num_envs=2, cameras=("rgb",), camera_resolution=(16, 16))
    obs = env.reset(seed=2)
    frames, privs = [], []
    g = torch.Generator().manual_seed(0)
    for _ in range(6):
        frames.append(obs["camera"])
        privs.append(obs["privileged"])
        obs, *_ = env.step(torch.rand(2, 2, 3, generator=g) * 2 - 1)
    real, priv = torch.stack(frames, 1), torch.stack(privs, 1)  # [B=2, T=6, A=2, ...]
    # Each real frame carries its own id in one pixel; the oracle looks the truth up by it (id 0: blank).
    ids = torch.arange(1, real[..., 0, 0, 0].numel() + 1, dtype=torch.uint8).view(real.shape[:3])
    real[..., 0, 0, 0] = ids
    truth, seen = ball_labels(priv, env.ball_in_view)
    table_ego = torch.cat((torch.zeros(1, 2), truth.reshape(-1, 2)))
    table_seen = torch.cat((torch.zeros(1, dtype=torch.bool), seen.reshape(-1)))

    class Oracle(BallProbe):  # reads a real frame perfectly, a blank one as nothing in view
        def forward(self, f):
            k = f[..., 0, 0, 0].long()
            return table_ego[k], torch.where(table_seen[k], 1.0, -1.0)

    oracle = Oracle()
    out_real = consistency(oracle, real, real, priv, env.ball_in_view, 1, context=2)
    assert out_real["error_real_m"] < 1e-5 and out_real["error_generated_m"] < 1e-5
    assert out_real["in_view_accuracy_generated"] == 1.0
    assert out_real["pairs"] == 0 or out_real["agreement_generated_m"] < 1e-5
    blank = real.clone()
    blank[:, 2:] = 0
    out = consistency(oracle, real, blank, priv, env.ball_in_view, 1, context=2)
    assert out["error_generated_m"] > 0.1 and out["in_view_accuracy_generated"] < 1.0
    # Holding the last context frame still places the ball where it was: off once it has moved.
    assert out["error_copy_m"] == out_real["error_copy_m"] > 0.01
    env.close()
