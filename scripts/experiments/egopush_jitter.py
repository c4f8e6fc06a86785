"""How precisely must a student see what an EgoPush teacher reads? The teacher is evaluated (as
``eval.py`` does: deterministic actions, Wilson intervals) with every keypoint group it is shown
moved by a random offset, drawn afresh each step (one offset per group, normal with ``sigma``
metres per axis): a student whose estimate of the teacher's observation is off by that much acts
about as this does. One row per ``--sigmas`` value.

``--corners`` asks the same of the order of a box's corners. The boxes are cubes, so no camera
tells a box's yaw from its yaw plus a quarter turn, which moves each corner to the next slot of
its group: the teacher's keypoint order is not observable for the active box and the obstacles (the
anchor's is, with ``anchor_marker``, and the reference's follows the anchor's). Each mode changes
those groups only, every step: ``true`` leaves them; ``shift`` turns each group's order by a random
quarter-turn count; ``canonical`` puts them in the order a camera can tell, the first corner the one
at 0 to 90 degrees about the box's centre in the robot frame; ``centre`` puts every corner of a
group at its shown corners' mean, which is what an estimate fit by mean squared error to an order
it cannot see tends to; ``current`` shows each shown corner where it is now instead of where the
teacher's memory holds it (a corner out of view stays where it was last seen: the near corners of a
box being pushed, for one), as a student that tracks boxes better than the teacher's memory would.
``--groups`` offsets only the named keypoint groups (``active``, ``anchor``,
``obstacle``: every obstacle slot, ``reference``), each named set on its own row, to tell which of
them a student must place most precisely. One row per (corners, groups, sigma).

    python scripts/experiments/egopush_jitter.py checkpoints/egopush-line-teacher-fov_gated \
        --sigmas 0 0.05 0.1 0.2 --episodes 200
    python scripts/experiments/egopush_jitter.py checkpoints/egopush-line-teacher-fov_gated \
        --sigmas 0 --corners true shift canonical centre --episodes 200
    python scripts/experiments/egopush_jitter.py checkpoints/egopush-line-teacher-fov_gated \
        --sigmas 0.1 --groups all active anchor obstacle reference --episodes 200
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import torch

import envs
from agents.evaluate import run_episodes
from distill.egopush.probes import CORNERS, GROUPS, Jittered
from distill.teacher_env import load_teacher


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("teacher", type=Path, help="an EgoPush teacher checkpoint")
    ap.add_argument("--sigmas", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.2], help="offsets (m)")
    ap.add_argument("--corners", nargs="+", default=["true"], choices=CORNERS, help="corner orders (see above)")
    ap.add_argument("--groups", nargs="+", default=["all"], choices=GROUPS, help="groups offset (see above)")
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
    print("| box corners | groups offset | keypoint offset sigma (m) | success [95% CI] | reach |")
    print("|---|---|---:|---|---:|")
    for corners, jitter, sigma in itertools.product(args.corners, args.groups, args.sigmas):
        policy = Jittered(teacher, groups, sigma, args.seed, corners, jitter)
        r = run_episodes(env, policy, args.episodes, args.seed, progress=False)
        lo, hi = r["success_rate_ci95"]
        cells = (
            f"{corners} | {jitter} | {sigma:g} | {r['success_rate']:.3f} [{lo:.3f}, {hi:.3f}] | {r['reach_rate']:.3f}"
        )
        print(f"| {cells} |", flush=True)
        print(json.dumps({"corners": corners, "groups": jitter, "sigma": sigma, **r}), file=sys.stderr)
    env.close()


if __name__ == "__main__":
    main()
