"""Resets by mask (no host sync per step, the ``warp`` default) give the same episodes as resets by
index (the ``cpu`` default): the same observations, rewards, ends, final observations and states,
step after step, through episode ends at staggered steps, a failed world, and goals in soccer."""

import pytest
import torch

import envs

# 25 control steps per episode (soccer 0.04 s, egopush 0.05 s a step).
EVERY_TERM = {"reward_scales": {"goal": 1.0, "vel_to_ball": 1.0, "ball_vel_to_goal": 1.0}}  # none scaled to 0
CASES = {
    "soccer-1v1": {"episode_seconds": 1.0, **EVERY_TERM},
    "soccer-2v2-kickoff": {"episode_seconds": 1.0, "on_goal": "kickoff", **EVERY_TERM},
    "soccer-2v2-fov": {"episode_seconds": 1.0, "observability": "fov", **EVERY_TERM},
    "egopush-line": {"episode_seconds": 1.25},
    "egopush-line-fov": {"episode_seconds": 1.25, "observability": "fov", "memory_seconds": 0.5},
    "egopush-line-identity": {"episode_seconds": 1.25, "depth_layers": "identity", "wheel_slip": 0.1},
}


def _trace(case: str, masked: bool, steps: int = 60) -> list[tuple]:
    name = case.removesuffix("-kickoff").removesuffix("-fov").removesuffix("-identity")
    env = envs.make(name, num_envs=4, **CASES[case])
    env.masked_resets = masked
    env.reset(seed=3)
    env.episode_length[:] = torch.tensor([22, 0, 15, 10])  # episodes end at staggered steps
    g = torch.Generator().manual_seed(2)
    out = []
    for t in range(1, steps + 1):
        actions = torch.rand(4, env.num_agents, env.act_dim, generator=g) * 2 - 1
        if t == 7:
            env.sim.qvel[1, 0] = float("nan")  # world 1's physics fails
        if case.startswith("soccer") and t in (12, 30):
            b = env.ball_qadr  # the ball over the goal line of world 2 (blue scores), then world 0's (red)
            w, x = (2, 1.0) if t == 12 else (0, -1.0)
            env.sim.qpos[w, b : b + 2] = torch.tensor([x * float(env.half_length[w] + 0.2), 0.0], dtype=torch.float64)
        obs, reward, term, trunc, info = env.step(actions)
        done = term | trunc
        final = {}
        if done.any():  # what a consumer reads: the final observations and state of the worlds that ended
            final = {k: v[done] for k, v in info["final_obs"].items()}
            final.update({f"state/{k}": v[done] for k, v in info["final_state"].items()})
            final["length"] = info["episode_length"][done]
        # Every other info entry (reward terms, scores, goals, stages, ...), and every per-world tensor.
        extra = {k: v for k, v in info.items() if k not in ("final_obs", "final_state", "episode_length")}
        held = {k: v.clone() for k, v in env._world_state().items()}
        out.append((obs, reward, term, trunc, final, extra, held))
    env.close()
    return out


def _equal(a, b, where: str) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _equal(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (tuple, list)):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _equal(x, y, f"{where}[{i}]")
    else:
        assert torch.equal(torch.as_tensor(a), torch.as_tensor(b)), where


@pytest.mark.parametrize("case", list(CASES))
def test_resets_by_mask_give_the_same_episodes_as_by_index(case):
    by_index, by_mask = _trace(case, masked=False), _trace(case, masked=True)
    ends = sum(int((s[2] | s[3]).sum()) for s in by_index)
    assert ends >= 8, "the window must hold several episode ends"
    assert any(bool(s[5]["diverged"].any()) for s in by_index)
    if case.endswith("kickoff"):
        assert sum(int(s[5]["teleported"].sum()) for s in by_index) == 2  # both goals kicked off again
    for t, (a, b) in enumerate(zip(by_index, by_mask, strict=True), start=1):
        _equal(a, b, f"step {t}")


