"""One conformance sweep over every registered env: shapes, dtypes, spaces, auto-reset."""

import numpy as np
import pytest
import torch

import envs


@pytest.mark.parametrize("name", envs.registered())
def test_env_conforms_to_contract(name):
    env = envs.make(name, num_envs=3)
    W, A = env.num_envs, env.num_agents
    assert len(env.agents) == A and W == 3
    obs = env.reset(seed=1)
    assert set(obs) == set(env.observation_spaces)
    for key, space in env.observation_spaces.items():
        assert obs[key].shape == (W, A, *space.shape), key
        assert obs[key].dtype == getattr(torch, np.dtype(space.dtype).name), key
        assert torch.isfinite(obs[key].float()).all(), key
    saw_done = False
    for _ in range(env.max_episode_steps + 1):
        actions = torch.rand(W, A, env.act_dim) * 2 - 1
        obs, reward, term, trunc, info = env.step(actions)
        assert reward.shape == (W, A) and reward.dtype == torch.float32
        assert term.shape == (W,) and term.dtype == torch.bool
        assert trunc.shape == (W,) and trunc.dtype == torch.bool
        assert set(info["reward_terms"]) == set(env.reward_scales())
        done = term | trunc
        if done.any():
            saw_done = True
            assert set(info["final_obs"]) == set(obs)
            # Auto-reset: finished worlds start again from step 0.
            assert (env.episode_length[done] == 0).all()
    assert saw_done, "the time limit never ended an episode"
    env.close()


def test_unknown_names_and_keys_list_the_valid_ones():
    with pytest.raises(ValueError, match="soccer-1v1"):
        envs.make("socer-1v1")
    with pytest.raises(ValueError, match="team_size"):
        envs.make("soccer-1v1", teamsize=2)
    with pytest.raises(ValueError, match="vel_to_ball"):
        envs.make("soccer-1v1", reward_scales={"vel_to_bal": 1.0})


def test_larger_teams_by_config():
    env = envs.make("soccer-2v2", num_envs=2, team_size=4)
    obs = env.reset(seed=0)
    assert env.num_agents == 8
    assert obs["privileged"].shape == (2, 8, 16 + 12 * 4)
    with pytest.raises(ValueError, match="team_size"):
        envs.make("soccer-1v1", team_size=5)
