"""PPO: GAE and losses against hand-worked numbers, seeds, and exact resumption."""

import dataclasses
import math
import re

import pytest
import torch

import envs
from agents.ppo.algorithm import PPOConfig, gaussian_kl, surrogate_loss, value_loss
from agents.ppo.learner_env import LearnerEnv
from agents.ppo.runner import Runner
from agents.ppo.storage import gae


def _train_teacher():
    """``agents.ppo.train``: what ``scripts/train_teacher.py`` runs."""
    from agents.ppo import train

    return train


def _small_source(tmp_path, name):
    """A tiny egopush-goal teacher (2 x 16 units, 128 env-steps) to warm-start from: the config it
    was trained with, its checkpoint folder and its actor."""
    train_teacher = _train_teacher()
    from agents.actor import GaussianActor

    base = train_teacher.TrainConfig(
        env="egopush-goal",
        num_envs=4,
        total_steps=128,
        eval_episodes=0,
        ppo=PPOConfig(steps_per_env=16, hidden=(16, 16)),
    )
    src = train_teacher.train(dataclasses.replace(base, run_dir=tmp_path / name))
    return base, src / "checkpoint", GaussianActor.load(src / "checkpoint")[0]


def test_gae_matches_hand_worked_values():
    # One slot, 3 steps, gamma 0.5, lambda 0.5; the episode ends (terminal) at step 1.
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[0.5], [1.0], [2.0]])
    dones = torch.tensor([[0.0], [1.0], [0.0]])
    zero = torch.zeros(3, 1)
    adv, ret = gae(rewards, values, dones, zero, torch.tensor([4.0]), gamma=0.5, lam=0.5)
    # t=2: delta = 3 + 0.5*4 - 2 = 3;          A2 = 3
    # t=1: delta = 2 + 0 - 1 = 1 (terminal);   A1 = 1
    # t=0: delta = 1 + 0.5*1 - 0.5 = 1;        A0 = 1 + 0.25 * 1 = 1.25
    torch.testing.assert_close(adv[:, 0], torch.tensor([1.25, 1.0, 3.0]))
    torch.testing.assert_close(ret[:, 0], torch.tensor([1.75, 2.0, 5.0]))
    # A time limit at step 1 with V(final) = 6 adds gamma * 6 to that step's reward.
    boot = torch.tensor([[0.0], [6.0], [0.0]])
    adv, _ = gae(rewards, values, dones, boot, torch.tensor([4.0]), gamma=0.5, lam=0.5)
    torch.testing.assert_close(adv[:, 0], torch.tensor([1.25 + 0.25 * 3.0, 4.0, 3.0]))


def test_losses_match_hand_worked_values():
    # ratios e^{0.5} = 1.6487 (clipped to 1.2 for A > 0) and e^{-0.5} = 0.6065 (clipped to 0.8 for A < 0)
    logp = torch.tensor([0.5, -0.5])
    old = torch.zeros(2)
    adv = torch.tensor([2.0, -1.0])
    # min(1.6487 * 2, 1.2 * 2) = 2.4 ; min(0.6065 * -1, 0.8 * -1) = -0.8 ; loss = -(2.4 - 0.8) / 2
    torch.testing.assert_close(surrogate_loss(logp, old, adv, 0.2), torch.tensor(-0.8))
    # value 3 from old 1 (clipped to 1.2), return 2: max(1, 0.64) = 1 ; value 0 from old 0, return 1: 1
    v = value_loss(torch.tensor([3.0, 0.0]), torch.tensor([1.0, 0.0]), torch.tensor([2.0, 1.0]), 0.2)
    torch.testing.assert_close(v, torch.tensor(1.0))
    # KL of N(0, 1) to N(1, 2): log 2 + (1 + 1) / 8 - 1/2
    kl = gaussian_kl(torch.zeros(1), torch.ones(1), torch.ones(1), torch.full((1,), 2.0))
    torch.testing.assert_close(kl, torch.tensor(math.log(2) + 0.25 - 0.5))


def _runner(tmp_path, seed, total=4 * 8 * 4, name="run", **ppo):
    env = envs.make("egopush-goal", num_envs=4, episode_seconds=0.6, reward_scales={"approach": 1.0})
    cfg = PPOConfig(steps_per_env=8, minibatches=2, epochs=2, hidden=(16, 16), **ppo)
    learner = LearnerEnv(env, "privileged", "critic")
    return Runner(learner, cfg, total, seed, tmp_path / name, env.name, {})


def _weights(runner):
    return torch.cat([p.detach().flatten() for p in list(runner.actor.parameters()) + list(runner.critic.parameters())])


