"""train_teacher (agents.ppo.train): runs, cards, warm starts that widen a teacher, critics, curricula."""

import dataclasses
import json
import re

import pytest
import torch
from ppo_helpers import runner, small_source, train_module

import envs
from agents.ppo.algorithm import PPOConfig
from agents.ppo.learner_env import LearnerEnv
from agents.ppo.runner import Runner


def test_train_teacher_script_smoke(tmp_path):
    train_teacher = train_module()

    cfg = train_teacher.TrainConfig(
        env="soccer-1v1",
        num_envs=4,
        total_steps=256,
        eval_episodes=4,
        run_dir=tmp_path / "t",
        ppo=PPOConfig(steps_per_env=16, hidden=(16, 16)),
    )
    run = train_teacher.train(cfg)
    assert (run / "checkpoint" / "policy.safetensors").exists() and (run / "learning_curve.png").exists()
    assert (run / "config.json").exists() and any((run / "tb").iterdir())
    saved = json.loads((run / "config.json").read_text())  # the default preset's shaping, recorded
    assert saved["train"]["preset"] == "train" and saved["env"]["reward_scales"]["goal"] == 10.0
    with pytest.raises(ValueError, match=r"--preset 'knock': soccer-1v1's presets are \['train'\]"):
        train_teacher.train(dataclasses.replace(cfg, preset="knock", run_dir=tmp_path / "p"))
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

    train_teacher = train_module()

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


def test_init_from_starts_a_new_run_from_another_runs_weights(tmp_path):
    train_teacher = train_module()

    base, ckpt, source = small_source(tmp_path, "global")
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
    # A run started from another one resumes from its own checkpoint, with the start flags repeated or not.
    steps = lambda: json.loads((warm.run_dir / "checkpoint" / "train_state.json").read_text())["env_steps"]  # noqa: E731
    first = steps()
    train_teacher.train(dataclasses.replace(warm, resume=True, total_steps=2 * first))
    assert steps() == 2 * first
    train_teacher.train(dataclasses.replace(warm, resume=True, init_from=None, total_steps=3 * first))
    assert steps() == 3 * first
    with pytest.raises(ValueError, match="init-std"):
        train_teacher.train(dataclasses.replace(base, run_dir=tmp_path / "std", init_std=0.3))
    other = dataclasses.replace(warm, run_dir=tmp_path / "bad", ppo=PPOConfig(steps_per_env=16, hidden=(8,)))
    with pytest.raises(ValueError, match=r"^--init-from: (?!.*--init-from).*hidden"):  # the flag named once
        train_teacher.train(other)


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


def test_ship_critic_puts_a_critic_fit_to_the_teacher_beside_it(tmp_path):
    import shutil

    from conftest import run_script

    def ship(run_checkpoint, teacher, check=True):
        return run_script("ship_critic.py", str(run_checkpoint), str(teacher), check=check)

    src = runner(tmp_path, 0, name="src")
    src.learn(progress=False)
    teacher = tmp_path / "teacher"  # as shipped: the policy alone
    shutil.copytree(src.run_dir / "checkpoint", teacher, ignore=shutil.ignore_patterns("train_state*"))

    def from_teacher(name, warmup):
        r = runner(tmp_path, 5, 2 * 8 * 4, name, critic_warmup=warmup)
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
    train_teacher = train_module()

    from agents.actor import GaussianActor
    from agents.checkpoint import CheckpointError

    base, ckpt, source = small_source(tmp_path, "small")
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

    train_teacher = train_module()

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


def test_resume_with_other_settings_is_refused_naming_each_difference(tmp_path):
    train_teacher = train_module()
    cfg = train_teacher.TrainConfig(
        env="egopush-goal",
        num_envs=4,
        total_steps=64,
        eval_episodes=0,
        run_dir=tmp_path / "r",
        ppo=PPOConfig(steps_per_env=16, hidden=(16, 16)),
    )
    train_teacher.train(cfg)
    other = dataclasses.replace(
        cfg,
        resume=True,
        num_envs=8,
        env_overrides='{"episode_seconds": 30}',
        ppo=PPOConfig(steps_per_env=16, hidden=(32, 32)),
    )
    with pytest.raises(ValueError, match="differing") as err:
        train_teacher.train(other)
    msg = str(err.value)
    assert "num_envs: 4 -> 8" in msg and "ppo.hidden: [16, 16] -> [32, 32]" in msg
    assert "episode_seconds: 60.0 -> 30" in msg and "total_steps" not in msg
    # A longer budget is what a resume is for: it goes on.
    train_teacher.train(dataclasses.replace(cfg, resume=True, total_steps=128))
