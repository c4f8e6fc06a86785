"""Inputs a robot has (issue 55, item 2): depth layers by box identity, which do not change when the
env decides a box is placed, and wheel speeds with a slip and noise of their own."""

import pytest
import torch
from conftest import place_push

import envs
from envs.egopush.tasks import SPACING

ZERO = torch.zeros(1, 1, 2)


def _layers_showing_box_1(layers):
    """The depth layers with pixels, when only the anchor and box 1 are in view."""
    return [c for c in range(layers.shape[0]) if (layers[c] > 0).any()]


def _see(env, box1):
    # The robot faces the line from 1 m; box 2 is behind it, out of view.
    place_push(env, 0, robot=(-1.0, SPACING, 0.0), boxes={0: (0.0, 0.0, 0.0), 1: box1, 2: (-1.8, -1.5, 0.0)})
    return env.observe()["depth_layers"][0, 0]


@pytest.mark.parametrize("layers", ["role", "identity"])
def test_identity_layers_do_not_change_when_a_box_is_placed(layers):
    env = envs.make("egopush-line", num_envs=1, cameras=("depth_layers",), depth_layers=layers)
    env.reset(seed=0)
    before = _see(env, (0.0, SPACING + 0.25, 0.0))  # box 1 not yet in place: the active box
    assert not env.placed_mask()[0, 0]
    after = _see(env, (0.0, SPACING, 0.0))  # now placed: box 2 becomes the active one
    assert env.placed_mask()[0, 0]
    if layers == "role":  # the layer follows the env's decision: active (0) -> obstacle (2)
        assert _layers_showing_box_1(before) == [0, 1] and _layers_showing_box_1(after) == [1, 2]
    else:  # anchor first, box 1 in the layer drawn for this episode, before and after alike
        own = int(env.identity[0, 1])
        assert own in (1, 2) and _layers_showing_box_1(before) == _layers_showing_box_1(after) == [0, own]


def test_identity_order_is_drawn_per_episode_and_the_goal_region_comes_first():
    env = envs.make("egopush-goal", num_envs=64, n_boxes=3, cameras=("depth_layers",), depth_layers="identity")
    env.reset(seed=1)
    assert env.observation_spaces["depth_layers"].shape == (4, 64, 64)
    table = env.identity  # [W, boxes + region]
    assert (table[:, 3] == 0).all() and sorted(table[0, :3].tolist()) == [1, 2, 3]
    assert len({tuple(r) for r in table[:, :3].tolist()}) > 1  # not the same order in every world


def test_wheel_slip_and_noise_read_the_wheels_off_and_the_default_draws_nothing():
    exact = envs.make("egopush-line", num_envs=4)
    same = envs.make("egopush-line", num_envs=4, wheel_slip=0.0, wheel_noise=0.0)
    noisy = envs.make("egopush-line", num_envs=4, wheel_slip=0.2, wheel_noise=0.05)
    drive = torch.tensor([[[1.0, 0.3]]]).expand(4, 1, 2)
    for env in (exact, same, noisy):
        env.reset(seed=3)
        for _ in range(5):
            obs, *_ = env.step(drive)
        env.wheels = obs["proprio"][:, 0, :2]
    assert torch.equal(exact.wheels, same.wheels)
    assert torch.equal(exact.generator.get_state(), same.generator.get_state())  # nothing drawn
    scale = noisy.wheel_scale
    assert ((scale >= 0.8) & (scale <= 1.2)).all() and not torch.allclose(scale, torch.ones_like(scale))
    assert not torch.allclose(noisy.wheels, exact.wheels, atol=1e-3)
    with pytest.raises(ValueError, match="wheel_slip must be a number >= 0.0 and <= 1.0"):
        envs.make("egopush-line", num_envs=1, wheel_slip=1.5)
    with pytest.raises(ValueError, match="depth_layers must be one of"):
        envs.make("egopush-line", num_envs=1, depth_layers="colour")