def test_same_seed_same_weights_other_seed_differs(tmp_path):
    a, b, c = _runner(tmp_path, 0, name="a"), _runner(tmp_path, 0, name="b"), _runner(tmp_path, 1, name="c")
    for r in (a, b, c):
        r.learn(progress=False)
    assert a.iteration == 4
    assert torch.equal(_weights(a), _weights(b))
    assert not torch.allclose(_weights(a), _weights(c))


def test_interrupted_and_resumed_run_ends_with_the_same_weights(tmp_path):
    whole = _runner(tmp_path, 3, name="whole")
    whole.learn(progress=False)
    first = _runner(tmp_path, 3, name="cut")
    first.total_updates = 2  # stop halfway, as Ctrl-C after two updates would (and save)
    first.learn(progress=False)
    again = _runner(tmp_path, 3, name="cut")
    again.load()
    assert again.iteration == 2
    again.learn(progress=False)
    assert again.iteration == 4
    assert torch.equal(_weights(whole), _weights(again))


def test_sigterm_mid_update_stops_at_the_iteration_end_and_resumes_to_the_same_weights(tmp_path):
    # SIGTERM (kill PID, a scheduler's stop) arrives in the middle of the second update: the run
    # finishes that iteration, saves, and stops; resumed, it ends where an uninterrupted run does.
    import os
    import signal

    whole = _runner(tmp_path, 5, name="whole")
    whole.learn(progress=False)
    cut = _runner(tmp_path, 5, name="cut")
    update, calls = cut.ppo.update, []

    def update_then_signal(*args):
        calls.append(1)
        out = update(*args)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    cut.ppo.update = update_then_signal
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        cut.learn(progress=False)
    assert signal.getsignal(signal.SIGTERM) is before  # handler restored
    assert len(calls) == 2 and cut.iteration == 2
    again = _runner(tmp_path, 5, name="cut")
    again.load()
    assert again.iteration == 2
    again.learn(progress=False)
    assert torch.equal(_weights(whole), _weights(again))
    assert not torch.equal(_weights(whole), _weights(_runner(tmp_path, 5, name="fresh")))


def test_crash_after_a_periodic_checkpoint_resumes_to_the_same_weights(tmp_path):
    # A crash (not Ctrl-C: nothing is saved then) in the fourth of four updates: with a checkpoint
    # every two updates the run resumes from update 2 and ends as one never stopped; the rows
    # logged after that checkpoint are not left twice in metrics.jsonl.
    import json

    whole = _runner(tmp_path, 7, name="whole")
    whole.learn(progress=False)
    cut = _runner(tmp_path, 7, name="cut")
    cut.save_every = 2
    update, calls = cut.ppo.update, []

    def update_or_crash(*args):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("simulated crash")
        return update(*args)

    cut.ppo.update = update_or_crash
    with pytest.raises(RuntimeError, match="simulated crash"):
        cut.learn(progress=False)
    rows = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["iteration"] for r in rows] == [1, 2, 3]
    again = _runner(tmp_path, 7, name="cut")
    again.load()
    assert again.iteration == 2
    again.learn(progress=False)
    assert torch.equal(_weights(whole), _weights(again))
    rows = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["iteration"] for r in rows] == [1, 2, 3, 4]


def test_second_signal_stops_at_once():
    import os
    import signal

    from agents.run_state import stop_at_iteration_end

    with stop_at_iteration_end() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.signum == signal.SIGTERM  # first: only recorded
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs between bytecodes
                pass


def test_learning_curve_weights_iterations_by_their_episodes_and_forgets_old_ones(tmp_path):
    from agents.run_state import episode_rate, read_metrics, write_metrics

    history = [
        {"env_steps": 10, "episode/success_rate": 0.0, "episode/count": 99.0},
        {"env_steps": 20, "loss/value": 1.0},  # no episode ended: no point
        {"env_steps": 30, "episode/success_rate": 1.0, "episode/count": 1.0},  # one short success
        {"env_steps": 40, "episode/success_rate": 1.0, "episode/count": 100.0},
    ]
    write_metrics(tmp_path, history)
    xs, ys = episode_rate(read_metrics(tmp_path), "episode/success_rate", "env_steps", episodes=100)
    assert xs == [10, 30, 40]
    # 1 success among 100 episodes, not 100%; then the 100 new episodes push the 99 failures out.
    assert ys == pytest.approx([0.0, 0.01, 1.0])
    with pytest.raises(FileNotFoundError, match="no metrics.jsonl"):
        read_metrics(tmp_path / "elsewhere")


