"""``from_pettingzoo``: a peer PettingZoo env batched into the contract, and ``mpe-spread`` on it."""

import numpy as np
import pytest
import torch
from mpe2 import simple_adversary_v3, simple_spread_v3

import envs
from envs.mpe import SpreadState, coverage
from envs.pettingzoo import from_pettingzoo
from envs.policies import fixed_policy


def spread(n: int = 2, cycles: int = 4):
    return lambda: simple_spread_v3.parallel_env(N=n, max_cycles=cycles, continuous_actions=True)


def test_from_pettingzoo_passes_the_contract_sweep():
    env = from_pettingzoo(spread(2, 4), num_envs=3)
    assert env.max_episode_steps == 4  # taken from the peer env's max_cycles
    obs = env.reset(seed=0)
    assert obs["privileged"].shape == (3, 2, *env.observation_spaces["privileged"].shape)
    assert obs["privileged"].dtype == torch.float32
    for t in range(4):
        obs, reward, term, trunc, info = env.step(torch.zeros(3, 2, env.act_dim))
        assert reward.shape == (3, 2) and reward.dtype == torch.float32
        assert term.shape == (3,) and term.dtype == torch.bool and not term.any()
        assert trunc.tolist() == [t == 3] * 3
    # Auto-reset: the final observation is kept, the returned one starts the next episode.
    assert info["final_obs"]["privileged"].shape == obs["privileged"].shape
    assert not torch.equal(info["final_obs"]["privileged"], obs["privileged"])
    assert (env.episode_length == 0).all()


def test_actions_in_minus_one_one_map_onto_the_peer_box():
    env = from_pettingzoo(spread(), num_envs=1)
    a = torch.tensor([[[-1.0, 0.0, 1.0, 0.5, -0.5]] * 2])
    assert np.allclose(env.to_peer_actions(a)[0, 0], [0.0, 0.5, 1.0, 0.75, 0.25])  # Box(0, 1)


def test_a_seed_reproduces_every_world_and_worlds_differ():
    a, b = (from_pettingzoo(spread(), num_envs=2) for _ in range(2))
    oa, ob = a.reset(seed=7), b.reset(seed=7)
    assert torch.equal(oa["privileged"], ob["privileged"])
    assert not torch.equal(oa["privileged"][0], oa["privileged"][1])
    act = torch.rand(2, 2, 5) * 2 - 1
    for _ in range(6):  # across an auto-reset too
        oa, *_ = a.step(act)
        ob, *_ = b.step(act)
    assert torch.equal(oa["privileged"], ob["privileged"])
    assert not torch.equal(a.reset(seed=8)["privileged"], b.reset(seed=7)["privileged"])


def test_heterogeneous_agents_are_refused_by_name():
    with pytest.raises(ValueError, match="homogeneous"):
        from_pettingzoo(lambda: simple_adversary_v3.parallel_env(continuous_actions=True), num_envs=1)


def test_bad_actions_name_the_expected_shape():
    env = from_pettingzoo(spread(), num_envs=2)
    with pytest.raises(ValueError, match=r"\[2, 2, 5\]"):
        env.step(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="NaN"):
        env.step(torch.full((2, 2, 5), float("nan")))


def test_spread_coverage_counts_landmarks_within_the_capture_radius():
    env = envs.make("mpe-spread", num_envs=1)
    peer = env.envs[0]
    world = peer.unwrapped.world
    for i, lm in enumerate(world.landmarks):
        lm.state.p_pos = np.array([float(i), 0.0])
    world.agents[0].state.p_pos = np.array([0.05, 0.0])  # covers landmark 0
    world.agents[1].state.p_pos = np.array([1.0, 0.09])  # covers landmark 1
    world.agents[2].state.p_pos = np.array([2.0, 0.11])  # just misses landmark 2
    assert coverage(peer) == pytest.approx(2 / 3)
    world.agents[2].state.p_pos = np.array([2.0, 0.0])
    assert coverage(peer) == 1.0


def test_spread_state_round_trips_through_the_sim_view():
    env = envs.make("mpe-spread", num_envs=2)
    env.reset(seed=3)
    state = env.sim.get_state()
    assert state["p_pos"].shape == (2, 12)  # 3 agents + 3 landmarks, x and y
    before = env.observe()["privileged"].clone()
    env.step(torch.ones(2, 3, 5))
    env.sim.set_state([1], {k: v[1:2] for k, v in state.items()})
    # World 1's positions are back; its observation (computed from them) with them.
    assert torch.equal(env.sim.get_state()["p_pos"][1], state["p_pos"][1])
    obs = [
        env.envs[1].unwrapped.scenario.observation(a, env.envs[1].unwrapped.world)
        for a in env.envs[1].unwrapped.world.agents
    ]
    assert np.allclose(np.stack(obs), before[1].numpy(), atol=1e-6)
    assert isinstance(SpreadState().get(env.envs[0]), dict)


def test_restore_continues_every_episode_exactly():
    env = envs.make("mpe-spread", num_envs=2)
    env.reset(seed=5)
    g = torch.Generator().manual_seed(0)
    acts = [torch.rand(2, 3, 5, generator=g) * 2 - 1 for _ in range(40)]
    for a in acts[:20]:
        env.step(a)
    snap = env.snapshot()

    def run():
        out = []
        for a in acts[20:]:  # across the auto-reset at step 25
            obs, rew, term, trunc, _ = env.step(a)
            out.append(torch.cat((obs["privileged"].flatten(), rew.flatten(), trunc.float())))
        return torch.stack(out)

    first = run()
    env.restore(snap)
    torch.testing.assert_close(run(), first, rtol=0, atol=0)


def test_the_scripted_spread_player_covers_the_landmarks_and_random_does_not():
    env = envs.make("mpe-spread", num_envs=16)
    rates = {}
    for name in ("scripted", "random"):
        policy = fixed_policy(name, env, seed=0)
        obs = env.reset(seed=0)
        for _ in range(env.max_episode_steps):
            obs, _, _, trunc, info = env.step(policy(obs))
        assert trunc.all()
        rates[name] = info["success"].mean().item()
    assert rates["scripted"] > 0.7 and rates["random"] < 0.1, rates


def test_the_critic_group_joins_every_agents_observation_after_its_own():
    env = from_pettingzoo(spread(3, 4), num_envs=2)
    obs = env.reset(seed=0)
    own, critic = obs["privileged"], obs["critic"]
    assert critic.shape == (2, 3, 18 + 3 * 18)
    for a in range(3):
        assert torch.equal(critic[:, a, :18], own[:, a])
        assert torch.equal(critic[:, a, 18:], own.reshape(2, 54))
