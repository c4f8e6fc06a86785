"""An egocentric map memory for depth-layer students: what the camera saw, kept where it was seen.

A student with ``memory=map`` keeps, per world, a top-down grid of the boxes it has seen, one
channel per role (active, anchor, obstacle), built only from what a robot has on board:

- **seeing**: each pixel of the role-layered depth image is lifted to a point in the robot's frame
  with the camera's calibration (its pose on the robot and its field of view) and marked in the
  grid cell under it, in its role's channel;
- **moving**: the robot's pose since the episode started is integrated from its wheel speeds
  (``proprio``: odometry, trapezoidal rule over the control step), and the grid is kept in that
  start frame, so a box that leaves the view stays where it was seen;
- **forgetting**: every mark fades as ``exp(-age / tau)``; ground the camera sees now, clear of
  boxes, is cleared (a cell hidden behind a nearer box is left as it was);
- **centred** (optional, ``gate_role``): one more channel marks a role's pixels only while that
  role is near the image centre (the horizontal mean of its pixels within ``gate`` of the
  half-width), so the map also holds when and where the robot last looked straight at it: what a
  ``fov_gated`` teacher's reference keypoints depend on (they show only while the anchor is
  centred), seen from the camera alone.

What the student reads is a robot-centred window of that grid (``cells`` x ``cells``, forward up,
left on the left), resampled with the current pose each step. This is the vision counterpart of
the teachers' keypoint memory (``memory_seconds``: keypoints kept where they were last seen, in
the robot's current frame); like it, a box moved while out of view is not noticed. The map has no
learnt parameters: it is a deterministic function of the images and wheel speeds, so the student
trains on stored maps without back-propagation through time.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch.nn import functional as F


@dataclasses.dataclass
class MapState:
    """Per-row state: ``grid`` ``[N, R, G, G]`` (marks in the episode's start frame), ``pose``
    ``[N, 3]`` (x, y, yaw of the robot in that frame), ``vel`` ``[N, 2]`` (forward speed and yaw
    rate at the last step) and ``view`` ``[N, R, cells, cells]``, the window the student read last."""

    grid: torch.Tensor
    pose: torch.Tensor
    vel: torch.Tensor
    view: torch.Tensor


def pixel_rays(geometry: dict[str, Any], image_hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Each pixel's ray in the robot frame, ``[H*W, 3]``: the pixel showing a point at depth ``z``
    (along the view axis) shows ``cam_pos + z * ray``; and each pixel's horizontal image coordinate
    ``[H*W]`` (-1 at the left edge, 1 at the right). ``geometry`` as for ``EgoMap``."""
    H, W = image_hw
    tan = float(geometry["tan_half"])
    v = 1 - (torch.arange(H) + 0.5) / H * 2  # image row 0 at the top
    u = (torch.arange(W) + 0.5) / W * 2 - 1
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    cam = torch.stack((uu * tan, vv * tan, -torch.ones_like(uu)), -1).view(-1, 3)
    return cam @ torch.tensor(geometry["cam_mat"], dtype=torch.float32).T, u.repeat(H)


def project(
    points: torch.Tensor, cam_pos: torch.Tensor, cam_mat: torch.Tensor, tan_half: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Robot-frame points ``[..., 3]`` -> their image coordinates u, v (-1 to 1 from edge to edge;
    v up) and depth along the view axis (m), for the camera at ``cam_pos`` with axes ``cam_mat``
    (columns; it looks along -z) and ``tan_half`` the tangent of half its field of view: the
    inverse of ``pixel_rays``."""
    c = (points - cam_pos) @ cam_mat
    depth = -c[..., 2]
    safe = depth.clamp(min=1e-6)
    return c[..., 0] / safe / tan_half, c[..., 1] / safe / tan_half, depth


def odometry(
    proprio: torch.Tensor, pose: torch.Tensor, vel: torch.Tensor, first: torch.Tensor, dt: float, half_track: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """One control step of wheel odometry: ``proprio`` ``[N, >=2]`` (left and right wheel speeds
    first), the ``pose`` ``[N, 3]`` (x, y, yaw in the episode's start frame) and ``vel`` ``[N, 2]``
    (forward speed, yaw rate) of the last step, ``first`` ``[N]`` rows whose episode starts now (their
    pose is the origin) -> the new pose and velocity (trapezoidal rule over the step of ``dt`` s)."""
    wheels = proprio[:, :2].float()
    fwd, turn = (wheels[:, 0] + wheels[:, 1]) / 2, (wheels[:, 1] - wheels[:, 0]) / (2 * half_track)
    now = torch.stack((fwd, turn), -1)
    prev = torch.where(first[:, None], now, vel)
    mv, mw = ((prev + now) / 2 * dt).unbind(-1)
    x, y, yaw = pose.unbind(-1)
    mid = yaw + mw / 2
    new = torch.stack((x + mv * torch.cos(mid), y + mv * torch.sin(mid), yaw + mw), -1)
    return torch.where(first[:, None], torch.zeros_like(new), new), now  # an episode starts at its own origin


class EgoMap:
    """The map's geometry and update. ``geometry`` (from ``EgoPushEnv.camera_geometry``):
    ``cam_pos`` [3] and ``cam_mat`` [3, 3] (the camera's axes as columns, in the robot frame),
    ``tan_half`` (tangent of half the field of view), ``camera_range`` (m), ``control_dt`` (s) and
    ``half_track`` (m, half the distance between the wheels).

    Args:
        geometry: as above.
        image_hw: the depth image's height and width.
        roles: channels (role layers).
        cells, cell: the robot-centred window read by the student: ``cells`` x ``cells`` cells of
            ``cell`` metres.
        tau: seconds over which a mark fades to 1/e.
        extent: half-width (m) of the stored grid around the episode's start pose; it must hold
            everything the robot can see from anywhere it can go.
        gate_role: a role whose pixels also go into one more channel (the last), but only at steps
            when the horizontal mean of that role's pixels lies within ``gate`` of the image centre
            (image half-widths); None: no such channel.
        gate: see ``gate_role``.
    """

    def __init__(
        self,
        geometry: dict[str, Any],
        image_hw: tuple[int, int],
        roles: int = 3,
        cells: int = 48,
        cell: float = 0.1,
        tau: float = 30.0,
        extent: float = 6.0,
        gate_role: int | None = None,
        gate: float = 0.3,
    ) -> None:
        if cells < 4 or cell <= 0 or tau <= 0 or extent <= cells * cell / 2:
            raise ValueError(
                f"egomap needs cells >= 4, cell > 0, tau > 0 and extent > cells * cell / 2; "
                f"got cells {cells}, cell {cell}, tau {tau}, extent {extent}"
            )
        if gate_role is not None and not (0 <= gate_role < roles and 0 < gate <= 1):
            raise ValueError(
                f"egomap gate_role must be a role in [0, {roles}) and gate in (0, 1]; got {gate_role}, {gate}"
            )
        missing = {"cam_pos", "cam_mat", "tan_half", "camera_range", "control_dt", "half_track"} - set(geometry)
        if missing:
            raise ValueError(f"egomap geometry lacks {sorted(missing)}")
        self.roles, self.cells, self.cell, self.tau, self.extent = roles, cells, cell, tau, extent
        self.gate_role, self.gate = gate_role, gate
        self.channels = roles + (gate_role is not None)  # map channels: the roles, then the centred one
        self.G = 2 * math.ceil(extent / cell)  # stored grid, cells per side
        self.half = self.G * cell / 2  # its half-width (m), extent rounded up to whole cells
        self.dt = float(geometry["control_dt"])
        self.half_track = float(geometry["half_track"])
        self.decay = math.exp(-self.dt / tau)
        H, W = image_hw
        cam_pos = torch.tensor(geometry["cam_pos"], dtype=torch.float32)
        cam_mat = torch.tensor(geometry["cam_mat"], dtype=torch.float32)
        tan = float(geometry["tan_half"])
        ray, self.pix_u = pixel_rays(geometry, image_hw)
        self.ray = ray[:, :2]  # [H*W, 2] xy per metre of depth
        self.cam_xy = cam_pos[:2]
        # Points the camera sees when nothing is in the way, for clearing: a 5 cm lattice over the
        # view at box mid-height, each with the pixel it falls on and its depth along the view axis.
        rng = float(geometry["camera_range"])
        xs = torch.arange(0.05, rng + 0.05, 0.05)
        ys = torch.arange(-rng, rng + 0.05, 0.05)
        px, py = torch.meshgrid(xs, ys, indexing="ij")
        pts = torch.stack((px.flatten(), py.flatten(), torch.full_like(px.flatten(), 0.1)), -1)
        cu, cv, depth = project(pts, cam_pos, cam_mat, tan)
        ok = (cu.abs() < 1) & (cv.abs() < 1) & (depth > 0.05) & (depth <= rng)
        col = ((cu[ok] + 1) / 2 * W).long().clamp(0, W - 1)
        row = ((1 - cv[ok]) / 2 * H).long().clamp(0, H - 1)
        # The robot's own footprint (with the pusher) holds no box: always cleared (pixel -1: none).
        fx, fy = torch.meshgrid(torch.arange(-0.15, 0.2, 0.05), torch.arange(-0.15, 0.2, 0.05), indexing="ij")
        foot = torch.stack((fx.flatten(), fy.flatten()), -1)
        self.clear_xy = torch.cat((pts[ok, :2], foot))
        self.clear_pix = torch.cat((row * W + col, torch.zeros(len(foot), dtype=torch.long)))
        self.clear_depth = torch.cat((depth[ok], torch.full((len(foot),), -1.0)))  # -1: free whatever is seen
        # The student's window: cell centres in the robot frame, forward up, left on the left.
        k = cells * cell / 2 - (torch.arange(cells) + 0.5) * cell
        gx, gy = torch.meshgrid(k, k, indexing="ij")
        self.window_xy = torch.stack((gx, gy), -1).view(-1, 2)  # [cells^2, 2]

    def init_state(self, batch: int, device: torch.device | str = "cpu") -> MapState:
        z = torch.zeros
        return MapState(
            z(batch, self.channels, self.G, self.G, device=device),
            z(batch, 3, device=device),
            z(batch, 2, device=device),
            z(batch, self.channels, self.cells, self.cells, device=device),
        )

    def _to_start(self, xy: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        """Robot-frame points ``[N, P, 2]`` (or ``[P, 2]``) -> the episode's start frame ``[N, P, 2]``."""
        c, s = torch.cos(pose[:, 2])[:, None], torch.sin(pose[:, 2])[:, None]
        x, y = xy[..., 0], xy[..., 1]
        return torch.stack((pose[:, :1] + c * x - s * y, pose[:, 1:2] + s * x + c * y), -1)

    def cell_index(self, xy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Start-frame points -> flat cell index ``[.., P]`` and whether it is inside the grid."""
        k = torch.floor((xy + self.half) / self.cell).long()
        inside = ((k >= 0) & (k < self.G)).all(-1)
        return k[..., 0] * self.G + k[..., 1], inside

    def step(self, depth: torch.Tensor, proprio: torch.Tensor, state: MapState, first: torch.Tensor) -> MapState:
        """One control step: ``depth`` role layers ``[N, roles, H, W]`` (m, 0 where absent),
        ``proprio`` ``[N, >=2]`` (left and right wheel speeds first), ``first`` ``[N]`` rows whose
        episode starts now (their map and pose start empty) -> the new state; its ``view`` is what
        the student reads at this step."""
        dev = depth.device
        if self.ray.device != dev:  # the constant tables follow the images, once
            for k in ("ray", "cam_xy", "clear_xy", "clear_pix", "clear_depth", "window_xy", "pix_u"):
                setattr(self, k, getattr(self, k).to(dev))
        if self.gate_role is not None:
            z = depth[:, self.gate_role].flatten(1)  # [N, H*W]
            present = z > 0
            u = (present.float() * self.pix_u).sum(1) / present.sum(1).clamp(min=1)
            centred = present.any(1) & (u.abs() <= self.gate)
            depth = torch.cat((depth, depth[:, self.gate_role : self.gate_role + 1] * centred[:, None, None, None]), 1)
        N, R = depth.shape[:2]
        grid = state.grid * ((~first).float() * self.decay)[:, None, None, None]
        pose, vel = odometry(proprio, state.pose, state.vel, first, self.dt, self.half_track)
        flat = grid.view(N, R, -1)
        # Clear what the camera sees free of boxes up to the lattice point (all roles).
        seen = depth.flatten(2).amax(1)  # [N, H*W] depth of whatever box the pixel shows, 0 if none
        at = seen[:, self.clear_pix]  # [N, P]
        free = (at == 0) | (at > self.clear_depth - 0.1)
        idx, inside = self.cell_index(self._to_start(self.clear_xy, pose))
        drop = torch.where(free & inside, idx, self.G * self.G)  # out-of-grid or hidden -> a spare cell
        scratch = torch.cat((flat, torch.zeros(N, R, 1, device=dev)), -1)
        scratch.scatter_(2, drop[:, None].expand(-1, R, -1), 0.0)
        # Mark what the camera sees now.
        z = depth.flatten(2)  # [N, R, H*W]
        xy = self.cam_xy + z[..., None] * self.ray  # [N, R, H*W, 2] robot frame
        idx, inside = self.cell_index(self._to_start(xy.flatten(1, 2), pose))
        mark = torch.where(inside & (z.flatten(1) > 0), idx, self.G * self.G).view(N, R, -1)
        scratch.scatter_(2, mark, 1.0)
        grid = scratch[..., :-1].reshape(N, R, self.G, self.G)
        view = self.read(grid, pose)
        return MapState(grid, pose, vel, view)

    def read(self, grid: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        """The robot-centred window ``[N, R, cells, cells]`` of ``grid`` at ``pose`` (bilinear)."""
        N = grid.shape[0]
        xy = self._to_start(self.window_xy, pose)  # [N, cells^2, 2]
        norm = (xy + self.half) / self.half - 1  # grid_sample: x indexes columns (y here)
        g = norm.flip(-1).view(N, self.cells, self.cells, 2)
        return F.grid_sample(grid, g, mode="bilinear", padding_mode="zeros", align_corners=False)
