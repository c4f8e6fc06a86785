"""What the EgoPush teachers may see: the head camera's frustum (with the ``fov_gated`` rule for the
reference keypoints) and the keypoint memory of the ``fov`` modes (where each keypoint was last seen,
and when)."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import torch

from envs.base import EnvPart
from envs.egopush import scene
from envs.egopush.config import KP, EgoPushConfig


class CameraView:
    """The head camera ``robot_cam`` of the model: projection of robot-frame points into its image,
    and which keypoints the ``fov`` modes count as visible."""

    def __init__(self, model: mujoco.MjModel, cfg: EgoPushConfig, goal_task: bool, device: torch.device) -> None:
        cam = model.camera("robot_cam")
        mat = np.zeros(9)
        mujoco.mju_quat2Mat(mat, cam.quat)
        self.cam_pos = torch.as_tensor(cam.pos, dtype=torch.float32, device=device)
        self.cam_mat = torch.as_tensor(mat.reshape(3, 3), dtype=torch.float32, device=device)  # columns: axes
        self.tan_half = math.tan(math.radians(float(cam.fovy[0])) / 2)
        self.cfg, self.goal_task = cfg, goal_task

    def project(self, pts_robot: torch.Tensor, height: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Robot-frame points at ``height`` -> (image u, v in [-1, 1] at the edges, depth m)."""
        p = torch.cat((pts_robot, torch.full_like(pts_robot[..., :1], height)), -1) - self.cam_pos
        cam = p @ self.cam_mat  # coordinates along the camera's x, y, z axes
        depth = -cam[..., 2]  # MuJoCo cameras look along -z
        safe = depth.clamp(min=1e-6)
        return cam[..., 0] / safe / self.tan_half, cam[..., 1] / safe / self.tan_half, depth

    def in_view(self, pts_robot: torch.Tensor) -> torch.Tensor:
        """Whether robot-frame points ``[W, ..., 2]`` at a box's mid-height are inside the camera's
        frustum and range."""
        u, v, depth = self.project(pts_robot, scene.BOX_HALF)
        return (u.abs() <= 1) & (v.abs() <= 1) & (depth > 0.05) & (depth <= self.cfg.camera_range)

    def visibility(self, kp_robot: torch.Tensor) -> torch.Tensor:
        """``[W, G, 4]`` visibility of keypoint groups ``[W, G, 4, 2]`` (active, anchor, obstacles,
        reference) in the ``fov`` modes: inside the frustum and range, and, ``fov_gated``, the
        reference only while the anchor's centre is in view near the image centre."""
        vis = self.in_view(kp_robot)
        if self.cfg.observability == "fov_gated":
            centre = kp_robot[:, 1].mean(1)  # anchor centre [W, 2]
            cu, cv, cd = self.project(centre, scene.BOX_HALF if not self.goal_task else 0.0)
            gated = (cu.abs() <= self.cfg.gate_fraction) & (cv.abs() <= 1) & (cd > 0.05) & (cd <= self.cfg.camera_range)
            vis[:, -1] &= gated[:, None]
        return vis


class KeypointMemory(EnvPart):
    """Per world and object (boxes, anchor, targets), each corner's world position when last seen and
    that episode step (-1: never); and when each of the room's corners was last seen. With
    ``memory_seconds`` 0 only what is in view at this step counts."""

    def __init__(self, num_envs: int, n_objects: int, memory_seconds: float, control_dt: float, device) -> None:
        self.positions = torch.zeros(num_envs, n_objects, KP, 2, device=device)
        self.seen_step = torch.full((num_envs, n_objects, KP), -1, dtype=torch.long, device=device)
        self.room_seen_step = torch.full((num_envs, KP), -1, dtype=torch.long, device=device)
        self.memory_seconds, self.control_dt = memory_seconds, control_dt

    def forget(self, ids: torch.Tensor) -> None:
        """A new episode in worlds ``ids`` remembers nothing."""
        self.seen_step[ids] = -1
        self.room_seen_step[ids] = -1

    def remember(
        self, obj: torch.Tensor, kp: torch.Tensor, vis: torch.Tensor, step_now: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the keypoints ``kp`` ``[W, G, 4, 2]`` of objects ``obj`` ``[W, G]`` where ``vis``, at
        episode step ``step_now`` ``[W]``; return every slot's remembered world keypoints and its flag
        ``[W, G, 4]``: 1 if seen in the last ``memory_seconds``, else 0. The flag reads as in
        ``global`` mode (1: shown), so a ``global`` teacher's inputs carry over."""
        rows = torch.arange(kp.shape[0], device=kp.device)[:, None]
        mem = torch.where(vis[..., None], kp, self.positions[rows, obj])
        step = torch.where(vis, step_now[:, None, None], self.seen_step[rows, obj])
        self.positions[rows, obj] = mem
        self.seen_step[rows, obj] = step
        return mem, self.recent(step, step_now)

    def remember_room(self, in_view: torch.Tensor, step_now: torch.Tensor) -> torch.Tensor:
        """The room's corners: a corner does not move, so only when it was last seen is kept; their
        flags ``[W, 4]`` (see ``recent``)."""
        self.room_seen_step = torch.where(in_view, step_now[:, None], self.room_seen_step)
        return self.recent(self.room_seen_step, step_now)

    def recent(self, step: torch.Tensor, step_now: torch.Tensor) -> torch.Tensor:
        """1 where the episode step ``step`` ``[W, ...]`` a keypoint was last seen (-1: never) lies
        within the last ``memory_seconds`` of ``step_now`` ``[W]``, else 0."""
        shape = [step.shape[0]] + [1] * (step.dim() - 1)
        age = (step_now.view(shape) - step).float() * self.control_dt
        return ((step >= 0) & (age <= self.memory_seconds)).float()
