"""What an env's own work costs per step, and whether a change to it keeps every output bit for bit.

With the physics stubbed out (each world's clock advanced by hand, so no world is taken for failed),
at W worlds on one thread:

- ``work``: milliseconds of the env's own work per step, the median of 15 blocks of 20 steps;
- ``ops``: torch ops dispatched per step, by the env function that issued them (views count).

With the real physics, the shipped teachers acting with noise (the scripted player where a teacher
does not fit the observation), staggered episode ends, goals and successes:

- ``capture OUT``: every observation, reward, end flag and info entry of 11 configurations (egopush
  line and goal, every observability, keypoint memory, room corners, identity layers, wheel slip
  and noise, masked resets, cameras; soccer-2v2 and soccer-1v1 ``fov``) over 300-400 steps;
- ``compare A B``: two captures (say, of two commits) equal bit for bit, or the first differences.

    python scripts/experiments/env_step_cost.py work --env egopush-line
    python scripts/experiments/env_step_cost.py ops --env soccer-2v2
    git worktree add /tmp/old HEAD~1
    (cd /tmp/old && PYTHONPATH=. python scripts/experiments/env_step_cost.py capture /tmp/old.pt)
    python scripts/experiments/env_step_cost.py capture /tmp/new.pt
    python scripts/experiments/env_step_cost.py compare /tmp/old.pt /tmp/new.pt

``PYTHONPATH=.`` makes ``capture`` import the env of the checkout it runs in (the installed
package may point at another).
"""

from __future__ import annotations

import argparse
import collections
import inspect
import os
import sys
import time
from typing import Any

import numpy as np
import torch

CHECKPOINTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "checkpoints")

CONFIGS: dict[str, tuple[str, dict[str, Any], int]] = {
    "line-knock": ("egopush-line", {"preset": "knock_anchor"}, 16),
    "line-yaw": ("egopush-line", {"preset": "knock_anchor", "yaw_tolerance": 0.3}, 8),
    "line-fov-mem": ("egopush-line", {"preset": "knock_anchor", "observability": "fov", "memory_seconds": 60.0}, 16),
    "line-room": ("egopush-line", {"observability": "fov", "memory_seconds": 2.0, "room_keypoints": True}, 8),
    "line-fovg": ("egopush-line", {"preset": "train", "observability": "fov_gated"}, 16),
    "goal-fovg": ("egopush-goal", {"preset": "train", "observability": "fov_gated", "memory_seconds": 0.5}, 16),
    "line-ident-slip": (
        "egopush-line",
        {
            "cameras": ("depth_layers", "rgb"),
            "depth_layers": "identity",
            "wheel_slip": 0.1,
            "camera_resolution": (16, 16),
        },
        4,
    ),
    "line-masked": (
        "egopush-line",
        {"preset": "knock_anchor", "observability": "fov_gated", "memory_seconds": 1.0},
        16,
    ),
    "line-noise": ("egopush-line", {"wheel_noise": 0.05, "room_keypoints": True}, 8),
    "soccer-2v2": ("soccer-2v2", {}, 8),
    "soccer-1v1-fov": ("soccer-1v1", {"observability": "fov"}, 8),
}


def stubbed_env(name: str, worlds: int) -> Any:
    from envs.registry import make

    env = make(name, num_envs=worlds, nthread=1)
    env.reset(seed=0)
    sim = env.sim
    dt = sim.n_substeps * sim.model.opt.timestep

    def step() -> torch.Tensor:  # the clock moves, the state does not
        sim.version += 1
        sim._time += dt
        return torch.zeros(sim.num_worlds, dtype=torch.bool)

    sim.step = step
    g = torch.Generator().manual_seed(0)
    actions = [torch.rand(worlds, env.num_agents, env.act_dim, generator=g) * 2 - 1 for _ in range(50)]
    return env, actions


def work(name: str, worlds: int) -> None:
    env, actions = stubbed_env(name, worlds)

    def block(n: int = 20) -> float:
        t = time.perf_counter()
        for i in range(n):
            env.step(actions[i % 50])
        return (time.perf_counter() - t) / n * 1e3

    for _ in range(3):
        block()
    ms = [block() for _ in range(15)]
    print(f"{name} W={worlds}: env work {np.median(ms):.2f} ms/step (median of 15 blocks of 20 steps)")


