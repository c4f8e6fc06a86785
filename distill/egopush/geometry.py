"""Geometric keypoints: an EgoPush teacher's observation, estimated from the camera by geometry alone.

A ``fov`` / ``fov_gated`` EgoPush teacher reads the corners of the active box, the anchor, the
obstacle and the reference (the active box's target), each where it was last seen and shown for
``memory_seconds`` after (``envs.egopush``), and the robot's speed, yaw rate, previous action and
the fraction of boxes placed. ``GeoKeypoints`` builds the same vector from what a robot has on
board, the role-layered depth image and the wheel speeds, with no learnt parameters (so, as the
map of ``distill.egopush.odometry_map``, a student trains on the stored estimates without back-propagation
through time):

- **a box**: the pixels of its role layer lifted to 3-D points with the camera's calibration
  (``distill.egopush.odometry_map.pixel_rays``); the direction between neighbouring pixels of an image row on its
  side faces gives its yaw up to a quarter turn; each side face seen fixes the centre along its
  normal, half a box behind the face, however much of the box is hidden or cut by the image's edge
  (``GeoKeypoints._planes``). Where one face is seen, its ends fix the centre along it: an image
  row's outermost pixel of the face, not at the image's edge and not beside a nearer box, is one of
  the face's two vertical edges (the box's silhouette), so the centre is half a box in from it
  (``GeoKeypoints._corners``); a sliver at the image's edge that shows no face is not used. A box
  that shows its top face alone (the one being pushed: its near faces are below the image) is placed
  by that face's far edge (each image column's topmost pixel) and lateral edges (each row's
  outermost), half a box in from each (``GeoKeypoints._top``). Along a
  direction neither fixes, the centre is the pixels' mean moved ``SIGHT`` further along the line of
  sight (a camera sees a box's near faces, 7 to 10 cm nearer than its centre). The anchor's marker
  (the post on its +y edge) tells which quarter turn (the env must be made with ``anchor_marker``).
  A reading can take the wrong quarter turn (where the centre is off), so the quarter turn held is
  the vote of all the readings so far (fading by ``vote_decay`` per step);
- **the reference**: the formation's offset of the current placement from that anchor pose, shown
  while the anchor's centre is near the image centre (a ``fov_gated`` teacher's gate);
- **which corner is which**: a cube's yaw is known up to a quarter turn; with ``labels="world"``
  (the default) each box's corners are named by the quarter turn nearest its start-frame yaw when
  last seen, so each keeps its name as the robot turns;
- **memory**: each corner is kept in the episode's start frame, moved by wheel odometry
  (``distill.egopush.odometry_map.odometry``), and shown by the teacher's own rules: stored while it projects into
  the image within range, shown for ``memory_seconds`` after it was last seen. A ``global`` teacher
  sees every keypoint at every step, so for it every corner is shown, where it was last seen (never
  seen: at the robot's start pose, a learnt correction's to mend), and the reference follows the
  anchor as remembered;
- **which box is which**: the env swaps the roles of the two boxes that are not the anchor when
  one is placed or knocked out of place (3 boxes: one per role). A swap is seen when a role layer
  shows its box where the other role's box was last seen and not where its own was (with both
  layers showing a box: when the crossed pairing fits better than the straight one); the memories
  swap with it, and the placement index (which target is next, so which reference) flips. Where
  the anchor and the obstacle are in view, the index is also read directly: 1 when the obstacle is
  within the env's tolerance of the first target (it is the first box, placed), 0 when it is
  clearly away from it. The fraction placed is the placement index over the number of placements.

What geometry cannot give (a box cut by the image's edge, the teacher's own stale memory, a box
knocked out of place unseen) a student learns on top: ``Student`` with ``memory=geometric``
reads this estimate (normalised with the teacher's statistics) beside its image features, and its
``head=teacher`` estimate is this one plus a learnt correction that starts at zero.
``scripts/experiments/egopush_geometric.py`` measures the teacher acting on this estimate.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from distill.egopush.box_reading import SIGHT, SLIVER, BoxReader, rotate  # noqa: F401  (SIGHT, SLIVER: documented here)
from distill.egopush.odometry_map import odometry, pixel_rays, project

CENTRES = ("top", "corners", "planes", "pixels")
"""Where a box's centre comes from (``GeoKeypoints``'s ``centres``), the default first."""
LABELS = ("world", "robot")
"""How a box's corners are named (``GeoKeypoints``'s ``labels``), the default first."""
UNIT = ((1.0, 1.0), (-1.0, 1.0), (-1.0, -1.0), (1.0, -1.0))
"""A square's corners in its own frame, in the env's order, per unit half-side."""
KEYS = (
    "cam_pos",
    "cam_mat",
    "tan_half",
    "camera_range",
    "control_dt",
    "half_track",
    "box_half",
    "offsets",
    "memory_seconds",
    "gate_fraction",
    "observability",
    "n_boxes",
    "task",
    "position_tolerance",
)


@dataclasses.dataclass
class GeoState:
    """Per-row state:

    - ``pose`` ``[N, 3]`` and ``vel`` ``[N, 2]``: odometry, as ``MapState``;
    - ``step`` ``[N]``: control steps since the episode started;
    - ``kp`` ``[N, 3 + P, 4, 2]``: start-frame corners of the active box, anchor, obstacle and each
      placement's reference; ``seen`` ``[N, 3 + P, 4]``: the step each was last seen;
    - ``ayaw`` ``[N]``: the anchor's start-frame yaw; ``ayaw_seen`` ``[N]``: its marker has been
      seen; ``avote`` ``[N, 2]``: the sum of the unit vectors of its yaw readings, fading (which
      quarter turn most of them saw);
    - ``kc`` ``[N]``: the placement index;
    - ``centre`` ``[N, 3, 2]``: each box's start-frame centre when its layer last showed it, corners
      in view or not (what a swap of roles is told by);
    - ``byaw`` ``[N, 3]``: each box's start-frame yaw when its layer last showed it (NaN: never),
      which names its corners (``labels="world"``);
    - ``out`` ``[N, obs_dim]``: the estimate of the teacher's observation at this step.
    """

    pose: torch.Tensor
    vel: torch.Tensor
    step: torch.Tensor
    kp: torch.Tensor
    seen: torch.Tensor
    ayaw: torch.Tensor
    ayaw_seen: torch.Tensor
    avote: torch.Tensor
    kc: torch.Tensor
    centre: torch.Tensor
    byaw: torch.Tensor
    out: torch.Tensor


class GeoKeypoints:
    """The estimate's geometry and update (see the module's docstring).

    Args:
        geometry: ``EgoPushEnv.keypoint_geometry()``: the camera and wheels as for ``EgoMap``, and
            the cube's half-side, the formation's offsets ``[P, 2]`` in the anchor's frame, the
            teacher's ``memory_seconds``, ``gate_fraction`` and ``observability``, and ``n_boxes``.
        image_hw: the depth image's height and width.
        close, far, margin: a role layer's box within ``close`` (m) of where the other role's box
            was last seen, and beyond ``far`` of where its own was and ``margin`` further from it
            than from the other's, is taken as a swap of roles.
        unplaced: the obstacle seen this far (m) from the first target (and the anchor seen, with its
            yaw) says the first box is not placed; within the env's ``position_tolerance``, that it is.
        vote_decay: the anchor's quarter-turn votes fade by this per step.
        centres: where a box's centre comes from: ``top``, as ``corners`` and, where no side face
            is seen (the box being pushed), its top face's far and lateral edges (``_top``);
            ``corners``, the planes of its side faces (``_planes``) and, where one face is seen, its
            silhouette's vertical edges (``_corners``), a sliver of no face and under ``SLIVER``
            pixels counting as not seen (with ``top`` too); ``planes``, the face planes alone;
            ``pixels``, the pixel mean moved ``SIGHT`` along the line of sight.
        labels: how a box's corners are named, its yaw being known up to a quarter turn: ``world``,
            by the quarter turn nearest its start-frame yaw when last seen (each corner keeps its
            name, so its memory holds its own place, as the teacher's does); ``robot``, by the yaw
            within 45 degrees of the robot's heading at each step (a corner's name changes as the
            robot turns, and a remembered corner can hold another's place).
    """

    SENTINEL = -1e9

    def __init__(
        self,
        geometry: dict[str, Any],
        image_hw: tuple[int, int],
        close: float = 0.3,
        far: float = 0.15,
        margin: float = 0.1,
        unplaced: float = 0.25,
        vote_decay: float = 0.99,
        centres: str = CENTRES[0],
        labels: str = LABELS[0],
    ) -> None:
        if centres not in CENTRES:
            raise ValueError(f"centres must be one of {CENTRES}, got {centres!r}")
        if labels not in LABELS:
            raise ValueError(f"labels must be one of {LABELS}, got {labels!r}")
        missing = set(KEYS) - set(geometry)
        if missing:
            raise ValueError(f"geometric keypoints need EgoPushEnv.keypoint_geometry(); lacks {sorted(missing)}")
        if (
            int(geometry["n_boxes"]) != 3
            or geometry["task"] == "goal"
            or geometry["observability"] not in ("global", "fov", "fov_gated")
        ):
            raise ValueError(
                "geometric keypoints track one box per role: a world with an anchor box and 3 boxes (egopush-line) "
                f"and a global, fov or fov_gated teacher; got task {geometry['task']!r}, {geometry['n_boxes']} boxes, "
                f"observability {geometry['observability']!r}"
            )
        if geometry.get("room_keypoints", False):
            raise ValueError(
                "geometric keypoints estimate the boxes' groups only; this teacher also reads the room's "
                "corners (room_keypoints), which no student estimates yet: distil from a teacher without them"
            )
        self.hw = tuple(image_hw)
        ray, _ = pixel_rays(geometry, self.hw)
        self.tables = {
            "ray": ray,  # [P, 3] per metre of depth, robot frame
            "cam": torch.tensor(geometry["cam_pos"], dtype=torch.float32),
            "mat": torch.tensor(geometry["cam_mat"], dtype=torch.float32),
            "offsets": torch.tensor(geometry["offsets"], dtype=torch.float32),
            "unit": torch.tensor(UNIT) * float(geometry["box_half"]),
        }
        self.tan, self.range = float(geometry["tan_half"]), float(geometry["camera_range"])
        self.dt, self.half_track = float(geometry["control_dt"]), float(geometry["half_track"])
        self.half = float(geometry["box_half"])
        self.top = 2 * self.half
        self.memory = float(geometry["memory_seconds"])
        self.show_all = geometry["observability"] == "global"
        self.gate = float(geometry["gate_fraction"]) if geometry["observability"] == "fov_gated" else None
        self.P = len(geometry["offsets"])
        self.close, self.far, self.margin = close, far, margin
        self.tolerance = float(geometry["position_tolerance"])
        self.unplaced, self.vote_decay = unplaced, vote_decay
        self.centres, self.labels = centres, labels
        self.reader = BoxReader(self.tables, self.hw, self.half, self.tan, centres)
        self.obs_dim = 4 * 4 * 3 + 5  # the teacher's privileged group: 4 groups x 4 corners x (x, y, shown), robot

    def _t(self, name: str, dev: torch.device) -> torch.Tensor:
        t = self.tables[name]
        if t.device != dev:  # the constant tables follow the images, once
            t = self.tables[name] = t.to(dev)
        return t

    def init_state(self, batch: int, device: torch.device | str = "cpu") -> GeoState:
        z = torch.zeros
        G = 3 + self.P
        return GeoState(
            z(batch, 3, device=device),
            z(batch, 2, device=device),
            z(batch, device=device),
            z(batch, G, 4, 2, device=device),
            torch.full((batch, G, 4), self.SENTINEL, device=device),
            z(batch, device=device),
            z(batch, dtype=torch.bool, device=device),
            z(batch, 2, device=device),
            z(batch, dtype=torch.long, device=device),
            torch.full((batch, 3, 2), math.inf, device=device),
            torch.full((batch, 3), math.nan, device=device),
            z(batch, self.obs_dim, device=device),
        )

    def project(self, pts: torch.Tensor, height: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Robot-frame points ``[..., 2]`` at ``height`` -> image u, v (-1..1 at the edges) and depth (m)."""
        dev = pts.device
        points = torch.cat((pts, torch.full_like(pts[..., :1], height)), -1)
        return project(points, self._t("cam", dev), self._t("mat", dev), self.tan)

    def boxes(self, depth: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Role layers ``[N, 3, H*W]`` (m) -> what ``BoxReader.boxes`` reads of the three boxes."""
        return self.reader.boxes(depth)

    def step(
        self,
        depth: torch.Tensor,
        proprio: torch.Tensor,
        state: GeoState,
        first: torch.Tensor,
        kc: torch.Tensor | None = None,
        pose: torch.Tensor | None = None,
    ) -> GeoState:
        """One control step: ``depth`` role layers ``[N, 3, H, W]`` (m), ``proprio`` ``[N, 4]`` (wheel
        speeds, previous action), ``first`` ``[N]`` rows whose episode starts now -> the new state;
        its ``out`` is the estimate of the teacher's observation at this step. For diagnostics only:
        ``kc`` ``[N]``, the env's own placement index, used in place of the test on positions; ``pose``
        ``[N, 3]``, the robot's true pose in the episode's start frame, in place of wheel odometry."""
        dev = depth.device
        N = depth.shape[0]
        rows = torch.arange(N, device=dev)
        prop = proprio.float()
        odo, vel = odometry(prop, state.pose, state.vel, first, self.dt, self.half_track)
        pose = odo if pose is None else pose.to(odo)
        step = torch.where(first, 0.0, state.step + 1)
        fresh = first[:, None, None]
        kp = torch.where(fresh[..., None], 0.0, state.kp)
        seen_at = torch.where(fresh, self.SENTINEL, state.seen)
        ayaw_seen = state.ayaw_seen & ~first
        known, kc = kc, torch.where(first, 0, state.kc)
        c_r, vis_box, yaw4, myaw, sure = self.boxes(depth.float().flatten(2))
        pos, heading = pose[:, :2], pose[:, 2]
        # The anchor's yaw: the angle within a quarter turn from the last sure reading, the quarter
        # turn from the vote of all of them (a reading can take the wrong one).
        read = myaw + heading
        avote = torch.where(fresh[:, 0], 0.0, state.avote) * self.vote_decay
        avote = avote + sure[:, None] * torch.stack((torch.cos(read), torch.sin(read)), -1)
        last = torch.where(sure, read, state.ayaw)
        voted = torch.atan2(avote[:, 1], avote[:, 0])
        ayaw = last + torch.round((voted - last) / (math.pi / 2)) * (math.pi / 2)
        ayaw_seen = ayaw_seen | sure
        yaw = yaw4.clone()
        yaw[:, 1] = torch.where(ayaw_seen, ayaw - heading, yaw4[:, 1])
        # A swap of roles, told by where the boxes are: a role layer shows its box where the other
        # role's box was last seen and not where its own was; with both layers showing a box, the
        # crossed pairing must fit better than the straight one (never seen: 10 m away).
        now_s = pos[:, None] + rotate(c_r, heading[:, None])  # [N, 3, 2] start frame
        centre = torch.where(fresh[..., :1], math.inf, state.centre)

        def dist(i: int, j: int) -> torch.Tensor:  # layer i's box now to slot j's last centre
            return torch.nan_to_num((now_s[:, i] - centre[:, j]).norm(dim=-1), nan=10.0, posinf=10.0).clamp(max=10.0)

        d_aa, d_ao, d_oa, d_oo = dist(0, 0), dist(0, 2), dist(2, 0), dist(2, 2)
        one = torch.zeros(N, dtype=torch.bool, device=dev)
        for other, own, seen_now in ((d_ao, d_aa, vis_box[:, 0]), (d_oa, d_oo, vis_box[:, 2])):
            one |= seen_now & (other < self.close) & (own > self.far) & (own > other + self.margin)
        both = vis_box[:, 0] & vis_box[:, 2]
        crossed = (d_ao + d_oa + self.margin < d_aa + d_oo) & ((d_ao < self.close) | (d_oa < self.close))
        moved = torch.where(both, crossed, one)
        # The placement index read directly, where the anchor (with its yaw) and the obstacle are in
        # view: 1 exactly when the obstacle is the first box, placed at the first target. Estimates
        # err by centimetres, so only a clear case counts: within the env's tolerance (1), or more
        # than ``unplaced`` from the target (0).
        target0 = c_r[:, 1] + rotate(self._t("offsets", dev)[0].expand(N, 2), yaw[:, 1])
        off = (c_r[:, 2] - target0).norm(dim=-1)
        direct = vis_box[:, 1] & vis_box[:, 2] & ayaw_seen & ((off < self.tolerance) | (off > self.unplaced))
        kc_direct = (off < self.tolerance).long()
        kc_next = torch.where(direct, kc_direct, torch.where(moved, (kc + 1) % self.P, kc))
        # The memories swap with a change of the index, unless the obstacle is seen where its own
        # memory is (the index was wrong, not the memories).
        swap = (kc_next != kc) & ~first & (moved | ~vis_box[:, 2] | (d_oa < d_oo))
        if known is not None:
            kc_next = known.to(dev).long()
            swap = (kc_next != kc) & ~first
        kc = kc_next
        order = torch.tensor([2, 1, 0], device=dev)
        kp = torch.where(swap[:, None, None, None], torch.cat((kp[:, order], kp[:, 3:]), 1), kp)
        seen_at = torch.where(swap[:, None, None], torch.cat((seen_at[:, order], seen_at[:, 3:]), 1), seen_at)
        centre = torch.where(swap[:, None, None], centre[:, order], centre)
        centre = torch.where(vis_box[..., None], now_s, centre)
        byaw = torch.where(first[:, None], math.nan, state.byaw)
        byaw = torch.where(swap[:, None], byaw[:, order], byaw)
        if self.labels == "world":
            # A box's yaw is known up to a quarter turn: take the one nearest the start-frame yaw it
            # was last seen at, so that each corner keeps its name (and its memory slot) however the
            # robot turns; a cube that turns while out of view may come back a quarter turn off.
            wy = yaw + heading[:, None]
            k = torch.nan_to_num(torch.round((byaw - wy) / (math.pi / 2)), nan=0.0)
            wy = wy + k * (math.pi / 2)
            wy[:, 1] = yaw[:, 1] + heading  # the anchor's marker names its corners
            yaw = wy - heading[:, None]
        byaw = torch.where(vis_box, yaw + heading[:, None], byaw)
        # Corners now (robot frame): the boxes', then the target's, turned with the anchor.
        unit = self._t("unit", dev)
        box = c_r[:, :, None] + rotate(unit, yaw[..., None])  # [N, 3, 4, 2]
        tgt = c_r[:, 1] + rotate(self._t("offsets", dev)[kc], yaw[:, 1])
        ref = tgt[:, None] + rotate(unit, yaw[:, 1, None])
        now = torch.cat((box, ref[:, None]), 1)  # [N, 4, 4, 2]
        # Which are stored now: the teacher's own test, on the estimates.
        u, v, d = self.project(now, self.half)
        vis = (u.abs() <= 1) & (v.abs() <= 1) & (d > 0.05) & (d <= self.range)
        vis[:, :3] &= vis_box[..., None]
        ok = vis_box[:, 1] & ayaw_seen
        if self.gate is not None:
            cu, cv, cd = self.project(c_r[:, 1], self.half)
            ok &= (cu.abs() <= self.gate) & (cv.abs() <= 1) & (cd <= self.range)
        vis[:, 3] &= ok[:, None]
        slot = torch.cat((torch.arange(3, device=dev).expand(N, 3), 3 + kc[:, None]), 1)  # [N, 4] memory slots
        now_w = pos[:, None, None] + rotate(now, heading[:, None, None])
        r = rows[:, None]
        kp[r, slot] = torch.where(vis[..., None], now_w, kp[r, slot])
        seen_at[r, slot] = torch.where(vis, step[:, None, None], seen_at[r, slot])
        if self.show_all:
            # A global teacher sees every keypoint at every step: each is shown where it was last
            # seen (never seen: at the episode's start pose), the reference from the anchor as
            # remembered, once its yaw has been read.
            anchor = kp[:, 1].mean(1)  # [N, 2] start frame
            ref_w = anchor[:, None] + rotate(self._t("offsets", dev)[kc][:, None] + unit, ayaw[:, None])
            kp[rows, 3 + kc] = torch.where(ayaw_seen[:, None, None], ref_w, kp[rows, 3 + kc])
            shown = torch.ones(N, 4, 4, device=dev)
        else:
            shown = ((step[:, None, None] - seen_at[r, slot]) * self.dt <= self.memory).float()  # [N, 4, 4]
        corners = rotate(kp[r, slot] - pos[:, None, None], -heading[:, None, None])
        kp_obs = torch.cat((corners * shown[..., None], shown[..., None]), -1).flatten(1)  # [N, 48]
        placed = (kc.float() / self.P)[:, None]
        out = torch.cat((kp_obs, vel, prop[:, 2:4], placed), -1)
        return GeoState(pose, vel, step, kp, seen_at, ayaw, ayaw_seen, avote, kc, centre, byaw, out)
