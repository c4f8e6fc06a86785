"""Wrong shapes and non-finite actions are refused; out-of-range actions are clipped;
a diverging world is reset on its own and counted, the others go on untouched."""

import pytest
import torch

import envs


def test_wrong_shape_names_expected(soccer1):
    soccer1.reset(seed=0)
    with pytest.raises(ValueError, match=r"\[4, 2, 3\]"):
        soccer1.step(torch.zeros(4, 3))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_actions_refused(soccer1, bad):
    soccer1.reset(seed=0)
    a = torch.zeros(4, 2, 3)
    a[2, 1, 0] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        soccer1.step(a)


def test_out_of_range_actions_are_clipped():
    e1 = envs.make("soccer-1v1", num_envs=2)
    e2 = envs.make("soccer-1v1", num_envs=2)
    e1.reset(seed=3)
    e2.reset(seed=3)
    a = torch.full((2, 2, 3), 0.7)
    a[:, :, 0] = 1.0
    big = a.clone()
    big[:, :, 0] = 50.0
    for _ in range(5):
        o1, *_ = e1.step(a)
        o2, *_ = e2.step(big)
    assert torch.equal(e1.sim.qpos, e2.sim.qpos)
    assert torch.equal(o1["proprio"], o2["proprio"])  # the clipped action is what is seen


def test_diverging_world_is_reset_and_counted(soccer1):
    soccer1.reset(seed=0)
    zero = torch.zeros(4, 2, 3)
    for _ in range(3):
        soccer1.step(zero)
    before = soccer1.sim.qpos.clone()
    soccer1.sim.qvel[1, 0] = float("nan")  # world 1's ball blows up
    obs, reward, term, trunc, info = soccer1.step(zero)
    assert info["diverged"].tolist() == [False, True, False, False]
    assert info["num_diverged"] == 1 and soccer1.num_diverged == 1
    assert bool(trunc[1]) and not bool(term[1])
    assert soccer1.episode_length[1] == 0  # a fresh episode
    assert torch.isfinite(soccer1.sim.qpos).all() and torch.isfinite(obs["privileged"]).all()
    # The other worlds went on: their robots stood still under zero commands.
    others = [0, 2, 3]
    assert torch.allclose(soccer1.sim.qpos[others, 7:], before[others, 7:], atol=1e-3)
    assert soccer1.episode_length[others].tolist() == [4, 4, 4]
