"""Actions: only real floating or integer numbers, cut from any autograd graph; the SB3 and
PettingZoo adapters refuse an action array of the wrong size and a missing agent's action."""

import numpy as np
import pytest
import torch

import envs


@pytest.fixture(scope="module")
def soccer():
    env = envs.make("soccer-1v1", num_envs=2, episode_seconds=2.0)
    yield env
    env.close()


BAD_DTYPES = [
    torch.zeros(2, 2, 3, dtype=torch.bool),
    torch.zeros(2, 2, 3, dtype=torch.complex64),
    np.zeros((2, 2, 3), dtype=bool),
    np.zeros((2, 2, 3), dtype=np.complex128),
    np.full((2, 2, 3), "0.5"),
    np.full((2, 2, 3), None, dtype=object),
    [[["0.1", "0.2", "0.3"]] * 2] * 2,
]


@pytest.mark.parametrize("actions", BAD_DTYPES, ids=lambda a: type(a).__name__ + "-" + str(getattr(a, "dtype", "list")))
def test_bool_complex_string_and_object_actions_are_refused(soccer, actions):
    soccer.reset(seed=0)
    with pytest.raises(TypeError, match="actions must be .*real floating or integer numbers"):
        soccer.step(actions)


@pytest.mark.parametrize(
    "actions",
    [
        torch.zeros(2, 2, 3, dtype=torch.float64),
        torch.zeros(2, 2, 3, dtype=torch.float16),
        torch.zeros(2, 2, 3, dtype=torch.int64),
        np.zeros((2, 2, 3), dtype=np.int32),
        np.zeros((2, 2, 3), dtype=np.float64),
        [[[0.0, 0, 0]] * 2] * 2,
    ],
    ids=str,
)
def test_real_floating_and_integer_actions_are_accepted(soccer, actions):
    soccer.reset(seed=0)
    soccer.step(actions)


def test_an_action_that_requires_grad_leaks_no_gradient(soccer):
    soccer.reset(seed=0)
    actions = torch.full((2, 2, 3), 0.5, requires_grad=True)
    obs, reward, *_ = soccer.step(actions * 1.0)
    assert not any(v.requires_grad for v in obs.values())
    assert not reward.requires_grad and not soccer.prev_action.requires_grad
    assert actions.grad is None


def test_sb3_refuses_a_wrong_size_action_array_with_the_shape_it_expects():
    venv = envs.make_sb3("soccer-1v1", num_envs=4, episode_seconds=1.0)
    venv.reset()
    for bad in (np.zeros(4), np.zeros((2, 6)), np.zeros((1, 3)), np.zeros((4, 3, 1))):
        with pytest.raises(ValueError, match=r"actions must have shape \(slots, act_dim\) = \(4, 3\)"):
            venv.step_async(bad)
    with pytest.raises(TypeError, match="real floating or integer"):
        venv.step_async(np.zeros((4, 3), dtype=bool))
    venv.step_async(np.zeros((4, 3), dtype=np.float32))
    obs, rew, dones, infos = venv.step_wait()
    assert obs.shape[0] == 4
    venv.close()


def test_pettingzoo_refuses_a_missing_agents_action():
    env = envs.make_parallel("soccer-2v2", episode_seconds=1.0)
    env.reset(seed=0)
    acts = {a: np.zeros(3, dtype=np.float32) for a in env.agents}
    missing = dict(acts)
    del missing["red1"]
    with pytest.raises(ValueError, match=r"no action for live agent\(s\) \['red1'\]"):
        env.step(missing)
    with pytest.raises(TypeError, match="action of blue0 must be real floating or integer"):
        env.step({**acts, "blue0": np.array([True, False, True])})
    env.step(acts)  # all of them: fine
    env.close()


def test_gym_refuses_non_numeric_actions():
    env = envs.make_gym("egopush-goal", episode_seconds=1.0)
    env.reset(seed=0)
    with pytest.raises(TypeError, match="action must be real floating or integer"):
        env.step(np.array(["1", "0"]))
    env.step(np.zeros(2, dtype=np.float32))
    env.close()
