"""``geometric`` (EgoPush, ``head=teacher``): the teacher's observation estimated from the camera and
the wheels by hand-written geometry (``distill.egopush.geometry``), read beside the image; the
student's estimate is it plus a learnt correction. Hand-written perception, not learnt."""

from __future__ import annotations

from typing import Any

import torch

from agents.actor import RunningNorm
from distill.egopush.geometry import GeoKeypoints, GeoState
from distill.memory.base import FrameInputMemory, renamed
from distill.student_config import StudentConfig


class GeometricMemory(FrameInputMemory):
    """Geometry's estimate (normalised with the teacher's statistics, copied in with its head) as
    each frame's last features; the estimate keeps its own memory, so training reads the stored
    estimates one frame at a time."""

    def __init__(
        self,
        cfg: StudentConfig,
        frame_dim: int,
        image_shape: tuple[int, int, int] = (0, 0, 0),
        roles: int = 0,
        geometry: dict[str, Any] | None = None,
        teacher_dims: tuple[int, tuple[int, ...]] | None = None,
        **_: object,
    ) -> None:
        super().__init__()
        if not roles or geometry is None:
            raise ValueError(
                "memory 'geometric' needs role-layered depth images (depth_layers) and the robot's and task's "
                "geometry (EgoPushEnv.keypoint_geometry())"
            )
        self.geokp = GeoKeypoints(geometry, image_shape[1:], centres=cfg.geo_centres, labels=cfg.geo_labels)
        if teacher_dims is None or int(teacher_dims[0]) != self.geokp.obs_dim:
            raise ValueError(
                "memory 'geometric' estimates an EgoPush teacher's observation: it needs a teacher reading "
                f"{self.geokp.obs_dim} inputs, got teacher dims {teacher_dims}"
            )
        self.teacher_norm = RunningNorm(self.geokp.obs_dim)  # the teacher's, copied in (load_teacher_head)
        self.extra_dim = self.geokp.obs_dim
        self.out_dim = frame_dim + self.extra_dim
        self.tracker = self.geokp
        self.name, self.shape, self.dtype = "geokp", (self.geokp.obs_dim,), torch.float32

    def extras(self, img: torch.Tensor, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        geokp = inputs.get("geokp")
        if geokp is None:
            raise ValueError("a memory 'geometric' student needs geometry's estimate of each step (geokp)")
        return [self.teacher_norm(geokp.float()).clamp(-5, 5)]

    def estimate_prior(self, h: torch.Tensor) -> torch.Tensor:
        return h[..., -self.geokp.obs_dim :]  # geometry's (normalised) estimate, the features' last part

    def output(self, state: GeoState) -> torch.Tensor:
        return state.out  # geometry's estimate

    def legacy_keys(self, prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return renamed(tensors, "teacher_norm.", prefix + "teacher_norm.")