def test_train_teacher_script_smoke(tmp_path):
    train_teacher = _train_teacher()

    cfg = train_teacher.TrainConfig(
        env="soccer-1v1",
        num_envs=4,
        total_steps=256,
        run_dir=tmp_path / "t",
        ppo=PPOConfig(steps_per_env=16, hidden=(16, 16)),
    )
    run = train_teacher.train(cfg)
    assert (run / "checkpoint" / "policy.safetensors").exists() and (run / "learning_curve.png").exists()
    assert (run / "config.json").exists() and any((run / "tb").iterdir())
    with pytest.raises(ValueError, match="already holds a run"):
        train_teacher.train(cfg)
    # The checkpoint is a policy eval.py and replay.py load.
    from agents.policies import make_policy

    env = envs.make("soccer-1v1", num_envs=2)
    assert make_policy(str(run / "checkpoint"), env)(env.reset(seed=0)).shape == (2, 2, 3)
    # With a moving average of the actor, the card says so and the raw actor is a policy too.
    ema = dataclasses.replace(
        cfg, run_dir=tmp_path / "ema", eval_episodes=2, ppo=PPOConfig(steps_per_env=16, hidden=(16, 16), actor_ema=0.9)
    )
    run = train_teacher.train(ema)
    assert "`actor_raw/`" in (run / "checkpoint" / "MODEL_CARD.md").read_text()
    assert make_policy(str(run / "checkpoint" / "actor_raw"), env)(env.reset(seed=0)).shape == (2, 2, 3)


def test_selfplay_run_card_tables_the_pool(tmp_path):
    import re

    train_teacher = _train_teacher()

    cfg = train_teacher.TrainConfig(
        env="soccer-1v1",
        num_envs=4,
        total_steps=4 * 16 * 3,
        selfplay=True,
        snapshot_every=1,
        eval_episodes=4,
        env_overrides='{"episode_seconds": 0.3}',
        run_dir=tmp_path / "sp",
        ppo=PPOConfig(steps_per_env=16, hidden=(16, 16)),
    )
    card = (train_teacher.train(cfg) / "checkpoint" / "MODEL_CARD.md").read_text()
    pool = card.split("## Opponent pool at the end of training")[1]
    rows = dict(re.findall(r"^\| (\S+) \| (\d+) \|", pool, re.M))
    assert list(rows) == ["scripted", "snapshot@1", "snapshot@2", "snapshot@3"]
    assert int(rows["scripted"]) >= 4  # every world's first opponent, and 0.3 s games end often
    assert re.search(r"\d+\.\d min of\n  training iterations in this run directory", card)
    # The training minutes add every logged iteration's steps over its rate, resumed segments too.
    rows = [
        {"env_steps": 100, "perf/total_steps_per_s": 10.0},
        {"env_steps": 200, "perf/total_steps_per_s": 20.0},
        {"env_steps": 300},
    ]
    assert train_teacher.training_minutes(rows) == pytest.approx((100 / 10 + 100 / 20) / 60)
    # Without self-play, several opponents make a pool of them alone; one opponent, no pool.
    mixed = dataclasses.replace(cfg, selfplay=False, opponent="scripted,random", run_dir=tmp_path / "mixed")
    card = (train_teacher.train(mixed) / "checkpoint" / "MODEL_CARD.md").read_text()
    rows = dict(re.findall(r"^\| (\S+) \| (\d+) \|", card.split("## Opponent pool")[1], re.M))
    assert list(rows) == ["scripted", "random"] and int(rows["scripted"]) + int(rows["random"]) >= 4
    plain = dataclasses.replace(cfg, selfplay=False, run_dir=tmp_path / "plain")
    assert "Opponent pool" not in (train_teacher.train(plain) / "checkpoint" / "MODEL_CARD.md").read_text()
    with pytest.raises(ValueError, match="distinct names"):
        train_teacher.train(dataclasses.replace(cfg, opponent="scripted,,random", run_dir=tmp_path / "bad"))
    with pytest.raises(ValueError, match=r"--fixed-share .*\[0, 1\]"):
        train_teacher.train(dataclasses.replace(cfg, fixed_share=1.5, run_dir=tmp_path / "bad"))
    with pytest.raises(ValueError, match="add --selfplay"):
        train_teacher.train(dataclasses.replace(cfg, selfplay=False, fixed_share=0.5, run_dir=tmp_path / "bad"))
    # A folder that is not a checkpoint is named, as an opponent or as a warm start, without a traceback.
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"--opponent: .*empty is not a policy checkpoint"):
        train_teacher.train(dataclasses.replace(cfg, opponent=str(tmp_path / "empty"), run_dir=tmp_path / "bad"))
    with pytest.raises(ValueError, match=r"--init-from: .*empty is not a policy checkpoint"):
        train_teacher.train(dataclasses.replace(cfg, init_from=tmp_path / "empty", run_dir=tmp_path / "bad"))
    with pytest.raises(ValueError, match="--env-overrides must be a JSON object"):
        train_teacher.train(dataclasses.replace(cfg, env_overrides="[1]", run_dir=tmp_path / "bad"))


