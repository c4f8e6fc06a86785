"""RL fine-tuning of a distilled student: the critic warms up, then a KL pull toward the teacher."""

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

from distill.dagger import DaggerConfig, Distiller
from distill.students import Student, StudentConfig
from distill.teacher_env import make_distill_env

ROOT = Path(__file__).resolve().parents[2]
GOAL_TEACHER = ROOT / "checkpoints" / "egopush-goal-teacher"
LINE_TEACHER = ROOT / "checkpoints" / "egopush-line-teacher-global"


def _rollout_kl(ppo: Any, data: dict[str, Any]) -> float:
    """Mean KL(teacher || student) over a fine-tuning rollout, the student as it is now."""
    from agents.ppo.algorithm import gaussian_kl

    t_std = ppo.teacher.log_std.exp()
    with torch.no_grad():
        kls = []
        for mb, student_dist in ppo.minibatches(data):
            dist = student_dist()
            kls.append(float(gaussian_kl(mb["teacher_mu"], t_std.expand_as(dist.mean), dist.mean, dist.stddev).mean()))
    return sum(kls) / len(kls)


@pytest.mark.parametrize("memory", ["none", "gru"])
def test_rl_finetuning_warms_the_critic_then_pulls_toward_the_teacher(tmp_path: Path, memory: str) -> None:
    from distill.finetune import FinetuneConfig, StudentPPO

    env = make_distill_env(GOAL_TEACHER, num_envs=4, camera_resolution=(32, 32))
    d = Distiller(env, GOAL_TEACHER, StudentConfig(memory=memory, embed=16, hidden=32), DaggerConfig(), 64, 0, tmp_path)
    cfg = FinetuneConfig(kl_coef=5.0, lr=3e-3, steps_per_env=16, epochs=2, minibatches=2, critic_warmup=1)
    ppo = StudentPPO(env, d.student, d.teacher, cfg, 0, d.learners)
    before = {k: v.clone() for k, v in d.student.state_dict().items()}
    warm = ppo.update(ppo.rollout())
    assert warm["finetune/kl_teacher"] == 0.0
    assert all(torch.equal(before[k], v) for k, v in d.student.state_dict().items())  # only the critic moved
    # Updates on one rollout bring the student's actions on its states toward the teacher's
    # labels (the KL is measured on that rollout, with the memory it acted with for a GRU).
    data = ppo.rollout()
    kls = [_rollout_kl(ppo, data)]
    for _ in range(16):
        ppo.update(data)
        kls.append(_rollout_kl(ppo, data))
    env.close()
    assert kls[-1] < kls[8] < kls[0] and kls[-1] < 0.6 * kls[0], kls
    with pytest.raises(ValueError, match="memory 'transformer'"):
        student = Student("depth_layers", (3, 32, 32), 4, 2, StudentConfig(memory="transformer"))
        StudentPPO(env, student, d.teacher, cfg, 0, [0])


def test_rl_finetuning_of_a_gru_student_replays_its_rollouts_from_the_memory_it_acted_with(tmp_path: Path) -> None:
    from distill.finetune import FinetuneConfig, StudentPPO

    # Episodes of 6 steps in rollouts of 16: resets inside rollouts, and memory carried across them.
    env = make_distill_env(GOAL_TEACHER, num_envs=4, camera_resolution=(32, 32), episode_seconds=0.28)
    assert env.max_episode_steps == 6
    d = Distiller(env, GOAL_TEACHER, StudentConfig(memory="gru", embed=16, hidden=32), DaggerConfig(), 64, 0, tmp_path)
    cfg = FinetuneConfig(kl_coef=5.0, lr=3e-3, steps_per_env=16, epochs=2, minibatches=2, critic_warmup=1)
    ppo = StudentPPO(env, d.student, d.teacher, cfg, 0, d.learners)
    ppo.update(ppo.rollout())  # critic warm-up
    data = ppo.rollout()  # the second rollout starts from the memory the first left
    assert data["first"][1:].any() and not data["first"][0].all() and data["h0"].abs().sum() > 0
    # Before any update of the student, the replay gives the log-probabilities it sampled with;
    # without the stored memory, or without the cuts at episode starts, it would not.
    with torch.no_grad():
        for mb, dist in ppo.minibatches(data):
            replay = dist().log_prob(mb["actions"]).sum(-1)
            torch.testing.assert_close(replay, mb["log_probs"], atol=1e-4, rtol=1e-4)
        cols = torch.arange(ppo.N)
        seq = {k: data[k][:, cols].transpose(0, 1) for k in ("img", "proprio", "first")}
        cold, _ = d.student(seq["img"], seq["proprio"], seq["first"])  # memory empty at the start
        uncut, _ = d.student(seq["img"], seq["proprio"], torch.zeros_like(seq["first"]), data["h0"])
        lp = lambda mu: ppo.normal(mu.flatten(0, 1)).log_prob(data["actions"].transpose(0, 1).flatten(0, 1)).sum(-1)  # noqa: E731
        logp = data["log_probs"].transpose(0, 1).flatten()
        assert not torch.allclose(lp(cold), logp, atol=1e-3) and not torch.allclose(lp(uncut), logp, atol=1e-3)
    env.close()


def test_adaptive_kl_coefficient_follows_its_target(tmp_path: Path) -> None:
    from distill.finetune import FinetuneConfig, StudentPPO

    env = make_distill_env(GOAL_TEACHER, num_envs=2, camera_resolution=(32, 32))
    d = Distiller(env, GOAL_TEACHER, StudentConfig(embed=16, hidden=32), DaggerConfig(), 64, 0, tmp_path)
    high = FinetuneConfig(kl_coef=1.0, steps_per_env=8, epochs=1, minibatches=1, critic_warmup=1, kl_target=1e-6)
    ppo = StudentPPO(env, d.student, d.teacher, high, 0, d.learners)
    stats = [ppo.update(ppo.rollout()) for _ in range(3)]
    assert [s["finetune/kl_coef"] for s in stats] == [1.0, 1.5, 2.25]  # warm-up, then a KL far above
    low = StudentPPO(env, d.student, d.teacher, dataclasses.replace(high, kl_target=1e6), 0, d.learners)
    stats = [low.update(low.rollout()) for _ in range(3)]
    env.close()
    assert [s["finetune/kl_coef"] for s in stats] == [1.0, 1.0 / 1.5, 1.0 / 2.25]
