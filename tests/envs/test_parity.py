"""The cpu (mujoco.batch, float64) and warp (MuJoCo Warp on Warp's CPU device, float32)
backends agree on the same model, initial state and controls."""

import math

import mujoco
import numpy as np
import torch
from conftest import place

import envs
from envs.sim import Sim
from envs.soccer import scene

# Tolerance: the warp backend runs in float32 and its own constraint solver (iterations and
# tolerances of its own), the cpu backend float64 Newton. The robots (velocity servos on planar
# joints, no contacts) then agree to ~3e-6 m. The ball differs by ~0.7 mm within the first control
# step, while its friction contact takes it from sliding to rolling, a transient the two solvers
# resolve slightly differently, and then rolls in step. We compare positions (a sphere's
# orientation changes nothing) and exclude wall hits, which amplify any difference. 5 mm, 6% of
# the ball's radius, is several times that drift and far below a modelling difference: a missed
# contact, a wrong actuator frame or gear moves bodies by centimetres within a few steps.
POS_TOL = 5e-3
ROBOT_TOL = 1e-4
STEPS = 100


def test_cpu_and_warp_backends_agree():
    xml = scene.build_xml(1, 3.0, 2.0, 0.6, 0.01, 1.5, 4.0)
    model = mujoco.MjModel.from_xml_string(xml)
    W = 3
    sims = [Sim(model, W, backend=b, n_substeps=4, per_world_fields=("geom_pos",)) for b in ("cpu", "warp")]
    q0 = torch.as_tensor(model.qpos0).repeat(W, 1)
    v0 = torch.zeros(W, model.nv)
    q0[:, 0:3] = torch.tensor([0.0, 0.0, scene.BALL_RADIUS])
    v0[:, 0:2] = torch.tensor([[0.3, 0.1], [-0.2, 0.25], [0.1, -0.3]])  # the ball rolls, clear of the walls
    q0[:, 7:10] = torch.tensor([-1.5, -1.0, 0.3])  # blue
    q0[:, 10:13] = torch.tensor([1.5, 0.5, math.pi])  # red
    for s in sims:
        s.reset(None, q0, v0)
    t = torch.arange(STEPS, dtype=torch.float64) * 0.04
    worst = worst_robot = 0.0
    for k in range(STEPS):
        # Smooth commands, different per world: forward, lateral, turn for each robot.
        w = torch.arange(W, dtype=torch.float64).unsqueeze(1)
        u = torch.stack(
            [0.4 * torch.sin(t[k] + w), 0.3 * torch.cos(t[k] + w), 1.0 * torch.sin(0.5 * t[k] + w)] * 2, -1
        ).squeeze(1)
        for s in sims:
            s.ctrl[:] = u.to(s.ctrl)
            assert not s.step().any()
        diff = (sims[0].qpos - sims[1].qpos.double()).abs()
        worst = max(worst, diff[:, :3].max().item())
        worst_robot = max(worst_robot, diff[:, 7:].max().item())
    moved = (sims[0].qpos - q0).abs().max().item()
    assert moved > 0.3, "the scene barely moved; the comparison would prove nothing"
    print(f"ball drift {worst:.2e} m, robot drift {worst_robot:.2e} m")
    assert worst < POS_TOL, worst
    assert worst_robot < ROBOT_TOL, worst_robot
    np.testing.assert_allclose(sims[0].qvel[:, 6:].numpy(), sims[1].qvel[:, 6:].double().numpy(), atol=1e-3)


def test_warp_backend_collides_with_each_worlds_own_walls():
    env = envs.make("soccer-1v1", num_envs=2, backend="warp", device="cpu")
    env.reset(seed=3)
    hw = env.half_width.clone()
    assert abs(float(hw[0] - hw[1])) > 0.05
    for w in (0, 1):
        place(env, w, robots={0: (-1.0, -1.0, 0.0), 1: (1.0, -1.0, 0.0)}, ball=(0.0, 0.0, scene.BALL_RADIUS))
        place(env, w, ball_vel=(0.0, 3.0, 0.0))
    top = torch.zeros(2)
    for _ in range(30):
        env.step(torch.zeros(2, 2, 3))
        top = torch.maximum(top, env.sim.qpos[:, 1].float())
    # The ball bounced off each world's own wall: its highest y is that wall's face less its radius.
    torch.testing.assert_close(top, hw - scene.BALL_RADIUS, atol=0.02, rtol=0)