def test_selfplay_pool_prefers_unbeaten_opponents_and_resumes_exactly(tmp_path):
    from agents.ppo.selfplay import OpponentPool
    from envs.soccer.scripted import ScriptedSoccer

    pool = OpponentPool(4, {"scripted": ScriptedSoccer(1)}, snapshot_every=1, floor=0.1)
    pool.score = [1.0]
    pool.names.append("weak")
    pool.policies.append(ScriptedSoccer(1))
    pool.score.append(0.0)
    pool.games += [0]
    torch.testing.assert_close(pool.weights(), torch.tensor([0.1, 1.1]))  # beaten: floor only

    def make(name, total=3 * 8 * 4):
        env = envs.make("soccer-1v1", num_envs=4, episode_seconds=0.3)
        opp = OpponentPool(4, {"scripted": ScriptedSoccer(1)}, snapshot_every=1, seed=5)
        learner = LearnerEnv(env, "privileged", "critic", opp)
        cfg = PPOConfig(steps_per_env=8, minibatches=2, epochs=1, hidden=(16, 16))
        return Runner(learner, cfg, total, 7, tmp_path / name, env.name, {}), opp

    whole, opp = make("whole")
    whole.learn(progress=False)
    assert [n for n in opp.names if n.startswith("snapshot@")] == ["snapshot@1", "snapshot@2", "snapshot@3"]
    assert sum(opp.games) > 0  # finished games were scored
    cut, _ = make("cut")
    cut.total_updates = 2
    cut.learn(progress=False)
    again, opp2 = make("cut")
    again.load()
    assert opp2.names[:3] == ["scripted", "snapshot@1", "snapshot@2"]
    again.learn(progress=False)
    assert torch.equal(_weights(whole), _weights(again))
    assert opp2.names == opp.names and opp2.score == opp.score


def test_selfplay_fixed_share_keeps_a_floor_on_the_fixed_players():
    from agents.ppo.selfplay import OpponentPool
    from envs.soccer.scripted import ScriptedSoccer

    def pool(share):
        p = OpponentPool(20000, {"scripted": ScriptedSoccer(1)}, snapshot_every=1, seed=3, fixed_share=share)
        p.maybe_snapshot(torch.nn.Linear(1, 1), 1)
        p.maybe_snapshot(torch.nn.Linear(1, 1), 2)
        p.score = [1.0, 0.5, 0.5]  # scripted beaten, snapshots drawn: weights 0.1, 0.6, 0.6
        p.resample(torch.arange(20000))
        return p

    plain, floored = pool(0.0), pool(0.5)
    torch.testing.assert_close(plain.probabilities(), torch.tensor([0.1, 0.6, 0.6]) / 1.3)
    # half the draws go to the fixed players alone, half to the whole pool by weight
    torch.testing.assert_close(floored.probabilities(), torch.tensor([0.5 + 0.05 / 1.3, 0.3 / 1.3, 0.3 / 1.3]))
    for p in (plain, floored):
        drawn = torch.bincount(p.assignment, minlength=3).float() / 20000
        torch.testing.assert_close(drawn, p.probabilities(), atol=0.015, rtol=0)
    with pytest.raises(ValueError, match="fixed_share"):
        OpponentPool(2, {"scripted": ScriptedSoccer(1)}, fixed_share=1.5)