def test_what_draws_from_the_shared_generator_goes_by_index():
    env = envs.make("egopush-line", num_envs=2, episode_seconds=0.5)
    assert not env.masked_resets  # the cpu default
    env.masked_resets = True
    env.replay_failed_starts(0.5)  # its starts come from the shared generator
    assert not env.masked_resets
    with pytest.raises(ValueError, match="masked_resets: failed-start replay"):
        env.masked_resets = True
    env.close()
    noisy = envs.make("egopush-line", num_envs=2, wheel_noise=0.05)  # drawn at every observation
    with pytest.raises(ValueError, match="masked_resets: wheel_noise"):
        noisy.masked_resets = True
    noisy.close()


def test_constant_tables_are_not_per_world_state_when_their_length_is_w():
    # soccer-2v2 has 4 agents: at W = 4 its [A, ...] index tables must not be saved, restored or merged as state.
    env = envs.make("soccer-2v2", num_envs=4)
    env.reset(seed=0)
    names = set(env._world_state())
    assert not any(k.startswith("task/consts") for k in names) and "task/score" in names
    assert env.consts.order.shape == (4, 4) and not any("order" in k or "others" in k for k in names)
    env.close()


@pytest.mark.slow
def test_resets_by_mask_on_the_warp_backend_match_resets_by_index():
    # MuJoCo Warp on Warp's CPU device: the reset of a mask of worlds in place (Sim.reset) and the
    # merge of the warp state views; the backend's own default is by mask.
    def trace(masked: bool) -> list:
        env = envs.make("soccer-1v1", num_envs=3, backend="warp", device="cpu", episode_seconds=0.4, on_goal="kickoff")
        assert env.masked_resets
        env.masked_resets = masked
        env.reset(seed=1)
        env.episode_length[:] = torch.tensor([0, 3, 6])
        g = torch.Generator().manual_seed(0)
        out = []
        for t in range(24):
            if t == 4:
                b = env.ball_qadr
                env.sim.qpos[1, b] = float(env.half_length[1]) + 0.2  # world 1: blue scores
            obs, reward, term, trunc, info = env.step(torch.rand(3, 2, 3, generator=g) * 2 - 1)
            out.append((obs["privileged"].clone(), reward, term | trunc, info["teleported"], env.sim.qpos.clone()))
        env.close()
        return out

    a, b = trace(False), trace(True)
    assert sum(int(s[2].sum()) for s in a) >= 6 and sum(int(s[3].sum()) for s in a) == 1
    for t, (x, y) in enumerate(zip(a, b, strict=True)):
        for i, (u, v) in enumerate(zip(x, y, strict=True)):
            assert torch.equal(u, v), f"step {t}, item {i}"


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize(
    ("name", "over"), [("soccer-1v1", {"cameras": ("rgb",)}), ("egopush-line", {"cameras": ("depth_layers",)})]
)
def test_without_final_cameras_a_step_renders_once_and_observes_the_same(name, over, masked):
    # final_cameras False (what DAgger uses): the same observations, one render per step, and final
    # observations without the camera groups; with them, a step where a world ended renders twice.
    traces, renders = [], []
    for final in (True, False):
        env = envs.make(name, num_envs=3, episode_seconds=0.25, camera_resolution=(16, 16), **over)
        env.masked_resets, env.final_cameras = masked, final
        count = [0]
        render = env.render_cameras

        def counted(*args, _render=render, _count=count):
            _count[0] += 1
            return _render(*args)

        env.render_cameras = counted
        env.reset(seed=2)
        env.episode_length[:] = torch.tensor([0, 1, 2])
        count[0] = 0
        g = torch.Generator().manual_seed(0)
        trace = []
        for _ in range(12):
            obs, reward, term, trunc, info = env.step(torch.rand(3, env.num_agents, env.act_dim, generator=g) * 2 - 1)
            final_obs = info.get("final_obs", {})
            trace.append((obs, reward, term | trunc, {k: v for k, v in final_obs.items() if v.dtype != torch.uint8}))
            if not final:
                assert not any(k in final_obs for k in ("camera", "depth_layers"))
        env.close()
        traces.append(trace)
        renders.append(count[0])
    assert renders[1] == 12  # once per step
    assert renders[0] > 12  # episodes of 5-6 steps ended inside the window: twice on those steps
    for t, (a, b) in enumerate(zip(*traces, strict=True)):
        _equal(a[:3], b[:3], f"step {t}")
        shared = a[3].keys() & b[3].keys()
        _equal({k: a[3][k] for k in shared}, {k: b[3][k] for k in shared}, f"step {t} final")
