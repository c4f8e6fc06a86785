"""Can a camera, read by geometry alone, give an EgoPush teacher what it needs? The teacher is
evaluated (as ``eval.py`` does: deterministic actions, Wilson intervals) on an observation in
which the named keypoint groups come from ``distill.egopush.geometry.GeoKeypoints`` (the role-layered depth
image and the wheel speeds only, no learning; its docstring says how), and the other groups are
the teacher's own. With ``--kc privileged`` (the default) the placement index (which target is
next, so which reference, and when the two boxes that are not the anchor swap roles) and the
fraction placed are the env's; with ``--kc estimated`` they are the estimate's too (a swap is
seen from where the boxes are), so with ``--parts all`` the teacher reads nothing from the env.
``--centre`` says where a box's centre comes from: ``top`` (the default: as ``corners``, and where
no side face is seen, the top face's edges), ``corners`` (the planes of its side faces and, where
one face is seen, the silhouette's ends), ``planes`` (the face planes alone) or ``pixels`` (the
first form's pixel mean).
The robot's speed and yaw rate come from the wheel speeds, the previous action from ``proprio``.
With ``--odometry true`` (a diagnostic) the memories move by the robot's true pose instead of
wheel odometry (which drifts by centimetres over an episode): what a perfect odometer would add.
``--labels`` says how a box's corners are named (its yaw is known up to a quarter turn): ``world``
(the default) by the quarter turn nearest its start-frame yaw when last seen, ``robot`` by the yaw
within 45 degrees of the robot's heading at each step (a corner's name, and so which memory it
writes, changes as the robot turns; the only naming before 2026-12-02).

Each row also gives the mean distance (m) between the estimated and the teacher's group centre
where both show it, seen now and only remembered (the teacher's own memory is stale where a box
moved out of its view), and how often the placement index was right. It tells what a student that
estimates the teacher's observation (``--student.head teacher``) could reach with no learnt
perception at all. ``--truth-steps`` prints how far the box centres are from the truth, for boxes
wholly in view and for boxes cut by the image's edge, how often the anchor's yaw is a quarter turn
off (single readings, and the yaw the estimate holds) and how often the placement index is right.
Formations with one box per role only (``egopush-line``, 3 boxes), and the env must render
``depth_layers`` with ``anchor_marker``; both are set here. A ``global`` teacher is shown every
keypoint at every step, so its "remembered" errors include boxes the camera has not seen yet.

    python scripts/experiments/egopush_geometric.py checkpoints/egopush-line-teacher-fov_gated \\
        --parts none active boxes all --episodes 200
    python scripts/experiments/egopush_geometric.py checkpoints/egopush-line-teacher-fov_gated \\
        --parts all --kc estimated --episodes 200
    python scripts/experiments/egopush_geometric.py checkpoints/egopush-line-teacher-fov_gated \\
        --parts all --kc estimated --episodes 200 --odometry true
    python scripts/experiments/egopush_geometric.py checkpoints/egopush-line-teacher-fov_gated \\
        --episodes 0 --truth-steps 300 --num-envs 16
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Literal, get_args

import torch
import tyro

import envs
from agents.evaluate import run_episodes
from distill.egopush.geometry import CENTRES, LABELS, GeoKeypoints, rotate
from distill.egopush.probes import line_teacher
from envs.egopush import scene

PARTS = {
    "none": (),
    "active": ("active",),
    "boxes": ("active", "anchor", "obstacle"),
    "all": ("active", "anchor", "obstacle", "reference"),
}
GROUP = {"active": 0, "anchor": 1, "obstacle": 2, "reference": 3}
Part = Literal["none", "active", "boxes", "all"]
"""A row of the table: the keypoint groups (``PARTS``) taken from the camera."""
Centre = Literal["top", "corners", "planes", "pixels"]
"""Where a box's centre comes from (``distill.egopush.geometry.CENTRES``)."""
Label = Literal["world", "robot"]
"""How a box's corners are named (``distill.egopush.geometry.LABELS``)."""
assert get_args(Part) == tuple(PARTS) and get_args(Centre) == CENTRES and get_args(Label) == LABELS


