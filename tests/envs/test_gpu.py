"""MuJoCo Warp on CUDA: run with ``pytest -m gpu`` on a machine with an NVIDIA GPU."""

import pytest
import torch

import envs

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def cuda():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")


def test_warp_cuda_steps_and_renders(cuda):
    env = envs.make("soccer-2v2", num_envs=64, backend="warp", device="cuda:0", cameras=("rgb",))
    obs = env.reset(seed=0)
    assert obs["privileged"].device.type == "cuda" and obs["camera"].shape == (64, 4, 3, 64, 64)
    before = env.sim.qpos.clone()
    for _ in range(20):  # the first steps compile and capture the CUDA graph
        obs, reward, term, trunc, info = env.step(torch.ones(64, 4, 3, device="cuda:0") * 0.5)
    assert (env.sim.qpos - before).abs().max() > 0.1
    assert torch.isfinite(obs["privileged"]).all() and obs["camera"].float().std() > 5


def test_warp_cuda_matches_cpu_backend_on_smooth_driving(cuda):
    cpu = envs.make("soccer-1v1", num_envs=4)
    gpu = envs.make("soccer-1v1", num_envs=4, backend="warp", device="cuda:0")
    cpu.reset(seed=1)
    gpu.reset(seed=1)
    a = torch.zeros(4, 2, 3)
    a[..., 2] = 0.3  # turning on the spot: no contacts
    for _ in range(50):
        cpu.step(a)
        gpu.step(a.cuda())
    torch.testing.assert_close(cpu.sim.qpos[:, 7:].float(), gpu.sim.qpos[:, 7:].cpu(), atol=1e-3, rtol=0)


def test_dagger_on_cuda_keeps_everything_on_the_device(cuda, tmp_path):
    from pathlib import Path

    from distill.dagger import DaggerConfig, Distiller
    from distill.students import StudentConfig
    from distill.teacher_env import make_distill_env

    teacher = Path(__file__).resolve().parents[2] / "checkpoints" / "egopush-goal-teacher"
    env = make_distill_env(teacher, num_envs=256, backend="warp", device="cuda:0")
    cfg = DaggerConfig(steps_per_iter=8, buffer_steps=16, updates_per_iter=8)
    d = Distiller(env, teacher, StudentConfig(memory="transformer", window=8), cfg, 256 * 8 * 4, 0, tmp_path)
    history = d.learn(progress=False)
    assert next(d.student.parameters()).device.type == "cuda" and d.buffer.data["img"].device.type == "cuda"
    assert history[-1]["loss/mse"] < history[0]["loss/mse"]


def test_warp_cuda_steps_through_resets_and_goals_with_no_host_sync(cuda):
    # Resets by mask (the warp default): episodes of 10 steps end inside the window, goals kick off
    # again, and torch is never made to wait for the device (a sync raises in "error" mode).
    env = envs.make("soccer-2v2", num_envs=64, backend="warp", device="cuda:0", episode_seconds=0.4, on_goal="kickoff")
    assert env.masked_resets
    env.reset(seed=0)
    a = torch.full((64, 4, 3), 0.5, device="cuda:0")
    for _ in range(3):  # the first steps compile and capture the CUDA graph
        env.step(a)
    torch.cuda.synchronize()
    ends = torch.zeros((), dtype=torch.long, device="cuda:0")
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(25):
            _, _, term, trunc, _ = env.step(a)
            ends += (term | trunc).sum()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert int(ends) >= 64 * 2
