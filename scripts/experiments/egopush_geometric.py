"""Can a camera, read by geometry alone, give an EgoPush teacher what it needs? The teacher is
evaluated (as ``eval.py`` does: deterministic actions, Wilson intervals) on an observation in
which the named keypoint groups are built from the role-layered depth image and the wheel
speeds only, with no learning, and the other groups are the teacher's own:

- **a box** (``active``, ``anchor``, ``obstacle``): the pixels of its role layer are lifted to
  3-D points with the camera's calibration; their mean, moved 8.5 cm further along the line of
  sight, gives its centre (a camera sees a box's near faces, whose centroid lies 7 cm (corner-on)
  to 10 cm (face-on) nearer than the centre; ``--truth-steps`` prints how far that is from the
  truth, for boxes wholly in view and for boxes cut by the image's edge); the
  direction between neighbouring pixels of an image row on its side faces gives its yaw up to a
  quarter turn (which a camera cannot tell of a cube, and the teacher hardly minds:
  ``egopush_jitter.py --corners shift``); the anchor's marker (the post on its +y edge, above
  the top face) tells which quarter turn, once it has been seen. Each corner is shown as the
  teacher's are: while it projects into the image within range, at mid-height (so, as for the
  teacher, the near corners of a box being pushed drop out of view and stay where they were
  last seen);
- **the reference**: the target from that anchor centre and yaw and the formation's offsets, shown
  and stored while the anchor's centre is near the image centre (the teacher's gate); the
  placement index (which target is next) is the env's own: the one privileged input left;
- **memory**: each estimate is kept in the episode's start frame, moved by wheel odometry
  (``distill.egomap.odometry``), and shown for the teacher's ``memory_seconds`` after it was last
  seen, as the teacher's keypoint memory does. When the placement index changes, the two boxes
  that are not the anchor swap roles, and so do their memories (3 boxes), and the next target
  is unseen until the anchor is centred again;
- the robot's speed and yaw rate come from the wheel speeds, the previous action from ``proprio``;
  the fraction of boxes placed stays the env's.

Each row also gives the mean distance (m) between the estimated and the teacher's group centre
where both show it, seen now and only remembered (the teacher's own memory is stale where a box
moved out of its view). It tells what a student that estimates the teacher's observation (the
``--student.head teacher`` students) could reach with no learnt perception at all.
Formations with one box per role only (``egopush-line``, 3 boxes), and the env must render
``depth_layers`` with ``anchor_marker``; both are set here.

    python scripts/experiments/egopush_geometric.py checkpoints/egopush-line-teacher-fov_gated \\
        --parts none active boxes all --episodes 200
    python scripts/experiments/egopush_geometric.py checkpoints/egopush-line-teacher-fov_gated \\
        --episodes 0 --truth-steps 300 --num-envs 16
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import envs  # noqa: E402
from agents.evaluate import run_episodes  # noqa: E402
from distill.dagger import load_teacher  # noqa: E402
from distill.egomap import odometry, pixel_rays  # noqa: E402
from envs.egopush import scene  # noqa: E402

PARTS = {
    "none": (),
    "active": ("active",),
    "boxes": ("active", "anchor", "obstacle"),
    "all": ("active", "anchor", "obstacle", "reference"),
}
GROUP = {"active": 0, "anchor": 1, "obstacle": 2, "reference": 3}
TOP = 2 * scene.BOX_HALF  # height of a box's top face (m)
SIGHT = 0.085  # the faces a camera sees of a box lie this much nearer than its centre, on average
UNIT = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]]) * scene.BOX_HALF


def rotate(v: torch.Tensor, yaw: torch.Tensor) -> torch.Tensor:
    """``[..., 2]`` vectors turned by ``yaw`` ``[...]`` (broadcast)."""
    c, s = torch.cos(yaw), torch.sin(yaw)
    return torch.stack((c * v[..., 0] - s * v[..., 1], s * v[..., 0] + c * v[..., 1]), -1)


class Geometric:
    """The teacher on its ``privileged`` group with the groups in ``parts`` built from the camera
    and the wheels (see the module's docstring). Reads the env for episode starts and the
    placement index, as the docstring says."""

    def __init__(self, env, teacher, parts: tuple[str, ...]) -> None:
        self.env, self.teacher, self.parts = env, teacher, parts
        cfg, geo = env.cfg, env.camera_geometry()
        W_img, H_img = cfg.camera_resolution
        self.hw = (H_img, W_img)
        self.ray, _ = pixel_rays(geo, self.hw)  # [P, 3] per metre of depth, robot frame
        self.cam = torch.tensor(geo["cam_pos"])
        self.dt, self.half_track = float(geo["control_dt"]), float(geo["half_track"])
        self.memory, self.gate = cfg.memory_seconds, cfg.gate_fraction
        self.offsets = env.offsets.float().cpu()  # [placements, 2] in the anchor's frame
        self.range = cfg.camera_range
        N = env.num_envs
        self.pose, self.vel = torch.zeros(N, 3), torch.zeros(N, 2)
        self.kp = torch.zeros(N, 4, 4, 2)  # start-frame corners: active, anchor, obstacle, reference
        self.seen = torch.full((N, 4, 4), -1e9)  # control step each corner was last seen
        self.ayaw = torch.zeros(N)  # start-frame anchor yaw, from its marker
        self.ayaw_seen = torch.zeros(N, dtype=torch.bool)
        self.kc = torch.zeros(N, dtype=torch.long)  # placement index at the last step
        self.errors: dict[str, list[float]] = {k + r: [] for k in GROUP for r in ("", " (remembered)")}

    def _boxes(self, depth: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Role layers ``[N, 3, P]`` -> robot-frame top-face centres ``[N, 3, 2]``, whether each is
        seen ``[N, 3]``, each box's yaw up to a quarter turn ``[N, 3]`` (from its side faces), the
        anchor's yaw ``[N]`` (its marker tells the quarter turn) and whether that yaw is sure ``[N]``
        (enough of the marker and of the side faces in view)."""
        pts = self.cam + depth[..., None] * self.ray  # [N, 3, P, 3]
        on = depth > 0
        post = on & (pts[..., 2] > TOP + 0.005)  # the anchor's marker, above every box's top
        m = (on & ~post).float()
        mean = (m[..., None] * pts[..., :2]).sum(2) / m.sum(2, keepdim=True).clamp(min=1)
        sight = mean - self.cam[:2]
        centre = mean + SIGHT * sight / sight.norm(dim=-1, keepdim=True).clamp(min=1e-6)
        seen = m.sum(2) >= 2
        # Yaw up to a quarter turn: neighbouring pixels of an image row on a box's side face lie along
        # the face, whose direction is the box's yaw plus a multiple of a quarter turn.
        grid = pts.view(*pts.shape[:2], *self.hw, 3)
        side = (on & (pts[..., 2] > 0.01) & (pts[..., 2] < TOP - 0.01)).view(*on.shape[:2], *self.hw)
        step = grid[..., 1:, :2] - grid[..., :-1, :2]  # [N, 3, H, W - 1, 2]
        pair = side[..., 1:] & side[..., :-1] & (step.norm(dim=-1) < 0.15)  # the same face
        theta = torch.atan2(step[..., 1], step[..., 0])
        c4 = (pair * torch.cos(4 * theta)).flatten(2).sum(2)
        s4 = (pair * torch.sin(4 * theta)).flatten(2).sum(2)
        yaw4 = torch.atan2(s4, c4) / 4
        faces = pair.flatten(2).sum(2) >= 3
        marker = post[:, 1]
        mxy = (marker[..., None] * pts[:, 1, :, :2]).sum(1) / marker.sum(1, keepdim=True).clamp(min=1)
        mxy = mxy + 0.02 * sight[:, 1] / sight[:, 1].norm(dim=-1, keepdim=True).clamp(min=1e-6)  # its near faces
        d = mxy - centre[:, 1]
        coarse = torch.atan2(d[:, 1], d[:, 0]) - math.pi / 2  # the marker is on the anchor's +y edge
        # The marker tells which quarter turn; the faces, where seen, tell the angle within it.
        k = torch.round((coarse - yaw4[:, 1]) / (math.pi / 2))
        yaw = torch.where(faces[:, 1], yaw4[:, 1] + k * math.pi / 2, coarse)
        sure = seen[:, 1] & (marker.sum(1) >= 4) & (pair[:, 1].flatten(1).sum(1) >= 10)
        return centre, seen, yaw4, yaw, sure

    def __call__(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        env = self.env
        p = obs["privileged"].float().clone()  # [N, 1, D]
        step = env.episode_length.cpu().float()
        first = step == 0
        prop = obs["proprio"][:, 0].float().cpu()
        self.pose, self.vel = odometry(prop, self.pose, self.vel, first, self.dt, self.half_track)
        self.seen[first] = -1e9
        self.ayaw_seen &= ~first
        depth = obs["depth_layers"][:, 0].float().cpu().flatten(2)  # [N, 3, P]
        c_r, seen, yaw4, myaw, m_ok = self._boxes(depth)
        pos, heading = self.pose[:, :2], self.pose[:, 2]
        # When the placement index changes, the two boxes that are not the anchor swap roles (3 boxes),
        # and the next target has not been seen yet.
        kc = env._state()["kc"].cpu()
        swap = (kc != self.kc) & ~first
        for t in (self.kp, self.seen):
            t[swap] = t[swap][:, [2, 1, 0, 3]]
        self.seen[swap, 3] = -1e9
        self.kc = kc
        self.ayaw = torch.where(m_ok, myaw + heading, self.ayaw)
        self.ayaw_seen |= m_ok
        yaw = yaw4.clone()
        yaw[:, 1] = torch.where(self.ayaw_seen, self.ayaw - heading, yaw4[:, 1])
        # Corners now (robot frame): the boxes', then the target's, turned with the anchor.
        box = c_r[:, :, None] + rotate(UNIT, yaw[..., None])  # [N, 3, 4, 2]
        tgt = c_r[:, 1] + rotate(self.offsets[kc], yaw[:, 1])
        ref = tgt[:, None] + rotate(UNIT, yaw[:, 1, None])
        now = torch.cat((box, ref[:, None]), 1)  # [N, 4, 4, 2]
        # Which of them the teacher would be shown now: its own test, on the estimates.
        u, v, d = (t.cpu() for t in env.project(now.to(env.device), scene.BOX_HALF))
        vis = (u.abs() <= 1) & (v.abs() <= 1) & (d > 0.05) & (d <= self.range)
        cu, cv, cd = (t.cpu() for t in env.project(c_r[:, 1].to(env.device), scene.BOX_HALF))
        gated = seen[:, 1] & self.ayaw_seen & (cu.abs() <= self.gate) & (cv.abs() <= 1) & (cd <= self.range)
        vis[:, :3] &= seen[..., None]
        vis[:, 3] &= gated[:, None]
        now_s = pos[:, None, None] + rotate(now, heading[:, None, None])
        self.kp = torch.where(vis[..., None], now_s, self.kp)
        self.seen = torch.where(vis, step[:, None, None], self.seen)
        shown = (step[:, None, None] - self.seen) * self.dt <= self.memory  # [N, 4, 4]
        corners = rotate(self.kp - pos[:, None, None], -heading[:, None, None])  # robot frame
        kp = p[:, 0, :48].reshape(-1, 4, 4, 3).cpu().clone()
        for name in self.parts:
            g = GROUP[name]
            both = (kp[:, g, :, 2].amin(1) > 0) & shown[:, g].all(1)
            err = (corners[:, g].mean(1) - kp[:, g, :, :2].mean(1)).norm(dim=-1)
            fresh = vis[:, g].any(1)
            self.errors[name].extend(err[both & fresh].tolist())
            self.errors[name + " (remembered)"].extend(err[both & ~fresh].tolist())
            flag = shown[:, g].float()
            kp[:, g] = torch.cat((corners[:, g] * flag[..., None], flag[..., None]), -1)
        p[:, 0, :48] = kp.flatten(1).to(p)
        if self.parts:  # the robot's own motion from the wheels, the previous action from proprio
            p[:, 0, 48:50] = self.vel.to(p)
            p[:, 0, 50:52] = obs["proprio"][:, 0, 2:4].float()
        return self.teacher(p)


def truth_errors(env, teacher, steps: int, seed: int) -> dict[str, list[float]]:
    """The teacher drives ``env`` for ``steps`` steps; at each, the distance (m) from each box centre
    estimate (active box, anchor) to the true centre, split by whether all the box's top corners are
    in the image (wholly in view) or not (cut by the image's edge)."""
    g = Geometric(env, teacher, ())
    out: dict[str, list[float]] = {"wholly in view": [], "cut by the edge": []}
    obs = env.reset(seed=seed)
    rows = torch.arange(env.num_envs)[:, None]
    for _ in range(steps):
        s = env._state()
        idx = torch.stack((s["active"], torch.zeros_like(s["active"])), 1)  # active box, anchor (box 0)
        true = env._to_robot(s, s["box_pos"])[rows, idx].cpu()
        corners = env._to_robot(s, env._corners(s["box_pos"], s["box_yaw"], scene.BOX_HALF))[rows, idx]
        u, v, d = (t.cpu() for t in env.project(corners, TOP))
        whole = ((u.abs() < 1) & (v.abs() < 1) & (d > 0.05)).all(-1)
        centre, seen, *_ = g._boxes(obs["depth_layers"][:, 0].float().cpu().flatten(2))
        err = (centre[:, :2] - true).norm(dim=-1)
        out["wholly in view"] += err[seen[:, :2] & whole].tolist()
        out["cut by the edge"] += err[seen[:, :2] & ~whole].tolist()
        with torch.no_grad():
            obs, *_ = env.step(teacher(obs["privileged"].float()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("teacher", type=Path, help="an egopush-line teacher checkpoint (3 boxes)")
    ap.add_argument("--parts", nargs="+", default=list(PARTS), choices=list(PARTS), help="groups from the camera")
    ap.add_argument("--episodes", type=int, default=200, help="per row of the table (0: no table)")
    ap.add_argument("--num-envs", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument(
        "--truth-steps", type=int, default=0, help="first, this many steps of box-centre errors against the truth"
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    teacher, meta = load_teacher(args.teacher)
    cfg = dict(meta["env_config"])
    if meta["env"] != "egopush-line" or cfg.get("n_boxes", 3) != 3 or cfg.get("observability") == "global":
        raise SystemExit(f"{args.teacher}: expected an egopush-line fov or fov_gated teacher with 3 boxes")
    cfg.update(cameras=("depth_layers",), anchor_marker=True)
    env = envs.make(meta["env"], num_envs=args.num_envs, **cfg)
    if args.truth_steps > 0:
        errs = truth_errors(env, teacher, args.truth_steps, args.seed)
        print(f"box centre (active box, anchor) against the truth, {args.truth_steps} steps x {args.num_envs} worlds:")
        for k, v in errs.items():
            v = sorted(v)
            if v:
                q = (v[len(v) // 2], v[int(0.9 * len(v))], sum(v) / len(v))
                print(
                    f"  {k}: {len(v)} estimates, median {q[0]:.3f} m, 90th percentile {q[1]:.3f} m, mean {q[2]:.3f} m"
                )
    if args.episodes > 0:
        print(f"{args.teacher}: {args.episodes} episodes, seed {args.seed}")
        print("| groups from the camera | success [95% CI] | reach | mean centre error (m) where both show it |")
        print("|---|---|---:|---|")
        for name in args.parts:
            policy = Geometric(env, teacher, PARTS[name])
            r = run_episodes(env, policy, args.episodes, args.seed, progress=False)
            lo, hi = r["success_rate_ci95"]
            errs = {k: sum(v) / len(v) for k, v in policy.errors.items() if v}
            err = ", ".join(f"{k} {v:.3f}" for k, v in errs.items()) or "-"
            print(
                f"| {name} | {r['success_rate']:.3f} [{lo:.3f}, {hi:.3f}] | {r['reach_rate']:.3f} | {err} |", flush=True
            )
            print(json.dumps({"parts": name, "errors": errs, **r}), file=sys.stderr)
    env.close()


if __name__ == "__main__":
    main()
