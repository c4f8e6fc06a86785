"""Every world draws its starts from a stream of its own: a world whose physics fails, or whose
episodes end at other steps, changes nothing in the other worlds, ever (checked well past the
failed world's next episode ends, which fall at other steps than its undisturbed twin's); a world's
episodes do not depend on how many worlds run beside it. And ``restore`` checks a snapshot whole
before it writes anything."""

import pytest
import torch

import envs

# 25 control steps per episode in both (soccer 0.04 s, egopush 0.05 s a step).
SECONDS = {"soccer-1v1": 1.0, "egopush-line": 1.25}
OTHERS = [0, 2, 3]


def _run(name: str, fail_at: int | None, steps: int = 24, failing: tuple[int, ...] = (1,), check_twin: bool = True):
    """Per step: (qpos, obs, generator state, episode lengths), for worlds with staggered clocks;
    the physics of worlds ``failing`` blows up just before step ``fail_at``."""
    env = envs.make(name, num_envs=4, episode_seconds=SECONDS[name])
    assert env.max_episode_steps == 25
    env.reset(seed=5)
    # World 0 ends its episode at step 3 (the step world 1 fails at), world 2 at 10, world 3 at 15;
    # world 1 of the undisturbed twin not before step 25.
    env.episode_length[:] = torch.tensor([22, 0, 15, 10])
    g = torch.Generator().manual_seed(1)
    trace = []
    for t in range(1, steps + 1):
        actions = torch.rand(4, env.num_agents, env.act_dim, generator=g) * 2 - 1
        if t == fail_at:
            env.sim.qvel[list(failing), 0] = float("nan")
        obs, reward, term, trunc, info = env.step(actions)
        if t == fail_at:
            assert info["diverged"].nonzero().flatten().tolist() == list(failing)
        else:
            assert not info["diverged"].any()
        if fail_at is None and check_twin:
            assert not (term | trunc)[1], "world 1 of the undisturbed twin must play on through the horizon"
        trace.append((env.sim.qpos.clone(), obs, env.generator.get_state(), env.episode_length.clone()))
    env.close()
    return trace


@pytest.mark.parametrize("name", list(SECONDS))
def test_a_failed_world_changes_nothing_in_the_others(name):
    twin = _run(name, fail_at=None, steps=24)
    hit = _run(name, fail_at=3, steps=24)
    restarted = set()
    for t, ((q0, o0, g0, n0), (q1, o1, g1, n1)) in enumerate(zip(twin, hit, strict=True), start=1):
        assert torch.equal(g0, g1), f"step {t}: the shared generator moved"
        assert torch.equal(q0[OTHERS], q1[OTHERS]), f"step {t}: another world's state differs"
        for group in o0:
            assert torch.equal(o0[group][OTHERS], o1[group][OTHERS]), f"step {t}: {group}"
        assert torch.equal(n0[OTHERS], n1[OTHERS])
        restarted |= {w for w in OTHERS if n0[w] == 0}
    assert restarted == set(OTHERS)  # each other world went through a reset of its own in the window
    assert not torch.equal(twin[3][0][1], hit[3][0][1])  # world 1 itself did start again


@pytest.mark.parametrize("name", list(SECONDS))
def test_a_failed_world_changes_nothing_in_the_others_ever(name):
    """Three episodes of every world on: the failed world's later episodes end at other steps than
    its twin's, and the other worlds reset between them, in another order than in the twin."""
    twin = _run(name, fail_at=None, steps=80, check_twin=False)
    hit = _run(name, fail_at=3, steps=80)
    resets = dict.fromkeys(OTHERS, 0)
    for t, ((q0, o0, _, n0), (q1, o1, _, n1)) in enumerate(zip(twin, hit, strict=True), start=1):
        assert torch.equal(q0[OTHERS], q1[OTHERS]), f"step {t}: another world's state differs"
        for group in o0:
            assert torch.equal(o0[group][OTHERS], o1[group][OTHERS]), f"step {t}: {group}"
        assert torch.equal(n0[OTHERS], n1[OTHERS]), f"step {t}: another world's clock differs"
        for w in OTHERS:
            resets[w] += int(n0[w] == 0)
    assert min(resets.values()) >= 3
    assert not torch.equal(twin[40][3], hit[40][3]), "world 1's clock should differ from its twin's"


def test_a_worlds_episodes_do_not_depend_on_the_worlds_beside_it():
    """World 0 of a 1-world env and of a 3-world env, seeded alike, play the same episodes."""
    starts = []
    for W in (1, 3):
        env = envs.make("egopush-line", num_envs=W, episode_seconds=0.5)
        env.reset(seed=11)
        first = [env.sim.qpos[0].clone()]
        for _ in range(2 * env.max_episode_steps):
            _, _, term, trunc, info = env.step(torch.zeros(W, env.num_agents, env.act_dim))
            if (term | trunc)[0]:
                first.append(env.sim.qpos[0].clone())
        env.close()
        starts.append(first)
    assert len(starts[0]) >= 3 and len(starts[0]) == len(starts[1])
    assert all(torch.equal(a, b) for a, b in zip(*starts, strict=True))


