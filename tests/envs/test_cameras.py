"""Egocentric cameras through MuJoCo Warp's batch renderer, on the cpu physics backend."""

import math

import numpy as np
import pytest
import torch
from conftest import place

import envs
from envs.soccer import SEG_CLASSES, scene


@pytest.fixture(scope="module")
def cam_env():
    env = envs.make("soccer-1v1", num_envs=3, cameras=("rgb", "depth", "segmentation"))
    yield env
    env.close()


def test_camera_groups_shapes_and_dtypes(cam_env):
    obs = cam_env.reset(seed=0)
    assert obs["camera"].shape == (3, 2, 3, 64, 64) and obs["camera"].dtype == torch.uint8
    assert obs["depth"].shape == (3, 2, 1, 64, 64) and obs["depth"].dtype == torch.float32
    assert obs["segmentation"].shape == (3, 2, 1, 64, 64) and obs["segmentation"].dtype == torch.uint8
    assert obs["camera"].float().std() > 10  # an image, not a blank


def test_ball_in_front_is_seen_and_behind_is_not(cam_env):
    cam_env.reset(seed=0)
    # World 0: blue faces the ball 0.6 m ahead. World 1: the ball is behind blue.
    place(cam_env, 0, robots={0: (-1.0, 0.0, 0.0), 1: (1.5, 1.0, math.pi)}, ball=(-0.4, 0.0, scene.BALL_RADIUS))
    place(cam_env, 1, robots={0: (-1.0, 0.0, math.pi), 1: (1.5, 1.0, 0.0)}, ball=(-0.4, 0.0, scene.BALL_RADIUS))
    obs = cam_env.observe()
    ball = SEG_CLASSES.index("ball")
    seg0, seg1 = obs["segmentation"][0, 0, 0], obs["segmentation"][1, 0, 0]
    assert (seg0 == ball).sum() > 20
    assert (seg1 == ball).sum() == 0
    # Depth along the camera axis to the ball's near side: 0.6 m - camera offset - ball radius.
    rows, cols = (seg0 == ball).nonzero(as_tuple=True)
    near = obs["depth"][0, 0, 0][rows, cols].min().item()
    expected = 0.6 - (scene.ROBOT_RADIUS + 0.005) - scene.BALL_RADIUS
    assert abs(near - expected) < 0.03, near
    # The ball is yellow in RGB where the segmentation says ball.
    rgb = obs["camera"][0, 0].float()[:, rows, cols].mean(1)
    assert rgb[0] > 150 and rgb[1] > 120 and rgb[2] < 80, rgb
    # Team-relative classes: red sees blue as an opponent.
    assert (obs["segmentation"][0, 1, 0] == SEG_CLASSES.index("opponent")).sum() > 0


def test_a_wider_lens_sees_a_ball_to_the_side_that_the_default_one_does_not():
    # The ball 60 degrees to blue's left, 0.8 m away: outside the default 80-degree view (40 each
    # side), inside a 150-degree one; ahead, both see it, smaller through the wider lens.
    ball = SEG_CLASSES.index("ball")
    seen = {}
    for fovy in (80.0, 150.0):
        env = envs.make("soccer-1v1", num_envs=2, cameras=("segmentation",), camera_fovy=fovy)
        env.reset(seed=0)
        side = (-1.0 + 0.8 * math.cos(math.pi / 3), 0.8 * math.sin(math.pi / 3), scene.BALL_RADIUS)
        place(env, 0, robots={0: (-1.0, 0.0, 0.0), 1: (1.5, -1.0, math.pi)}, ball=side)
        place(env, 1, robots={0: (-1.0, 0.0, 0.0), 1: (1.5, -1.0, math.pi)}, ball=(-0.2, 0.0, scene.BALL_RADIUS))
        seg = env.observe()["segmentation"][:, 0, 0]
        seen[fovy] = [int((seg[w] == ball).sum()) for w in range(2)]
        env.close()
    assert seen[80.0][0] == 0 and seen[150.0][0] > 0, seen
    assert seen[80.0][1] > seen[150.0][1] > 0, seen
    with pytest.raises(ValueError, match="camera_fovy"):
        envs.make("soccer-1v1", num_envs=1, camera_fovy=180.0)


def test_resolution_is_configurable_and_overview_renders():
    env = envs.make("soccer-1v1", num_envs=2, cameras=("rgb",), camera_resolution=(32, 24))
    obs = env.reset(seed=0)
    assert obs["camera"].shape == (2, 2, 3, 24, 32)
    frame = env.render_frame(1, resolution=(160, 120))
    assert frame.shape == (120, 160, 3) and frame.dtype == np.uint8 and frame.std() > 10
    env.close()


def test_cameras_see_each_worlds_own_walls(cam_env):
    # MuJoCo Warp computes world-welded geoms' poses once; the per-world pitch must still show.
    cam_env.reset(seed=3)
    assert abs(float(cam_env.half_width[0] - cam_env.half_width[1])) > 0.05
    for w in (0, 1):
        place(cam_env, w, robots={0: (0.0, 0.0, math.pi / 2), 1: (1.0, -1.0, 0.0)}, ball=(1.0, 1.0, scene.BALL_RADIUS))
    obs = cam_env.observe()
    for w in (0, 1):
        centre = obs["depth"][w, 0, 0, 30:34, 30:34].mean().item()
        expected = float(cam_env.half_width[w]) - (scene.ROBOT_RADIUS + 0.005)
        assert abs(centre - expected) < 0.02, (w, centre, expected)
        assert (obs["segmentation"][w, 0, 0, 30:34, 30:34] == SEG_CLASSES.index("wall")).all()


_SHARD_CHECK = """
import torch, envs
from envs.render import BatchRenderer
env = envs.make("soccer-1v1", num_envs=64)
env.reset(seed=1000)
views = [BatchRenderer(env.sim, ["blue0_cam"], (32, 32), ("rgb",), env.per_world_fields, shards=k) for k in (2, 1)]
images = [v.render()["rgb"] for v in views]
print("same" if torch.equal(*images) else "differ")
"""


@pytest.mark.slow
def test_parallel_shards_draw_what_one_shard_draws_in_fresh_processes():
    # Two shards loading Warp's render kernels on parallel threads at once left one of them
    # drawing other walls for the whole process, in about one process in three.
    import subprocess
    import sys

    for _ in range(6):
        out = subprocess.run([sys.executable, "-c", _SHARD_CHECK], capture_output=True, text=True, check=True)
        assert out.stdout.strip().splitlines()[-1] == "same"


def test_first_render_runs_the_shards_one_after_another():
    from envs.render import BatchRenderer

    env = envs.make("soccer-1v1", num_envs=4)
    env.reset(seed=0)
    r = BatchRenderer(env.sim, ["blue0_cam"], (16, 16), ("rgb",), env.per_world_fields, shards=2)
    calls = []
    pool_map = r.pool.map
    r.pool.map = lambda fn, shards: calls.append(len(shards)) or pool_map(fn, shards)
    first = r.render()["rgb"].clone()
    assert calls == []  # the first render loads the kernels: no parallel threads
    second = r.render()["rgb"]
    assert calls == [2] and torch.equal(first, second)
    r.close()
    env.close()
