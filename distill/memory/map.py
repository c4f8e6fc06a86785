"""``map`` (EgoPush): a top-down map of the boxes seen, kept in place by wheel odometry
(``distill.egopush.odometry_map``), read by a second CNN beside the image."""

from __future__ import annotations

from typing import Any

import torch

from distill.egopush.odometry_map import EgoMap, MapState
from distill.encoders import ConvEncoder, moments_of
from distill.memory.base import FrameInputMemory, renamed
from distill.student_config import StudentConfig


class MapMemory(FrameInputMemory):
    """The map window around the robot, encoded per frame (and, ``map_moments``, the moments of the
    image's and the map's marks); the map has no learnt parameters, so training reads the windows the
    student read when acting, one frame at a time."""

    def __init__(
        self,
        cfg: StudentConfig,
        frame_dim: int,
        image_shape: tuple[int, int, int] = (0, 0, 0),
        roles: int = 0,
        geometry: dict[str, Any] | None = None,
        **_: object,
    ) -> None:
        super().__init__()
        if not roles:
            raise ValueError("memory 'map' needs role-layered depth images (depth_layers), not RGB")
        if geometry is None:
            raise ValueError("memory 'map' needs the robot's camera geometry (EgoPushEnv.camera_geometry())")
        C, H, W = image_shape
        gate_role = 1 if cfg.map_gate > 0 else None
        self.egomap = EgoMap(
            geometry, (H, W), C, cfg.map_cells, cfg.map_cell, cfg.map_tau, gate_role=gate_role, gate=cfg.map_gate or 0.3
        )
        self.encoder = ConvEncoder(self.egomap.channels, (cfg.map_cells, cfg.map_cells), cfg.embed)
        self.with_moments, self.cells = cfg.map_moments, cfg.map_cells
        self.extra_dim = cfg.embed + ((6 * C + 12 * self.egomap.channels) if cfg.map_moments else 0)
        self.out_dim = frame_dim + self.extra_dim
        self.tracker = self.egomap
        self.name, self.shape, self.dtype = "egomap", (self.egomap.channels, self.cells, self.cells), torch.float16

    def extras(self, img: torch.Tensor, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        egomap = inputs.get("egomap")
        if egomap is None:
            raise ValueError("a memory 'map' student needs the map window of each step (egomap)")
        parts = [self.encoder(egomap.float())]
        if self.with_moments:
            parts.append(self.moments(img, egomap))
        return parts

    def moments(self, img: torch.Tensor, egomap: torch.Tensor) -> torch.Tensor:
        """``map_moments``: per role of the depth image ``[N, R, H, W]`` (m) the moments of its pixels
        lifted to the floor plan, then per channel of the map window ``[N, C, cells, cells]`` the
        moments of its marks, plain and weighted by ``mark ** 8`` (fresh ones) -> ``[N, 6R + 12C]``."""
        em, dev = self.egomap, img.device
        z = img.float().flatten(2)  # [N, R, H*W]: pixel p lies at cam_xy + z * ray[p] (robot frame)
        marks = egomap.float().flatten(2)  # [N, C, cells^2]: mark p at window_xy[p]
        cam, ray, cells = em.cam_xy.to(dev), em.ray.to(dev), em.window_xy.to(dev)
        none = torch.zeros(2, device=dev)
        return torch.cat(
            (
                moments_of((z > 0).float(), z, cam, ray),
                moments_of(marks, 1.0, none, cells),
                moments_of(marks**8, 1.0, none, cells),
            ),
            -1,
        )

    def output(self, state: MapState) -> torch.Tensor:
        return state.view  # the window around the robot

    def legacy_keys(self, prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return renamed(tensors, "map_encoder.", prefix + "encoder.")
