"""Evaluations show progress from their first step, train_teacher's final one included, and a learning
curve with no finished episode says so (issue 51, item 14)."""

import matplotlib.figure
import pytest
import torch

import envs
from agents import evaluate
from agents.actor import GaussianActor
from agents.policies import make_policy
from agents.ppo import train
from envs.config import to_dict


def _spy_bars(monkeypatch):
    """Every evaluation bar made: a dict with ``disable``, ``total`` and each count shown."""
    bars = []
    real = evaluate.tqdm

    class Bar(real):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.seen = {"disable": kwargs.get("disable", False), "total": kwargs.get("total"), "n": []}
            bars.append(self.seen)

        def update(self, n=1):
            super().update(n)
            self.seen["n"].append(self.n)

    monkeypatch.setattr(evaluate, "tqdm", Bar)
    return bars


def test_evaluation_bar_moves_before_the_first_episode_ends(monkeypatch):
    bars = _spy_bars(monkeypatch)
    env = envs.make("egopush-goal", num_envs=2, episode_seconds=1.0)  # 20 steps an episode
    evaluate.run_episodes(env, make_policy("random", env), 4, seed=0)
    (bar,) = bars
    ns = bar["n"]
    assert not bar["disable"] and bar["total"] == 4
    assert ns[9] == pytest.approx(2 * 10 / 20)  # half of each world's first episode after 10 steps
    assert ns == sorted(ns) and ns[-1] == pytest.approx(4)
    assert len(ns) == 40  # one update a step, not one an episode


def test_train_teachers_final_evaluation_shows_progress(tmp_path, monkeypatch):
    bars = _spy_bars(monkeypatch)
    env = envs.make("egopush-goal", num_envs=1, episode_seconds=0.5)
    torch.manual_seed(0)
    GaussianActor(env.observation_spaces["privileged"].shape[-1], env.act_dim, (16,)).save(
        tmp_path / "checkpoint", env.name, to_dict(env.cfg)
    )
    cfg = train.TrainConfig(env="egopush-goal", eval_episodes=2)
    train.write_model_card(cfg, tmp_path, 0, 1.0, to_dict(env.cfg), [])
    assert bars and all(not b["disable"] for b in bars)
    assert (tmp_path / "checkpoint" / "MODEL_CARD.md").is_file()


def test_learning_curve_with_no_finished_episode_says_so(tmp_path, monkeypatch, capsys):
    texts = []
    real = matplotlib.figure.Figure.savefig

    def savefig(fig, *args, **kwargs):
        texts.extend(t.get_text() for ax in fig.axes for t in ax.texts)
        return real(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    history = [{"iteration": i, "env_steps": 2048 * i, "reward/approach": 0.1} for i in (1, 2)]
    train.plot_learning_curve(history, tmp_path / "curve.png", "egopush-goal")
    assert (tmp_path / "curve.png").is_file()
    assert any("no episode finished in 4,096 env-steps" in t for t in texts)
    assert "no episode finished in 4,096 env-steps" in capsys.readouterr().out