def ops(name: str, worlds: int) -> None:
    from torch.utils._python_dispatch import TorchDispatchMode

    env, actions = stubbed_env(name, worlds)
    for i in range(5):
        env.step(actions[i])
    count: collections.Counter[str] = collections.Counter()
    here = os.path.abspath(__file__)

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
            f = inspect.currentframe().f_back
            while f and ("/torch/" in f.f_code.co_filename or f.f_code.co_filename == here):
                f = f.f_back
            count[f"{os.path.basename(f.f_code.co_filename)}:{f.f_code.co_name}" if f else "?"] += 1
            return func(*args, **(kwargs or {}))

    n = 20
    with Count():
        for i in range(n):
            env.step(actions[i % 50])
    print(f"{name} W={worlds}: {sum(count.values()) / n:.0f} torch ops dispatched per step")
    for where, c in count.most_common(20):
        print(f"  {c / n:6.1f}  {where}")


def flatten(prefix: str, x: Any, out: dict[str, torch.Tensor]) -> None:
    if isinstance(x, dict):
        for k, v in x.items():
            flatten(f"{prefix}/{k}", v, out)
    elif isinstance(x, torch.Tensor):
        out[prefix] = x.detach().clone()
    elif isinstance(x, (int, float, bool)):
        out[prefix] = torch.tensor(x)


def capture(path: str) -> None:
    import agents  # noqa: F401  (registers the policy kinds)
    from agents.policies import make_policy
    from envs.registry import make

    out = {}
    for tag, (name, over, worlds) in CONFIGS.items():
        over = dict(over)
        preset = over.pop("preset", None)
        env = make(name, num_envs=worlds, preset=preset, nthread=1, **over)
        if tag == "line-masked":
            env.masked_resets = True
        env.max_episode_steps = 350
        if name.startswith("soccer"):
            ck = "soccer-2v2-teacher" if name == "soccer-2v2" else "soccer-1v1-teacher-fov"
        else:
            ck = (
                "egopush-goal-teacher"
                if "goal" in name
                else f"egopush-line-teacher-{over.get('observability', 'global')}"
            )
        try:
            policy = make_policy(os.path.join(CHECKPOINTS, ck), env)
        except Exception:  # noqa: BLE001 - another observation layout: the scripted player
            policy = env.scripted_policy()
        g = torch.Generator().manual_seed(1)
        obs = env.reset(seed=3)
        steps = []
        for _ in range(300 if name.startswith("soccer") else 400):
            a = policy(obs)
            obs, r, te, tr, info = env.step(a + 0.1 * torch.randn(a.shape, generator=g))
            o: dict[str, torch.Tensor] = {}
            for key, value in (("obs", obs), ("r", r), ("te", te), ("tr", tr), ("info", info)):
                flatten(key, value, o)
            flatten("stage", getattr(env, "stage", torch.zeros(1)), o)
            steps.append(o)
        out[tag] = steps
        ends = sum(int(s["te"].sum() + s["tr"].sum()) for s in steps)
        print(f"{tag}: {ends} episode ends, {sum(int(s['te'].sum()) for s in steps)} terminations")
    torch.save(out, path)


def compare(a_path: str, b_path: str) -> int:
    a, b = torch.load(a_path, weights_only=True), torch.load(b_path, weights_only=True)
    bad = 0
    for tag in sorted(set(a) | set(b)):
        if tag not in a or tag not in b:
            print(f"{tag}: in one capture only")
            bad += 1
            continue
        for t, (x, y) in enumerate(zip(a[tag], b[tag], strict=True)):
            diff = [k for k in sorted(set(x) | set(y)) if k not in x or k not in y or not _same(x[k], y[k])]
            if diff:
                print(f"{tag} step {t}: {diff[:5]} differ")
                bad += 1
                break
    print("bit for bit the same" if bad == 0 else f"{bad} configurations differ")
    return int(bad > 0)


def _same(x: torch.Tensor, y: torch.Tensor) -> bool:
    return x.shape == y.shape and x.dtype == y.dtype and torch.equal(x, y)


def main() -> int:
    torch.set_num_threads(1)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    for what in ("work", "ops"):
        s = sub.add_parser(what)
        s.add_argument("--env", default="egopush-line")
        s.add_argument("--worlds", type=int, default=256)
    sub.add_parser("capture").add_argument("out")
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    args = p.parse_args()
    if args.what == "work":
        work(args.env, args.worlds)
    elif args.what == "ops":
        ops(args.env, args.worlds)
    elif args.what == "capture":
        capture(args.out)
    else:
        return compare(args.a, args.b)
    return 0


if __name__ == "__main__":
    sys.exit(main())