def test_init_from_starts_a_new_run_from_another_runs_weights(tmp_path):
    train_teacher = _train_teacher()

    base, ckpt, source = _small_source(tmp_path, "global")
    # A fov run starting from the global run's actor: the first rollout acts with its weights.
    warm = dataclasses.replace(base, run_dir=tmp_path / "fov", observability="fov", init_from=ckpt, total_steps=64)
    learner = LearnerEnv(envs.make("egopush-goal", num_envs=4, observability="fov"), "privileged", "critic")
    runner = Runner(learner, warm.ppo, 64, 0, tmp_path / "probe", "egopush-goal", {})
    runner.init_from(ckpt)
    mine, theirs = runner.actor.state_dict(), source.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    # --init-std: the same weights with a wider action distribution.
    runner.init_from(ckpt, std=0.3)
    assert torch.allclose(runner.actor.log_std.exp(), torch.full((2,), 0.3))
    assert torch.equal(runner.actor.state_dict()["net.0.weight"], theirs["net.0.weight"])
    train_teacher.train(warm)
    with pytest.raises(ValueError, match="pass one"):
        train_teacher.train(dataclasses.replace(warm, resume=True))
    with pytest.raises(ValueError, match="init-std"):
        train_teacher.train(dataclasses.replace(base, run_dir=tmp_path / "std", init_std=0.3))
    other = dataclasses.replace(warm, run_dir=tmp_path / "bad", ppo=PPOConfig(steps_per_env=16, hidden=(8,)))
    with pytest.raises(ValueError, match=r"^--init-from: (?!.*--init-from).*hidden"):  # the flag named once
        train_teacher.train(other)


def test_critic_warmup_leaves_the_actor_alone_then_trains_it(tmp_path):
    learner = LearnerEnv(envs.make("egopush-goal", num_envs=4), "privileged", "critic")
    cfg = PPOConfig(steps_per_env=16, hidden=(16, 16), critic_warmup=2)
    runner = Runner(learner, cfg, 4 * 16 * 3, 0, tmp_path, "egopush-goal", {})
    # Parameters only: the actor's observation normaliser (a buffer) moves with every rollout.
    actor = {k: v.clone() for k, v in runner.actor.named_parameters()}
    critic = {k: v.clone() for k, v in runner.critic.named_parameters()}
    lr = runner.ppo.lr

    def same(a, b):
        return all(torch.equal(a[k], v) for k, v in b.items())

    for _ in range(2):
        runner._rollout()
        runner.ppo.update(runner.storage, runner.generator)
    assert same(actor, dict(runner.actor.named_parameters())) and not same(
        critic, dict(runner.critic.named_parameters())
    )
    assert runner.ppo.lr == lr  # the adaptive schedule waits for the actor
    runner._rollout()
    runner.ppo.update(runner.storage, runner.generator)
    assert not same(actor, dict(runner.actor.named_parameters()))


def test_widened_soccer_teacher_plays_as_its_source(tmp_path):
    # soccer_widen: a 1v1 teacher widened to 2v2 acts, for each player, as the 1v1 teacher does on
    # the ball, its first opponent and the pitch; teammate and second opponent start unread.
    from conftest import run_script
    from safetensors.torch import save_file

    from agents.actor import GaussianActor
    from agents.ppo.algorithm import Critic

    one = envs.make("soccer-1v1", num_envs=1)
    src = GaussianActor(one.observation_spaces["privileged"].shape[-1], 3, (16, 16))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # seeded, and small enough that tanh does not saturate at +-1
        for p in src.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=gen))
        src.norm.mean.copy_(torch.randn(src.norm.mean.shape, generator=gen))
        src.norm.var.copy_(0.5 + 1.5 * torch.rand(src.norm.var.shape, generator=gen))
    src.save(tmp_path / "src", "soccer-1v1", {"team_size": 1})
    critic = Critic(one.observation_spaces["critic"].shape[-1], (16, 16))
    save_file(
        {f"critic/{k}": v.contiguous() for k, v in critic.state_dict().items()},
        str(tmp_path / "src" / "train_state.safetensors"),
    )
    run_script("soccer_widen.py", str(tmp_path / "src"), "--team-size", "2", "--out", str(tmp_path / "wide"))
    wide, meta = GaussianActor.load(tmp_path / "wide")
    assert meta["env"] == "soccer-2v2"
    two = envs.make("soccer-2v2", num_envs=3)
    obs = two.reset(seed=0)["privileged"]  # [3, 4, 40]
    # The 1v1 view of the same state: drop the teammate (cols 4:10) and the second opponent (16:22).
    keep = [c for c in range(obs.shape[-1]) if not (4 <= c < 10 or 16 <= c < 22)]
    assert torch.allclose(wide(obs), src(obs[..., keep]), atol=1e-6)
    moved = obs.clone()
    moved[..., 4:10] += 1.0  # the teammate elsewhere: no effect yet
    assert torch.allclose(wide(moved), wide(obs), atol=1e-6)
    moved[..., 10:12] += 1.0  # the first opponent elsewhere: it reads it
    assert not torch.allclose(wide(moved), wide(obs), atol=1e-6)
    assert (tmp_path / "wide" / "train_state.safetensors").is_file()


