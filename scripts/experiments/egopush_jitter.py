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

import dataclasses
import itertools
import json
import sys
from pathlib import Path
from typing import Literal, get_args

import torch
import tyro

import envs
from agents.evaluate import run_episodes
from distill.egopush.probes import CORNERS, GROUPS, Jittered
from distill.teacher_env import load_teacher

Corners = Literal["true", "shift", "canonical", "centre", "current"]
"""A corner order of ``--corners`` (``distill.egopush.probes.CORNERS``)."""
Groups = Literal["all", "active", "anchor", "obstacle", "reference"]
"""A set of keypoint groups of ``--groups`` (``distill.egopush.probes.GROUPS``)."""
assert get_args(Corners) == CORNERS and get_args(Groups) == GROUPS


@dataclasses.dataclass(frozen=True)
class JitterConfig:
    """An EgoPush teacher with the keypoint groups it is shown moved by random offsets."""

    teacher: tyro.conf.Positional[Path]
    """An EgoPush teacher checkpoint."""
    sigmas: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2)
    """Offsets (m): the std of each group's offset per axis, one row each."""
    corners: tuple[Corners, ...] = ("true",)
    """Corner orders, one row each (see the module's docstring)."""
    groups: tuple[Groups, ...] = ("all",)
    """Keypoint groups offset, one row per set (see the module's docstring)."""
    episodes: int = 200
    """Episodes per row."""
    num_envs: int = 64
    """Worlds played at once."""
    seed: int = 1000
    """Seed of the env and of the offsets."""


def main(cfg: JitterConfig) -> None:
    for flag in ("sigmas", "corners", "groups"):
        if not getattr(cfg, flag):
            raise SystemExit(f"--{flag}: give at least one value")
    if any(s < 0 for s in cfg.sigmas):
        raise SystemExit(f"--sigmas must be >= 0, got {list(cfg.sigmas)}")
    torch.set_num_threads(1)
    teacher, meta = load_teacher(cfg.teacher)
    if not meta["env"].startswith("egopush"):
        raise SystemExit(f"{cfg.teacher}: expected an EgoPush teacher, got one of {meta['env']!r}")
    env = envs.make(meta["env"], num_envs=cfg.num_envs, **meta["env_config"])
    groups = (env.observation_spaces["privileged"].shape[0] - 5) // 12
    print(f"{cfg.teacher}: {cfg.episodes} episodes, seed {cfg.seed}, {groups} keypoint groups jittered")
    print("| box corners | groups offset | keypoint offset sigma (m) | success [95% CI] | reach |")
    print("|---|---|---:|---|---:|")
    for corners, jitter, sigma in itertools.product(cfg.corners, cfg.groups, cfg.sigmas):
        policy = Jittered(teacher, groups, sigma, cfg.seed, corners, jitter)
        r = run_episodes(env, policy, cfg.episodes, cfg.seed, progress=False)
        lo, hi = r["success_rate_ci95"]
        cells = (
            f"{corners} | {jitter} | {sigma:g} | {r['success_rate']:.3f} [{lo:.3f}, {hi:.3f}] | {r['reach_rate']:.3f}"
        )
        print(f"| {cells} |", flush=True)
        print(json.dumps({"corners": corners, "groups": jitter, "sigma": sigma, **r}), file=sys.stderr)
    env.close()


if __name__ == "__main__":
    main(tyro.cli(JitterConfig))
