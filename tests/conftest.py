import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import envs

ROOT = Path(__file__).resolve().parents[1]

# One torch thread in the test process: on 2 shared cores torch's OpenMP workers spin against
# mujoco.batch's threads and made the suite about 6x slower. Tests check behaviour, not speed.
torch.set_num_threads(1)


def run_script(script: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``scripts/<script>`` with ``args`` as a user would, in a fresh Python (one torch thread,
    as the tests run); its output as text. With ``check``, a non-zero exit fails with its stderr."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *args], capture_output=True, text=True, env=env, timeout=900
    )
    if check and out.returncode != 0:
        raise AssertionError(f"{script} exited {out.returncode}:\n{out.stderr[-3000:]}")
    return out


@pytest.fixture
def soccer1():
    env = envs.make("soccer-1v1", num_envs=4)
    yield env
    env.close()


def place(env, world: int, robots: dict[int, tuple[float, float, float]] | None = None, ball=None, ball_vel=None):
    """Write robot poses (x, y, yaw) and the ball's position/velocity into one world."""
    q, v = env.sim.qpos, env.sim.qvel
    for a, (x, y, yaw) in (robots or {}).items():
        adr = int(env.robot_qadr[a])
        q[world, adr : adr + 3] = torch.tensor([x, y, yaw], dtype=q.dtype)
        v[world, int(env.robot_vadr[a]) : int(env.robot_vadr[a]) + 3] = 0
    if ball is not None:
        b = env.ball_qadr
        q[world, b : b + 3] = torch.tensor(ball, dtype=q.dtype)
        q[world, b + 3 : b + 7] = torch.tensor([1.0, 0, 0, 0], dtype=q.dtype)
    if ball_vel is not None:
        bv = env.ball_vadr
        v[world, bv : bv + 6] = 0
        v[world, bv : bv + 3] = torch.tensor(ball_vel, dtype=v.dtype)


def place_push(env, world: int, robot=None, boxes=None, region=None):
    """EgoPush: write the robot's and boxes' poses (x, y, yaw) into one world, at rest."""
    q, v = env.sim.qpos, env.sim.qvel
    if robot is not None:
        r = env.robot_qadr
        q[world, r : r + 3] = torch.tensor(robot, dtype=q.dtype)
        v[world, env.robot_vadr : env.robot_vadr + 3] = 0
    for i, pose in (boxes or {}).items():
        adr = int(env.box_qadr[i])
        q[world, adr : adr + 3] = torch.tensor(pose, dtype=q.dtype)
        v[world, adr - env.robot_qadr + env.robot_vadr : adr - env.robot_qadr + env.robot_vadr + 3] = 0
    if region is not None:
        env.region[world] = torch.tensor(region, dtype=env.region.dtype)
        gp = env.sim.field("geom_pos")
        gp[world, env.region_geom, :2] = torch.tensor(region, dtype=gp.dtype)
        gp[world, env.region_geom, 2] = 0.002