def test_actor_average_is_the_saved_policy_and_resumes_exactly(tmp_path):
    from agents.actor import GaussianActor
    from agents.ppo.algorithm import average_into

    # One step by hand: decay 0.75 takes a quarter of the way to the current weights; buffers copy.
    avg, cur = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
    avg.register_buffer("b", torch.zeros(1))
    cur.register_buffer("b", torch.ones(1))
    with torch.no_grad():
        avg.weight.fill_(2.0), avg.bias.fill_(0.0), cur.weight.fill_(6.0), cur.bias.fill_(-4.0)
    average_into(avg, cur, 0.75)
    assert (avg.weight.item(), avg.bias.item(), avg.b.item()) == (3.0, -1.0, 1.0)

    def make(name):
        return _runner(tmp_path, 3, name=name, actor_ema=0.5, critic_warmup=1)

    def params(actor):
        return torch.cat([p.detach().flatten() for p in actor.parameters()])

    # Followed by hand: the average starts at the weights the first actor update starts from (the
    # critic warm-up leaves them alone), then takes half the way to the actor after each update.
    whole = make("whole")
    expect = params(whole.actor)
    for i in range(4):
        whole._rollout()
        whole.ppo.update(whole.storage, whole.generator)
        if i >= 1:
            expect = 0.5 * expect + 0.5 * params(whole.actor)
    torch.testing.assert_close(params(whole.ppo.actor_avg), expect)
    assert not torch.allclose(params(whole.ppo.actor_avg), params(whole.actor))
    # The checkpoint's policy is the average, the raw actor beside it; a run cut after two updates
    # and resumed ends with the same average and actor as one never stopped.
    whole = make("whole2")
    whole.learn(progress=False)
    policy, meta = GaussianActor.load(tmp_path / "whole2" / "checkpoint")
    raw, _ = GaussianActor.load(tmp_path / "whole2" / "checkpoint" / "actor_raw")
    assert meta["actor_ema"] == 0.5
    assert torch.equal(params(policy), params(whole.ppo.actor_avg)) and torch.equal(params(raw), params(whole.actor))
    cut = make("cut")
    cut.total_updates = 2
    cut.learn(progress=False)
    again = make("cut")
    again.load()
    again.learn(progress=False)
    assert torch.equal(params(again.ppo.actor_avg), params(whole.ppo.actor_avg))
    assert torch.equal(_weights(again), _weights(whole))
    with pytest.raises(ValueError, match=r"actor_ema must be in \[0, 1\)"):
        Runner(whole.learner, PPOConfig(actor_ema=1.0), 8, 0, tmp_path / "bad", "egopush-goal", {})