class Geometric:
    """The teacher on its ``privileged`` group with the groups in ``parts`` taken from
    ``distill.egopush.geometry.GeoKeypoints`` (see the module's docstring). With ``privileged_kc`` the
    placement index and the fraction placed are the env's (as the first table of the README);
    without, they are the estimate's too, and nothing the teacher reads comes from the env."""

    def __init__(
        self,
        env,
        teacher,
        parts: tuple[str, ...],
        privileged_kc: bool,
        centres: str,
        true_pose: bool = False,
        labels: str = LABELS[0],
    ) -> None:
        self.env, self.teacher, self.parts, self.privileged_kc = env, teacher, parts, privileged_kc
        self.pose = StartFramePose(env) if true_pose else None
        W_img, H_img = env.cfg.camera_resolution
        self.geo = GeoKeypoints(env.keypoint_geometry(), (H_img, W_img), centres=centres, labels=labels)
        self.state = self.geo.init_state(env.num_envs)
        self.errors: dict[str, list[float]] = {k + r: [] for k in GROUP for r in ("", " (remembered)")}
        self.kc_right: list[float] = []

    def __call__(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        env = self.env
        p = obs["privileged"].float().clone()  # [N, 1, D]
        first = env.episode_length.cpu() == 0
        depth = obs["depth_layers"][:, 0].float().cpu()
        kc = env.task_state()["kc"].cpu()
        prev = self.state
        pose = self.pose(first) if self.pose is not None else None
        self.state = self.geo.step(
            depth, obs["proprio"][:, 0].float().cpu(), prev, first, kc if self.privileged_kc else None, pose
        )
        self.kc_right.extend((self.state.kc == kc).float().tolist())
        est = self.state.out[:, :48].reshape(-1, 4, 4, 3)
        kp = p[:, 0, :48].reshape(-1, 4, 4, 3).cpu().clone()
        for name in self.parts:
            g = GROUP[name]
            both = (kp[:, g, :, 2].amin(1) > 0) & (est[:, g, :, 2].amin(1) > 0)
            err = (est[:, g, :, :2].mean(1) - kp[:, g, :, :2].mean(1)).norm(dim=-1)
            slot = torch.full_like(kc, g) if g < 3 else 3 + self.state.kc  # its memory slot
            fresh = self.state.seen[torch.arange(len(kc)), slot].amax(-1) == self.state.step  # seen now
            self.errors[name].extend(err[both & fresh].tolist())
            self.errors[name + " (remembered)"].extend(err[both & ~fresh].tolist())
            kp[:, g] = est[:, g]
        p[:, 0, :48] = kp.flatten(1).to(p)
        if self.parts:  # the robot's own motion from the wheels, the previous action from proprio
            p[:, 0, 48:52] = self.state.out[:, 48:52].to(p)
            if not self.privileged_kc:
                p[:, 0, 52] = self.state.out[:, 52].to(p)
        return self.teacher(p)


class StartFramePose:
    """The robot's true pose ``[N, 3]`` in its episode's start frame (``--odometry true``)."""

    def __init__(self, env) -> None:
        self.env = env
        self.start: tuple[torch.Tensor, torch.Tensor] | None = None

    def __call__(self, first: torch.Tensor) -> torch.Tensor:
        s = self.env.task_state()
        pos, yaw = s["pos"].float().cpu(), s["yaw"].float().cpu()
        if self.start is None:
            self.start = (pos, yaw)
        p0 = torch.where(first[:, None], pos, self.start[0])
        y0 = torch.where(first, yaw, self.start[1])
        self.start = (p0, y0)
        return torch.cat((rotate(pos - p0, -y0), (yaw - y0)[:, None]), -1)


def truth_errors(
    env, teacher, steps: int, seed: int, centres: str
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """The teacher drives ``env`` for ``steps`` steps; at each, the distance (m) from each box centre
    estimate (active box, anchor) to the true centre, split by whether all the box's top corners are
    in the image (wholly in view) or not (cut by the image's edge); and, as 0/1 per step, whether the
    anchor's yaw is off by more than 0.5 rad (a wrong quarter turn), for the single readings (where
    sure) and for the yaw the estimate holds (once its marker was seen; also split by how long ago
    the marker was last read), and whether the estimated placement index is right; and how far wheel
    odometry's position is from the robot's true one in its episode's start frame (m), by how many
    steps the episode has run."""
    W_img, H_img = env.cfg.camera_resolution
    geo = GeoKeypoints(env.keypoint_geometry(), (H_img, W_img), centres=centres)
    state = geo.init_state(env.num_envs)
    drift = ("odometry's drift, steps 1-99", "odometry's drift, steps 100-299", "odometry's drift, steps 300 on")
    out: dict[str, list[float]] = {"wholly in view": [], "cut by the edge": [], **{k: [] for k in drift}}
    true_pose = StartFramePose(env)
    rates: dict[str, list[float]] = {
        "anchor yaw reading wrong": [],
        "anchor yaw held wrong": [],
        "  held wrong, marker read at this step": [],
        "  held wrong, marker last read 1-50 steps before": [],
        "  held wrong, marker last read more than 50 steps before": [],
        "index right": [],
    }
    obs = env.reset(seed=seed)
    since = torch.zeros(env.num_envs, dtype=torch.long)  # steps since the anchor's marker was read
    rows = torch.arange(env.num_envs)[:, None]

    def wrong(yaw: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
        return ((torch.remainder(yaw - true + math.pi, 2 * math.pi) - math.pi).abs() > 0.5).float()

    for _ in range(steps):
        s = env.task_state()
        idx = torch.stack((s["active"], torch.zeros_like(s["active"])), 1)  # active box, anchor (box 0)
        true = env.to_robot(s, s["box_pos"])[rows, idx].cpu()
        corners = env.to_robot(s, env.corners(s["box_pos"], s["box_yaw"], scene.BOX_HALF))[rows, idx]
        u, v, d = (t.cpu() for t in env.project(corners, 2 * scene.BOX_HALF))
        whole = ((u.abs() < 1) & (v.abs() < 1) & (d > 0.05)).all(-1)
        depth = obs["depth_layers"][:, 0].float().cpu()
        centre, seen, _, reading, sure = geo.boxes(depth.flatten(2))
        err = (centre[:, :2] - true).norm(dim=-1)
        out["wholly in view"] += err[seen[:, :2] & whole].tolist()
        out["cut by the edge"] += err[seen[:, :2] & ~whole].tolist()
        first = env.episode_length.cpu() == 0
        state = geo.step(depth, obs["proprio"][:, 0].float().cpu(), state, first)
        off = (state.pose[:, :2] - true_pose(first)[:, :2]).norm(dim=-1)
        t = env.episode_length.cpu()
        for key, when in zip(drift, ((t > 0) & (t < 100), (t >= 100) & (t < 300), t >= 300), strict=True):
            out[key] += off[when].tolist()
        ayaw = (s["anchor_yaw"] - s["yaw"]).cpu()
        rates["anchor yaw reading wrong"] += wrong(reading, ayaw)[sure].tolist()
        held = wrong(state.ayaw - state.pose[:, 2], ayaw)
        rates["anchor yaw held wrong"] += held[state.ayaw_seen].tolist()
        since = torch.where(sure, 0, since + 1)
        for key, when in (
            ("  held wrong, marker read at this step", since == 0),
            ("  held wrong, marker last read 1-50 steps before", (since > 0) & (since <= 50)),
            ("  held wrong, marker last read more than 50 steps before", since > 50),
        ):
            rates[key] += held[state.ayaw_seen & when].tolist()
        rates["index right"] += (state.kc == s["kc"].cpu()).float().tolist()
        with torch.no_grad():
            obs, *_ = env.step(teacher(obs["privileged"].float()))
    return out, rates


@dataclasses.dataclass(frozen=True)
class GeometricConfig:
    """An EgoPush teacher on keypoint groups estimated from a camera by geometry alone."""

    teacher: tyro.conf.Positional[Path]
    """An ``egopush-line`` teacher checkpoint (3 boxes)."""
    parts: tuple[Part, ...] = tuple(PARTS)
    """Groups from the camera, one row each: ``none``, ``active`` (the active box), ``boxes`` (the
    three boxes) or ``all`` (the reference too)."""
    episodes: int = 200
    """Episodes per row of the table (0: no table)."""
    num_envs: int = 64
    """Worlds played at once."""
    seed: int = 1000
    """Seed of the env."""
    kc: Literal["privileged", "estimated"] = "privileged"
    """Placement index and fraction placed: the env's, or the estimate's."""
    centre: Centre = "top"
    """Box centres from the planes of the side faces, (one face seen) its silhouette's ends and (no side
    face seen) the top face's edges; without the top face; the face planes alone; or the pixel mean
    moved along the sight line."""
    truth_steps: int = 0
    """First, this many steps of errors against the truth (box centres, anchor yaw, placement index)."""
    labels: Label = "world"
    """A box's corners named by the quarter turn nearest its yaw as last seen in the episode's start
    frame (names that do not change as the robot turns; the default), or by its yaw in the robot's
    frame at each step (the only naming before 2026-12-02)."""
    odometry: Literal["wheels", "true"] = "wheels"
    """Memories moved by wheel odometry, or (a diagnostic) by the robot's true pose."""


def main(cfg: GeometricConfig) -> None:
    if not cfg.parts:
        raise SystemExit("--parts: give at least one of " + ", ".join(PARTS))
    torch.set_num_threads(1)
    teacher, meta, env_cfg = line_teacher(cfg.teacher)
    env_cfg.update(cameras=("depth_layers",), anchor_marker=True)
    env = envs.make(meta["env"], num_envs=cfg.num_envs, **env_cfg)
    if cfg.truth_steps > 0:
        errs, rates = truth_errors(env, teacher, cfg.truth_steps, cfg.seed, cfg.centre)
        print(
            f"box centre (active box, anchor) against the truth, and odometry against the true pose, "
            f"{cfg.truth_steps} steps x {cfg.num_envs} worlds:"
        )
        for k, v in errs.items():
            v = sorted(v)
            if v:
                q = (v[len(v) // 2], v[int(0.9 * len(v))], sum(v) / len(v))
                print(
                    f"  {k}: {len(v)} estimates, median {q[0]:.3f} m, 90th percentile {q[1]:.3f} m, mean {q[2]:.3f} m"
                )
        for k, v in rates.items():
            print(f"  {k}: {sum(v) / max(1, len(v)):.3f} of {len(v)} steps")
    if cfg.episodes > 0:
        print(
            f"{cfg.teacher}: {cfg.episodes} episodes, seed {cfg.seed}, placement index {cfg.kc}, "
            f"centres from {cfg.centre}, odometry {cfg.odometry}, corner labels {cfg.labels}"
        )
        print(
            "| groups from the camera | success [95% CI] | reach | placement index right "
            "| mean centre error (m) where both show it |"
        )
        print("|---|---|---:|---:|---|")
        for name in cfg.parts:
            policy = Geometric(
                env, teacher, PARTS[name], cfg.kc == "privileged", cfg.centre, cfg.odometry == "true", cfg.labels
            )
            r = run_episodes(env, policy, cfg.episodes, cfg.seed, progress=False)
            lo, hi = r["success_rate_ci95"]
            errs = {k: sum(v) / len(v) for k, v in policy.errors.items() if v}
            err = ", ".join(f"{k} {v:.3f}" for k, v in errs.items()) or "-"
            kc_right = sum(policy.kc_right) / max(1, len(policy.kc_right))
            print(
                f"| {name} | {r['success_rate']:.3f} [{lo:.3f}, {hi:.3f}] | {r['reach_rate']:.3f} "
                f"| {kc_right:.3f} | {err} |",
                flush=True,
            )
            row = {
                "parts": name,
                "kc": cfg.kc,
                "centre": cfg.centre,
                "odometry": cfg.odometry,
                "labels": cfg.labels,
                "kc_right": kc_right,
                "errors": errs,
            }
            print(json.dumps({**row, **r}), file=sys.stderr)
    env.close()


if __name__ == "__main__":
    main(tyro.cli(GeometricConfig))
