"""Does an EgoPush teacher rely on the order of a box's corners, which no camera can see?

The privileged keypoints list each box's corners in the order its yaw gives them (``envs.egopush``:
corner ``i`` at the box's yaw plus ``i`` quarter turns). A cube looks the same after a quarter turn,
so from an image only its yaw modulo a quarter turn can be known (``distill.egopush.geometry`` estimates that
one): the order of a camera-estimated box is the env's order shifted by a number of places the
camera cannot know. Here the teacher is evaluated (as ``eval.py``: deterministic actions, Wilson
intervals, the same seeds and worlds) on its own observation as is, and with the corners of the two
boxes that are not the anchor (active box, obstacle) put in the camera's order: shifted so that
corner 0 is the one of the box's yaw taken into [-45, 45) degrees. The anchor (its marker tells
its whole yaw) and the reference (turned with the anchor) keep theirs.

    python scripts/experiments/egopush_corner_order.py checkpoints/egopush-line-teacher-fov_gated \\
        --seeds 1000 2000 3000 4000
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import tyro

import envs
from agents.evaluate import run_episodes, wilson_interval
from distill.egopush.probes import camera_order, line_teacher

GROUPS = 4
"""Keypoint groups of an EgoPush teacher's observation: active box, anchor, obstacle, reference."""


class CameraOrder:
    """The teacher on its ``privileged`` group, with the active box's and the obstacle's corners in
    the camera's order (``camera_order``)."""

    def __init__(self, env, teacher) -> None:
        self.env, self.teacher = env, teacher
        self.placed_idx = env._placed_idx.cpu()
        self.rows = torch.arange(env.num_envs)

    def __call__(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        s = self.env.task_state()
        kc = s["kc"].cpu()
        box_yaw = s["box_yaw"].cpu()
        p = obs["privileged"].float().clone()  # [N, 1, D]
        kp = p[:, 0, : GROUPS * 12].reshape(-1, GROUPS, 4, 3).cpu()
        for group, box in ((0, self.placed_idx[kc]), (2, self.placed_idx[1 - kc])):
            kp[:, group] = camera_order(kp[:, group], box_yaw[self.rows, box])
        p[:, 0, : GROUPS * 12] = kp.flatten(1).to(p)
        return self.teacher(p)


@dataclasses.dataclass(frozen=True)
class CornerOrderConfig:
    """An EgoPush teacher with its boxes' corners as is and in the camera's order."""

    teacher: tyro.conf.Positional[Path]
    """An ``egopush-line`` teacher checkpoint (3 boxes)."""
    episodes: int = 200
    """Episodes per seed and row."""
    num_envs: int = 64
    """Worlds played at once."""
    seeds: tuple[int, ...] = (1000,)
    """Evaluation seeds, one column each (pooled in the last)."""


def main(cfg: CornerOrderConfig) -> None:
    if not cfg.seeds:
        raise SystemExit("--seeds: give at least one seed")
    torch.set_num_threads(1)
    teacher, meta, env_cfg = line_teacher(cfg.teacher)
    env = envs.make(meta["env"], num_envs=cfg.num_envs, **env_cfg)
    rows = {
        "as is (the env's order)": lambda obs: teacher(obs["privileged"].float()),
        "camera's order": CameraOrder(env, teacher),
    }
    print(f"{cfg.teacher}: {cfg.episodes} episodes per seed")
    print("| corners | " + " | ".join(f"seed {s}" for s in cfg.seeds) + " | pooled |")
    print("|---|" + "---|" * (len(cfg.seeds) + 1))
    for name, policy in rows.items():
        cells, total = [], 0
        for seed in cfg.seeds:
            r = run_episodes(env, policy, cfg.episodes, seed, progress=False)
            wins = round(r["success_rate"] * cfg.episodes)
            total += wins
            lo, hi = r["success_rate_ci95"]
            cells.append(f"{r['success_rate']:.3f} [{lo:.3f}, {hi:.3f}]")
        n = cfg.episodes * len(cfg.seeds)
        lo, hi = wilson_interval(total, n)
        pooled = f"{total} / {n}: {total / n:.3f} [{lo:.3f}, {hi:.3f}]"
        print(f"| {name} | " + " | ".join(cells) + f" | {pooled} |", flush=True)
    env.close()


if __name__ == "__main__":
    main(tyro.cli(CornerOrderConfig))
