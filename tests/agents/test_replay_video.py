"""Live replays draw every step, the final one included, and play a soccer match through (issue 51,
items 12 and 13's progress totals)."""

import numpy as np
import torch

import envs
from agents import replay
from agents.actor import GaussianActor
from agents.policies import make_policy
from envs.config import to_dict


def _spy_frames(monkeypatch):
    """Each frame drawn: (HUD text, world 0's qpos, the env)."""
    drawn = []
    real = replay.world_frame

    def world_frame(env, world, text, *args):
        drawn.append((" ".join(text), env.sim.get_state()["qpos"][world].clone(), env))
        return real(env, world, text, *args)

    monkeypatch.setattr(replay, "world_frame", world_frame)
    return drawn


def _spy_bars(monkeypatch):
    """(total, count) of each progress bar when it closes."""
    bars = []
    real = replay.tqdm

    class Bar(real):
        def close(self):
            if not getattr(self, "_counted", False):  # tqdm closes again when collected
                self._counted = True
                bars.append((self.total, self.n))
            super().close()

    monkeypatch.setattr(replay, "tqdm", Bar)
    return bars


def _final_state(seed):
    env = envs.make("egopush-goal", num_envs=1)
    policy = make_policy("scripted", env)
    obs = env.reset(seed=seed)
    steps = 0
    while True:
        obs, _, term, trunc, info = env.step(policy(obs))
        steps += 1
        if term[0] or trunc[0]:
            env.close()
            return steps, info["final_state"]["qpos"][0], bool(info["success"][0])


def test_live_replay_draws_the_final_step_of_a_solved_episode(tmp_path, monkeypatch):
    steps, final_qpos, solved = _final_state(seed=19)
    assert solved and steps < 1200, "the scripted player should solve this start"
    drawn = _spy_frames(monkeypatch)
    bars = _spy_bars(monkeypatch)
    cfg = replay.ReplayConfig(
        env="egopush-goal", policy="scripted", seed=19, out=tmp_path / "v.gif", width=48, ego_size=0
    )
    frames, _ = replay.replay(cfg)
    assert frames == len(drawn) == steps + 1  # the start and every step
    text, qpos, _ = drawn[-1]
    assert text.startswith(f"step {steps} ") and "success yes" in text
    torch.testing.assert_close(qpos, final_qpos.cpu(), rtol=0, atol=0)  # the final state, not the next start
    assert bars == [(steps + 1, steps + 1)]


def test_live_replay_of_a_truncated_episode_counts_every_frame(tmp_path, monkeypatch):
    bars = _spy_bars(monkeypatch)
    cfg = replay.ReplayConfig(env="egopush-goal", policy="random", seconds=0.5, out=tmp_path / "v.gif", width=48)
    frames, _ = replay.replay(cfg)
    assert frames == 11 and bars == [(11, 11)]  # 0.5 s at 20 Hz: the start and 10 steps


def test_soccer_checkpoint_replay_plays_on_after_a_goal(tmp_path, monkeypatch):
    env = envs.make("soccer-1v1", num_envs=1, on_goal="terminate")
    torch.manual_seed(0)
    actor = GaussianActor(env.observation_spaces["privileged"].shape[-1], env.act_dim, (16,))
    actor.save(tmp_path / "ckpt", env.name, to_dict(env.cfg))  # trained with a goal ending the episode
    drawn = _spy_frames(monkeypatch)
    cfg = replay.ReplayConfig(checkpoint=tmp_path / "ckpt", seconds=0.1, out=tmp_path / "v.gif", width=48, ego_size=0)
    replay.replay(cfg)
    assert drawn[-1][2].cfg.on_goal == "kickoff"
    assert np.isclose(drawn[-1][2].cfg.episode_seconds, 0.1)
