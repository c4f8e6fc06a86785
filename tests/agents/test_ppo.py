"""PPO: GAE and losses against hand-worked numbers, seeds, and exact resumption."""

import json
import math

import pytest
import torch
from ppo_helpers import runner, weights

import envs
from agents.ppo.algorithm import PPOConfig, gaussian_kl, surrogate_loss, value_loss
from agents.ppo.learner_env import LearnerEnv
from agents.ppo.runner import Runner
from agents.ppo.storage import gae


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


def test_same_seed_same_weights_other_seed_differs(tmp_path):
    a, b, c = runner(tmp_path, 0, name="a"), runner(tmp_path, 0, name="b"), runner(tmp_path, 1, name="c")
    for r in (a, b, c):
        r.learn(progress=False)
    assert a.iteration == 4
    assert torch.equal(weights(a), weights(b))
    assert not torch.allclose(weights(a), weights(c))


def test_interrupted_and_resumed_run_ends_with_the_same_weights(tmp_path):
    whole = runner(tmp_path, 3, name="whole")
    whole.learn(progress=False)
    first = runner(tmp_path, 3, name="cut")
    first.total_updates = 2  # stop halfway, as Ctrl-C after two updates would (and save)
    first.learn(progress=False)
    again = runner(tmp_path, 3, name="cut")
    again.load()
    assert again.iteration == 2
    again.learn(progress=False)
    assert again.iteration == 4
    assert torch.equal(weights(whole), weights(again))


def _signals_after_update(run, n, *signals):
    """Make ``run`` send itself ``signals`` right after its ``n``-th PPO update; returns the list
    of updates made so far."""
    import os

    update, calls = run.ppo.update, []

    def update_then_signal(*args):
        calls.append(1)
        out = update(*args)  # the weights move; the iteration is not counted yet
        if len(calls) == n:
            for sig in signals:
                os.kill(os.getpid(), sig)
            for _ in range(1000):  # a handler runs between bytecodes
                pass
        return out

    run.ppo.update = update_then_signal
    return calls


def test_sigterm_mid_update_stops_at_the_iteration_end_and_resumes_to_the_same_weights(tmp_path):
    # SIGTERM (kill PID, a scheduler's stop) arrives in the middle of the second update: the run
    # finishes that iteration, saves, and stops; resumed, it ends where an uninterrupted run does.
    import signal

    whole = runner(tmp_path, 5, name="whole")
    whole.learn(progress=False)
    cut = runner(tmp_path, 5, name="cut")
    calls = _signals_after_update(cut, 2, signal.SIGTERM)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        cut.learn(progress=False)
    assert signal.getsignal(signal.SIGTERM) is before  # handler restored
    assert len(calls) == 2 and cut.iteration == 2
    again = runner(tmp_path, 5, name="cut")
    again.load()
    assert again.iteration == 2
    again.learn(progress=False)
    assert torch.equal(weights(whole), weights(again))
    assert not torch.equal(weights(whole), weights(runner(tmp_path, 5, name="fresh")))


def test_crash_after_a_periodic_checkpoint_resumes_to_the_same_weights(tmp_path):
    # A crash (not Ctrl-C: nothing is saved then) in the fourth of four updates: with a checkpoint
    # every two updates the run resumes from update 2 and ends as one never stopped; the rows
    # logged after that checkpoint are not left twice in metrics.jsonl.

    whole = runner(tmp_path, 7, name="whole")
    whole.learn(progress=False)
    cut = runner(tmp_path, 7, name="cut")
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
    again = runner(tmp_path, 7, name="cut")
    again.load()
    assert again.iteration == 2
    again.learn(progress=False)
    assert torch.equal(weights(whole), weights(again))
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
    assert torch.equal(weights(whole), weights(again))
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
        runner.rollout()
        runner.ppo.update(runner.storage, runner.generator)
    assert same(actor, dict(runner.actor.named_parameters())) and not same(
        critic, dict(runner.critic.named_parameters())
    )
    assert runner.ppo.lr == lr  # the adaptive schedule waits for the actor
    runner.rollout()
    runner.ppo.update(runner.storage, runner.generator)
    assert not same(actor, dict(runner.actor.named_parameters()))


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
        return runner(tmp_path, 3, name=name, actor_ema=0.5, critic_warmup=1)

    def params(actor):
        return torch.cat([p.detach().flatten() for p in actor.parameters()])

    # Followed by hand: the average starts at the weights the first actor update starts from (the
    # critic warm-up leaves them alone), then takes half the way to the actor after each update.
    whole = make("whole")
    expect = params(whole.actor)
    for i in range(4):
        whole.rollout()
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
    assert torch.equal(weights(again), weights(whole))
    with pytest.raises(ValueError, match=r"actor_ema must be in \[0, 1\)"):
        Runner(whole.learner, PPOConfig(actor_ema=1.0), 8, 0, tmp_path / "bad", "egopush-goal", {})


def test_a_second_signal_during_the_save_waits_for_it_and_the_run_resumes_exactly(tmp_path):
    # SIGTERM in the second update asks for a stop at the iteration's end; a Ctrl-C during the save
    # that follows waits for the save to finish: the checkpoint is that whole iteration.
    import os
    import signal

    whole = runner(tmp_path, 5, name="whole")
    whole.learn(progress=False)
    cut = runner(tmp_path, 5, name="cut")
    _signals_after_update(cut, 2, signal.SIGTERM)
    save = cut.save

    def save_with_a_second_signal():
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # a handler runs between bytecodes: here, were it not held
            pass
        return save()

    cut.save = save_with_a_second_signal
    with pytest.raises(KeyboardInterrupt):
        cut.learn(progress=False)
    again = runner(tmp_path, 5, name="cut")
    again.load()
    assert again.iteration == 2
    again.learn(progress=False)
    assert torch.equal(weights(whole), weights(again))


def test_a_second_signal_mid_iteration_saves_nothing_of_it(tmp_path):
    # Two signals inside the second update: the run stops at once, and the checkpoint stays the
    # first iteration's (saved every iteration), from which the run resumes exactly.
    import signal

    from agents.run_state import StopNow

    whole = runner(tmp_path, 5, name="whole")
    whole.learn(progress=False)
    cut = runner(tmp_path, 5, name="cut")
    cut.save_every = 1
    _signals_after_update(cut, 2, signal.SIGTERM, signal.SIGTERM)
    with pytest.raises(StopNow):
        cut.learn(progress=False)
    again = runner(tmp_path, 5, name="cut")
    again.load()
    assert again.iteration == 1
    again.learn(progress=False)
    assert torch.equal(weights(whole), weights(again))


def test_a_training_state_with_a_flipped_byte_or_cut_short_is_refused_by_name(tmp_path):
    from agents.checkpoint import CheckpointError

    run = runner(tmp_path, 5, name="run")
    run.learn(progress=False)
    state = run.run_dir / "checkpoint" / "train_state.safetensors"
    data = bytearray(state.read_bytes())
    data[-3] ^= 0x10  # in the last tensor's bytes
    state.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="train_state.safetensors does not match its digest"):
        runner(tmp_path, 5, name="run").load()
    with pytest.raises(CheckpointError, match="does not match its digest"):
        runner(tmp_path, 5, name="other").init_from(run.run_dir / "checkpoint")
    state.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(CheckpointError, match="train_state.safetensors cannot be read as a training state"):
        runner(tmp_path, 5, name="run").load()