def test_ship_critic_puts_a_critic_fit_to_the_teacher_beside_it(tmp_path):
    import shutil

    from conftest import run_script

    def ship(run_checkpoint, teacher, check=True):
        return run_script("ship_critic.py", str(run_checkpoint), str(teacher), check=check)

    src = _runner(tmp_path, 0, name="src")
    src.learn(progress=False)
    teacher = tmp_path / "teacher"  # as shipped: the policy alone
    shutil.copytree(src.run_dir / "checkpoint", teacher, ignore=shutil.ignore_patterns("train_state*"))

    def from_teacher(name, warmup):
        r = _runner(tmp_path, 5, 2 * 8 * 4, name, critic_warmup=warmup)
        assert r.init_from(teacher)[1] is (name == "warm")  # a critic only once one is shipped
        return r

    fit = from_teacher("fit", warmup=2)  # the actor stays as it is: only the critic trains
    fit.learn(progress=False)
    moved = from_teacher("moved", warmup=0)
    moved.learn(progress=False)
    refused = ship(moved.run_dir / "checkpoint", teacher, check=False)
    assert refused.returncode != 0 and re.search("is not .*teacher's", refused.stderr)
    assert not (teacher / "train_state.safetensors").exists()
    assert "value loss over its last 2 updates" in ship(fit.run_dir / "checkpoint", teacher).stdout
    warm = from_teacher("warm", warmup=0)  # a fine-tune from the teacher now starts with that critic
    for a, b in zip(warm.critic.state_dict().values(), fit.critic.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    bare = tmp_path / "bare"
    shutil.copytree(teacher, bare, ignore=shutil.ignore_patterns("train_state*"))
    refused = ship(bare, teacher, check=False)
    assert refused.returncode != 0 and "bare holds no training state" in refused.stderr


def test_init_from_an_egopush_teacher_widens_actor_and_critic_for_room_corners(tmp_path):
    from safetensors.torch import save_file

    from agents.actor import GaussianActor
    from agents.ppo.algorithm import Critic

    plain = envs.make("egopush-line", num_envs=2, observability="fov", memory_seconds=2.0)
    p_dim, c_dim = plain.observation_spaces["privileged"].shape[0], plain.observation_spaces["critic"].shape[0]
    gen = torch.Generator().manual_seed(0)
    source, critic = GaussianActor(p_dim, 2, (16, 16)), Critic(c_dim, (16, 16))
    with torch.no_grad():  # seeded, not the identity normaliser
        for net in (source, critic):
            for t in net.parameters():
                t.copy_(0.3 * torch.randn(t.shape, generator=gen))
            net.norm.mean.copy_(torch.randn(net.norm.mean.shape, generator=gen))
            net.norm.var.copy_(0.5 + torch.rand(net.norm.var.shape, generator=gen))
    source.save(tmp_path / "src", "egopush-line", {"observability": "fov", "memory_seconds": 2.0})
    save_file(
        {f"critic/{k}": v.contiguous() for k, v in critic.state_dict().items()},
        str(tmp_path / "src" / "train_state.safetensors"),
    )
    room = envs.make("egopush-line", num_envs=2, observability="fov", memory_seconds=2.0, room_keypoints=True)
    learner = LearnerEnv(room, "privileged", "critic")
    runner = Runner(learner, PPOConfig(steps_per_env=8, hidden=(16, 16)), 64, 0, tmp_path / "room", "egopush-line", {})
    assert (runner.actor.obs_dim, runner.critic.norm.mean.shape[0]) == (p_dim + 12, c_dim + 12)
    assert runner.init_from(tmp_path / "src")[1]  # the critic was loaded, widened
    # Until training gives the corners weight, both act and value as their sources, wherever the walls are.
    obs = room.reset(seed=0)
    x, xc = obs["privileged"][:, 0], obs["critic"][:, 0]
    torch.testing.assert_close(x[:, :p_dim], plain.reset(seed=0)["privileged"][:, 0])  # laid out alike before them
    for corners in (x[:, p_dim:], torch.randn(2, 12, generator=gen)):
        torch.testing.assert_close(runner.actor(torch.cat((x[:, :p_dim], corners), -1)), source(x[:, :p_dim]))
        torch.testing.assert_close(runner.critic(torch.cat((xc[:, :c_dim], corners), -1)), critic(xc[:, :c_dim]))
    # The reverse (a teacher with corners into a run without) does not fit: a clear error.
    from agents.checkpoint import CheckpointError

    runner.actor.save(tmp_path / "wide", "egopush-line", {"observability": "fov", "room_keypoints": True})
    narrow = Runner(
        LearnerEnv(plain, "privileged", "critic"), PPOConfig(hidden=(16, 16)), 64, 0, tmp_path / "n", "egopush-line", {}
    )
    with pytest.raises(CheckpointError, match="obs, act, hidden"):
        narrow.init_from(tmp_path / "wide")


def test_init_from_widens_hidden_layers_and_the_new_units_learn(tmp_path):
    train_teacher = _train_teacher()

    from agents.actor import GaussianActor
    from agents.checkpoint import CheckpointError

    base, ckpt, source = _small_source(tmp_path, "small")
    env = envs.make("egopush-goal", num_envs=4)
    wide = PPOConfig(steps_per_env=16, hidden=(32, 24))
    runner = Runner(LearnerEnv(env, "privileged", "critic"), wide, 64, 0, tmp_path / "probe", "egopush-goal", {})
    assert runner.init_from(ckpt)[1]
    # Before training the wider actor and critic compute what their sources did, on any input.
    gen = torch.Generator().manual_seed(0)
    x = 3.0 * torch.randn(64, source.obs_dim, generator=gen)
    torch.testing.assert_close(runner.actor(x), source(x))
    from safetensors.torch import load_file

    from agents.ppo.algorithm import Critic

    state = load_file(str(ckpt / "train_state.safetensors"))
    critic = Critic(runner.critic.norm.mean.shape[0], (16, 16))
    critic.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("critic/")})
    xc = 3.0 * torch.randn(64, critic.norm.mean.shape[0], generator=gen)
    with torch.no_grad():
        torch.testing.assert_close(runner.critic(xc), critic(xc))
    assert runner.actor.net[2].weight[:, 16:].abs().sum() == 0 and runner.actor.net[0].weight[16:].abs().sum() > 0
    # Trained, the new units get weight: the widening is no dead end.
    out = train_teacher.train(
        dataclasses.replace(base, run_dir=tmp_path / "wide", init_from=ckpt, total_steps=64, ppo=wide)
    )
    trained, meta = GaussianActor.load(out / "checkpoint")
    assert meta["hidden"] == [32, 24] and trained.net[2].weight[:, 16:].abs().sum() > 0
    assert trained.net[4].weight[:, 16:].abs().sum() > 0
    # Narrower, or another number of layers: refused by name.
    for hidden in ((8, 16), (32, 24, 8)):
        probe = Runner(
            LearnerEnv(env, "privileged", "critic"),
            PPOConfig(hidden=hidden),
            64,
            0,
            tmp_path / "n",
            "egopush-goal",
            {},
        )
        with pytest.raises(CheckpointError, match="obs, act, hidden"):
            probe.init_from(ckpt)


