"""The report seed (issue 55, item 1): shipped figures are reported there, over at least 400
episodes, and the trainers refuse it for training and for their own evaluation."""

import dataclasses

import pytest

from agents import evaluate
from agents.evaluate import REPORT_EPISODES, REPORT_SEED, EvalConfig
from agents.ppo.algorithm import PPOConfig


def test_a_report_runs_at_the_report_seed_over_at_least_400_episodes(tmp_path):
    cfg = EvalConfig(
        env="soccer-1v1", policy="scripted", opponent="random", episodes=8, num_envs=64, seed=5, report=True,
        env_overrides='{"episode_seconds": 0.2, "nthread": 1}', json=tmp_path / "r.json",
    )  # fmt: skip
    result = evaluate.evaluate(cfg)
    assert (result["seed"], result["episodes"], result["report"]) == (REPORT_SEED, REPORT_EPISODES, True)
    plain = evaluate.evaluate(dataclasses.replace(cfg, report=False, json=None))
    assert (plain["seed"], plain["episodes"], plain["report"]) == (5, 8, False)


def test_the_teacher_trainer_refuses_the_report_seed_for_training_and_for_its_evaluation(tmp_path):
    from agents.ppo.train import TrainConfig, train

    base = TrainConfig(env="egopush-goal", num_envs=2, total_steps=32, eval_episodes=0, ppo=PPOConfig(hidden=(8,)))
    with pytest.raises(ValueError, match=f"--seed \\(\\+ rank\\) {REPORT_SEED} is the report seed"):
        train(dataclasses.replace(base, seed=REPORT_SEED, run_dir=tmp_path / "a"))
    with pytest.raises(ValueError, match=f"--eval-seed {REPORT_SEED} is the report seed"):
        train(dataclasses.replace(base, eval_seed=REPORT_SEED, run_dir=tmp_path / "b"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_the_student_trainer_refuses_the_report_seed(tmp_path):
    from distill.train import DistillConfig, distill

    cfg = DistillConfig(teacher=tmp_path / "no-teacher-needed", seed=REPORT_SEED, run_dir=tmp_path / "s")
    with pytest.raises(ValueError, match=f"--seed \\(\\+ rank\\) {REPORT_SEED} is the report seed"):
        distill(cfg)