def test_a_failed_worlds_restart_is_its_own():
    """Reproducible, and the same whether or not another world failed with it."""
    a, b = _run("soccer-1v1", fail_at=3, steps=4), _run("soccer-1v1", fail_at=3, steps=4)
    assert all(torch.equal(x[0], y[0]) for x, y in zip(a, b, strict=True))
    both = _run("soccer-1v1", fail_at=3, steps=4, failing=(1, 3))
    alone = _run("soccer-1v1", fail_at=3, steps=4, failing=(3,))
    for x, y, z in zip(a, both, alone, strict=True):
        assert torch.equal(x[0][1], y[0][1]) and torch.equal(y[0][3], z[0][3])


def _stepped(name: str = "egopush-line", seed: int = 0):
    env = envs.make(name, num_envs=3, episode_seconds=1.0)
    env.reset(seed=seed)
    for _ in range(3):
        env.step(torch.zeros(3, env.num_agents, env.act_dim))
    return env


def _state(env):
    return env.sim.qpos.clone(), env.episode_length.clone(), env.generator.get_state(), env.stage.clone()


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda s: s.pop("generator"), r"missing \['generator'\]"),
        (lambda s: s.pop("task/stage"), r"missing \['task/stage'\]"),
        (lambda s: s.pop("sim/qvel"), r"missing \['sim/qvel'\]"),
        (lambda s: s.update({"part/nothing.x": torch.zeros(3)}), r"unknown \['part/nothing.x'\]"),
        (lambda s: s.update({"task/max_episode_steps": torch.zeros(3)}), r"unknown \['task/max_episode_steps'\]"),
        (lambda s: s.update({"task/stage": s["task/stage"].float()}), r"snapshot\['task/stage'\] must be torch.int64"),
        (lambda s: s.update({"sim/qpos": s["sim/qpos"][:2]}), r"snapshot\['sim/qpos'\] must be .*\[3, "),
        (lambda s: s.update({"field/geom_pos": s["field/geom_pos"].long()}), r"snapshot\['field/geom_pos'\]"),
        (lambda s: s.update({"generator": s["generator"][:100]}), r"snapshot\['generator'\] must be torch.uint8"),
        (lambda s: s.update({"task/stage": [0, 0, 0]}), r"snapshot\['task/stage'\] must be a tensor"),
    ],
)
def test_restore_checks_the_whole_snapshot_before_writing(spoil, message):
    env = _stepped()
    snap = env.snapshot()
    env.step(torch.zeros(3, 1, 2))
    before = _state(env)
    spoil(snap)
    with pytest.raises(ValueError, match=message):
        env.restore(snap)
    assert _same(_state(env), before), "a refused snapshot wrote part of the state"
    env.close()


def test_restore_takes_whole_snapshots_of_every_age():
    env = _stepped()
    snap = env.snapshot()
    after = _state(env)
    env.step(torch.zeros(3, 1, 2))
    env.restore(snap)
    assert _same(_state(env), after)
    # From a fresh env (the --resume path), with a step's scratch tensors it has not made yet.
    fresh = envs.make("egopush-line", num_envs=3, episode_seconds=1.0)
    fresh.restore(snap)
    assert _same(_state(fresh), after)
    # Taken before any step (no scratch), restored after steps; and written before divergence streams.
    new = envs.make("egopush-line", num_envs=3, episode_seconds=1.0)
    new.reset(seed=1)
    early = new.snapshot()
    del early["task/divergences"]
    env.restore(early)
    assert torch.equal(env.sim.qpos, new.sim.qpos) and int(env.divergences.sum()) == 0
    # Another env's snapshot does not fit.
    with pytest.raises(ValueError, match="missing"):
        env.restore(_stepped("soccer-1v1").snapshot())
    env.close()


@pytest.mark.parametrize(
    ("name", "held"),
    [
        (
            "egopush-line",
            "_ones_kp _prev_dist _w best_stage divergences draw_count episode_length path_length prev_action reached "
            "region stage stage_steps",
        ),
        (
            "soccer-2v2",
            "_robot_seen ball_seen divergences draw_count episode_length half_length half_width prev_action score",
        ),
    ],
)
def test_the_state_a_snapshot_holds_is_pinned_so_saved_runs_resume(name, held):
    # A training run's checkpoint holds an env snapshot, and restore refuses one that misses a held tensor:
    # a [W, ...] attribute added to a task breaks every saved run's --resume. Constants go in env.consts.
    env = envs.make(name, num_envs=5)  # 5: no index table of these envs happens to have W rows
    env.reset(seed=0)
    env.step(torch.zeros(5, env.num_agents, env.act_dim))
    assert sorted(env._held_names()) == held.split()
    env.close()