def test_init_from_a_global_soccer_teacher_widens_it_for_fov(tmp_path):
    from agents.actor import GaussianActor
    from agents.checkpoint import CheckpointError

    glob = envs.make("soccer-1v1", num_envs=2)
    source = GaussianActor(glob.observation_spaces["privileged"].shape[0], 3, (16, 16))
    obs = glob.reset(seed=0)["privileged"]
    source.norm.update(obs * 3 + 1)  # a normaliser that is not the identity
    source.save(tmp_path / "global", "soccer-1v1", {"observability": "global"})
    from agents import RandomPolicy

    fov = envs.make("soccer-1v1", num_envs=2, observability="fov")
    learner = LearnerEnv(fov, "privileged", "critic", RandomPolicy(3))
    runner = Runner(learner, PPOConfig(steps_per_env=8, hidden=(16, 16)), 64, 0, tmp_path / "fov", "soccer-1v1", {})
    assert runner.actor.obs_dim == source.obs_dim + 2
    runner.init_from(tmp_path / "global")
    # The flags start with no weight: the fov actor acts as the global one, whatever they read.
    x = torch.randn(64, source.obs_dim)
    for flags in (torch.zeros(64, 2), torch.ones(64, 2), torch.randn(64, 2)):
        torch.testing.assert_close(runner.actor(torch.cat((x, flags), -1)), source(x))
        # the normaliser passes them as they are (0 or 1), until its statistics move
        torch.testing.assert_close(runner.actor.norm(torch.cat((x, flags), -1))[:, -2:], flags.clamp(-10, 10))
    # ...and they are inputs it can learn: their weights take gradient.
    runner.actor.net(runner.actor.norm(torch.cat((x, torch.ones(64, 2)), -1))).sum().backward()
    assert runner.actor.net[0].weight.grad[:, -2:].abs().sum() > 0
    # Any other width still refuses.
    GaussianActor(source.obs_dim + 1, 3, (16, 16)).save(tmp_path / "odd", "soccer-1v1", {"observability": "global"})
    with pytest.raises(CheckpointError, match="obs, act, hidden"):
        runner.init_from(tmp_path / "odd")


def test_train_teacher_replay_failures_logs_fresh_success_and_refuses_what_cannot_replay(tmp_path):
    import json

    train_teacher = _train_teacher()

    cfg = train_teacher.TrainConfig(
        env="egopush-line",
        num_envs=4,
        total_steps=4 * 16 * 3,
        eval_episodes=0,
        replay_failures=1.0,
        env_overrides='{"episode_seconds": 0.3}',  # 6 control steps: every episode times out
        run_dir=tmp_path / "r",
        ppo=PPOConfig(steps_per_env=16, hidden=(16, 16)),
    )
    rows = [json.loads(line) for line in (train_teacher.train(cfg) / "metrics.jsonl").read_text().splitlines()]
    # 16 steps an update, episodes of 6: the first 4 episodes start afresh, every one after from a
    # start that timed out (each fails again and comes back).
    assert [r["episode/replayed_share"] for r in rows] == [0.5, 1.0, 1.0]
    assert [r.get("episode/success_rate_fresh") for r in rows] == [0.0, None, None]
    from agents.run_state import episode_count

    assert [episode_count(rows[0], k) for k in ("episode/success_rate", "episode/success_rate_fresh")] == [8, 4]
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["train"]["replay_failures"] == 1.0 and "replay_failures" not in saved["env"]
    with pytest.raises(ValueError, match=r"--replay-failures: failed-start replay is a probability in \(0, 1\]"):
        train_teacher.train(dataclasses.replace(cfg, replay_failures=1.5, run_dir=tmp_path / "bad"))
    with pytest.raises(ValueError, match="--replay-failures: soccer-1v1 has no failed-start replay"):
        train_teacher.train(dataclasses.replace(cfg, env="soccer-1v1", run_dir=tmp_path / "bad"))
