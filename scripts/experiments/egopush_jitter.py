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

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import envs  # noqa: E402
from agents.evaluate import run_episodes  # noqa: E402
from distill.dagger import load_teacher  # noqa: E402

CORNERS = ("true", "shift", "canonical", "centre", "current")
GROUPS = ("all", "active", "anchor", "obstacle", "reference")


def group_indices(name: str, groups: int) -> list[int]:
    """Keypoint group indices of ``name`` (one of ``GROUPS``) among ``groups``: active box, anchor,
    obstacle slots, reference."""
    return {
        "all": list(range(groups)),
        "active": [0],
        "anchor": [1],
        "obstacle": list(range(2, groups - 1)),
        "reference": [groups - 1],
    }[name]


def canonical_roll(full: torch.Tensor) -> torch.Tensor:
    """``[..., 4, 2]`` corners of squares (in order round the square, counter-clockwise) -> ``[...]``
    the count ``k`` such that corner ``k`` is the one at 0 to 90 degrees about the centre."""
    d = full - full.mean(-2, keepdim=True)
    a0 = torch.atan2(d[..., 0, 1], d[..., 0, 0])  # corner 0's angle; corner k's is a0 + k quarter turns
    return (-torch.floor(a0 / (torch.pi / 2))).long() % 4


def roll_corners(kp: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``kp`` ``[..., 4, C]`` with corner ``i`` replaced by corner ``(i + k) % 4`` (``k`` ``[...]``)."""
    idx = (torch.arange(4, device=kp.device) + k[..., None]) % 4
    return kp.gather(-2, idx[..., None].expand(*idx.shape, kp.shape[-1]))


class Jittered:
    """The teacher on its ``privileged`` group with each shown keypoint group offset by N(0, sigma^2),
    and the corners of the boxes whose yaw a camera cannot tell (the active box, the obstacles) as
    ``corners`` says (see the module's docstring)."""

    def __init__(
        self, teacher, groups: int, sigma: float, seed: int, corners: str = "true", jitter: str = "all"
    ) -> None:
        if corners not in CORNERS:
            raise ValueError(f"corners must be one of {CORNERS}, got {corners!r}")
        if jitter not in GROUPS:
            raise ValueError(f"jitter must be one of {GROUPS}, got {jitter!r}")
        self.teacher, self.groups, self.sigma, self.corners = teacher, groups, sigma, corners
        self.jittered = torch.zeros(groups, 1, 1)  # 1 for the groups that get offsets
        self.jittered[group_indices(jitter, groups)] = 1.0
        self.gen = torch.Generator().manual_seed(seed)
        self.boxes = group_indices("active", groups) + group_indices("obstacle", groups)  # yaw unseen

    def __call__(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        p = obs["privileged"].float().clone()  # [W, 1, D]
        kp = p[..., : 12 * self.groups].reshape(*p.shape[:-1], self.groups, 4, 3).clone()
        if self.corners != "true":
            b = self.boxes
            box = kp[..., b, :, :]
            if self.corners == "current":
                now = obs["critic"].float()[..., : 12 * self.groups].reshape(*kp.shape)[..., b, :, :2]
                box = torch.cat((now * box[..., 2:3], box[..., 2:3]), -1)
            elif self.corners == "centre":
                shown = box[..., 2:3]
                mean = (box[..., :2] * shown).sum(-2, keepdim=True) / shown.sum(-2, keepdim=True).clamp(min=1)
                box = torch.cat((mean.expand_as(box[..., :2]) * shown, shown), -1)
            else:
                if self.corners == "shift":
                    k = torch.randint(0, 4, box.shape[:-2], generator=self.gen).to(p.device)
                else:  # from every corner (the critic group shows them all), as a camera sees the square
                    full = obs["critic"].float()[..., : 12 * self.groups].reshape(*kp.shape)[..., b, :, :2]
                    k = canonical_roll(full)
                box = roll_corners(box, k)
            kp[..., b, :, :] = box
        shift = torch.randn(*kp.shape[:-2], 1, 2, generator=self.gen).to(p) * self.sigma * self.jittered.to(p)
        kp[..., :2] = (kp[..., :2] + shift) * kp[..., 2:3]  # unshown corners stay at zero
        p[..., : 12 * self.groups] = kp.flatten(-3)
        return self.teacher(p)


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
