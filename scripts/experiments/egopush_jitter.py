"""How precisely must a student see what an EgoPush teacher reads? The teacher is evaluated (as
``eval.py`` does: deterministic actions, Wilson intervals) with every keypoint group it is shown
moved by a random offset, drawn afresh each step (one offset per group, normal with ``sigma``
metres per axis): a student whose estimate of the teacher's observation is off by that much acts
about as this does. One row per ``--sigmas`` value.

    python scripts/experiments/egopush_jitter.py checkpoints/egopush-line-teacher-fov_gated \
        --sigmas 0 0.05 0.1 0.2 --episodes 200
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import envs  # noqa: E402
from agents.evaluate import run_episodes  # noqa: E402
from distill.dagger import load_teacher  # noqa: E402


class Jittered:
    """The teacher on its ``privileged`` group with each shown keypoint group offset by N(0, sigma^2)."""

    def __init__(self, teacher, groups: int, sigma: float, seed: int) -> None:
        self.teacher, self.groups, self.sigma = teacher, groups, sigma
        self.gen = torch.Generator().manual_seed(seed)

    def __call__(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        p = obs["privileged"].float().clone()  # [W, 1, D]
        kp = p[..., : 12 * self.groups].reshape(*p.shape[:-1], self.groups, 4, 3)
        shift = torch.randn(*kp.shape[:-2], 1, 2, generator=self.gen).to(p) * self.sigma
        kp[..., :2] = (kp[..., :2] + shift) * kp[..., 2:3]  # unshown corners stay at zero
        p[..., : 12 * self.groups] = kp.flatten(-3)
        return self.teacher(p)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("teacher", type=Path, help="an EgoPush teacher checkpoint")
    ap.add_argument("--sigmas", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.2], help="offsets (m)")
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--num-envs", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1000)
    args = ap.parse_args()
    if any(s < 0 for s in args.sigmas):
        raise SystemExit(f"--sigmas must be >= 0, got {args.sigmas}")
    torch.set_num_threads(1)
    teacher, meta = load_teacher(args.teacher)
    if not meta["env"].startswith("egopush"):
        raise SystemExit(f"{args.teacher}: expected an EgoPush teacher, got one of {meta['env']!r}")
    env = envs.make(meta["env"], num_envs=args.num_envs, **meta["env_config"])
    groups = (env.observation_spaces["privileged"].shape[0] - 5) // 12
    print(f"{args.teacher}: {args.episodes} episodes, seed {args.seed}, {groups} keypoint groups jittered")
    print("| keypoint offset sigma (m) | success [95% CI] | reach |")
    print("|---:|---|---:|")
    for sigma in args.sigmas:
        r = run_episodes(env, Jittered(teacher, groups, sigma, args.seed), args.episodes, args.seed, progress=False)
        lo, hi = r["success_rate_ci95"]
        print(f"| {sigma:g} | {r['success_rate']:.3f} [{lo:.3f}, {hi:.3f}] | {r['reach_rate']:.3f} |", flush=True)
        print(json.dumps({"sigma": sigma, **r}), file=sys.stderr)
    env.close()


if __name__ == "__main__":
    main()
