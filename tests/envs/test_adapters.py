"""PettingZoo, SB3 and Gymnasium views pass their libraries' own checks."""

import numpy as np
import pytest
import torch
from pettingzoo.test import parallel_api_test, parallel_seed_test
from stable_baselines3.common.env_checker import check_env
from stable_baselines3.common.vec_env import VecEnv

import envs
from envs.soccer.scripted import ScriptedSoccer


@pytest.mark.parametrize("name", envs.registered())
def test_pettingzoo_parallel_api(name):
    # Short episodes where the env has the knob (the MuJoCo tasks; mpe-spread is 25 steps anyway).
    short = {"episode_seconds": 2.0} if hasattr(envs.config_for(name), "episode_seconds") else {}
    env = envs.make_parallel(name, **short)
    parallel_api_test(env, num_cycles=120)


def test_pettingzoo_seed():
    parallel_seed_test(lambda: envs.make_parallel("soccer-2v2", episode_seconds=2.0))


def test_pettingzoo_episode_ends_and_agents_empty():
    env = envs.make_parallel("soccer-1v1", episode_seconds=0.4)
    obs, infos = env.reset(seed=0)
    assert set(obs) == {"blue0", "red0"}
    steps = 0
    while env.agents:
        obs, rew, term, trunc, infos = env.step({a: env.action_space(a).sample() for a in env.agents})
        steps += 1
    assert steps == 10 and all(trunc.values())


def test_sb3_vecenv_slots_and_terminal_observation():
    venv = envs.make_sb3("soccer-2v2", num_envs=3, episode_seconds=0.2)
    assert isinstance(venv, VecEnv)
    assert venv.num_envs == 6  # 3 worlds x 2 learning agents
    obs = venv.reset()
    assert obs.shape == (6, 40)
    for _ in range(5):
        obs, rew, dones, infos = venv.step(np.zeros((6, 3), dtype=np.float32))
        assert rew.shape == (6,) and dones.shape == (6,)
    assert dones.all()  # 0.2 s = 5 control steps
    for info in infos:
        assert info["terminal_observation"].shape == (40,)
        assert info["TimeLimit.truncated"] is True
        assert info["episode"]["l"] == 5
    # After the auto-reset the returned observation is the new episode's, not the terminal one.
    assert not np.allclose(obs, np.stack([i["terminal_observation"] for i in infos]))


def test_sb3_opponent_is_the_callers_policy():
    calls = []

    def opponent(obs):
        calls.append(obs["privileged"].shape)
        return torch.zeros(obs["privileged"].shape[0], obs["privileged"].shape[1], 3)

    venv = envs.make_sb3("soccer-2v2", num_envs=2, opponent=opponent)
    venv.reset()
    venv.step(np.zeros((4, 3), dtype=np.float32))
    assert calls == [torch.Size([2, 2, 40])]


def test_sb3_check_env_on_single_world():
    # SB3's own env checker runs on a Gymnasium env; the one-world soccer with a scripted opponent.
    env = envs.make_gym("soccer-1v1", obs_groups=("privileged",))
    check_env(env, warn=False)


def test_sb3_ppo_runs_on_the_vecenv():
    from stable_baselines3 import PPO

    venv = envs.make_sb3("soccer-1v1", num_envs=4, opponent=ScriptedSoccer(1), episode_seconds=1.0)
    model = PPO("MlpPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=256)
    assert model.num_timesteps == 256
    assert len(model.ep_info_buffer) > 0  # episodes finished and were reported through infos


@pytest.mark.parametrize("task,mode", [("goal", "global"), ("line", "fov"), ("cross", "fov_gated")])
def test_egopush_gymnasium_registration_passes_check_env(task, mode):
    import gymnasium
    from gymnasium.utils.env_checker import check_env as gym_check_env

    env = gymnasium.make("egoteach/EgoPush-v0", task=task, observability=mode)
    assert env.unwrapped.env.cfg.observability == mode and env.unwrapped.env.cfg.task == task
    gym_check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    _, _, _, _, info = env.step(env.action_space.sample())
    assert {"success", "stage", "reach", "path_length"} <= set(info)


def test_sb3_vecenv_on_egopush_single_agent():
    venv = envs.make_sb3("egopush-goal", num_envs=3, episode_seconds=0.25)
    assert venv.num_envs == 3  # one agent per world, no opponent needed
    obs = venv.reset()
    assert obs.shape == (3, venv.observation_space.shape[0])
    for _ in range(5):
        obs, rew, dones, infos = venv.step(np.zeros((3, 2), dtype=np.float32))
    assert dones.all() and all("terminal_observation" in i for i in infos)


@pytest.mark.slow  # about a minute on 2 cores
def test_sb3_ppo_learns_on_the_batched_vecenv():
    """SB3's own PPO, on envs.make_sb3: the approach reward rises within a short budget."""
    from stable_baselines3 import PPO

    venv = envs.make_sb3(
        "egopush-goal", num_envs=16, episode_seconds=3.0, reward_scales={"approach": 1.0, "stage": 0.0, "success": 0.0}
    )

    def mean_return(model, episodes=32):
        obs = venv.reset()
        returns, total = [], np.zeros(venv.num_envs)
        while len(returns) < episodes:
            action, _ = model.predict(obs, deterministic=True)
            obs, rew, dones, _ = venv.step(action)
            total += rew
            returns += total[dones].tolist()
            total[dones] = 0
        return float(np.mean(returns))

    model = PPO("MlpPolicy", venv, n_steps=64, batch_size=256, n_epochs=5, learning_rate=1e-3, seed=0, device="cpu")
    before = mean_return(model)
    model.learn(total_timesteps=25_000)
    after = mean_return(model)
    assert after > before + 0.2, (before, after)
