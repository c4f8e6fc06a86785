"""Batched egocentric cameras through MuJoCo Warp's ray-traced batch renderer.

No OpenGL or system packages: the renderer is Warp kernels, on CUDA or on the CPU. With the
``cpu`` physics backend the poses of every world are copied into Warp data for rendering; on
the CPU the worlds are split into shards rendered on parallel threads (Warp's CPU kernels run
on one thread each and release the GIL), which is what makes 2 cores draw twice as fast.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import mujoco
import numpy as np
import torch

from envs.sim import Sim, static_geoms, sync_static_geoms

MODALITIES = ("rgb", "depth", "segmentation")

# Options that cost time and add nothing to flat-shaded robot scenes.
_FAST = dict(
    use_textures=False,
    enable_specular=False,
    enable_emission=False,
    enable_per_light_ambient=False,
    enable_vertex_normals=False,
    enable_backface_culling=False,
)


class _Shard:
    """Warp model, data and render context for a contiguous slice of worlds."""

    def __init__(self, model, data, rc, lo: int, hi: int, owns_data: bool) -> None:
        self.m, self.d, self.rc, self.lo, self.hi, self.owns_data = model, data, rc, lo, hi, owns_data


class BatchRenderer:
    """Renders ``cameras`` of every world of a ``Sim``.

    Args:
        sim: the physics whose state is drawn.
        cameras: camera names, all rendered at ``resolution``.
        resolution: (width, height) in pixels.
        modalities: subset of ``("rgb", "depth", "segmentation")``.
        per_world_fields: model fields that differ per world and move geoms (``geom_pos``);
            they are read from ``sim.field(name)`` at every render.
        shards: CPU threads to render on; default: one per core on CPU, one on CUDA.
        worlds: number of worlds to draw (the first ``worlds`` of the sim); default all.
    """

    def __init__(
        self,
        sim: Sim,
        cameras: Sequence[str],
        resolution: tuple[int, int] = (64, 64),
        modalities: Sequence[str] = ("rgb",),
        per_world_fields: Sequence[str] = (),
        shards: int | None = None,
        worlds: int | None = None,
    ) -> None:
        from envs.warp_setup import warp_modules

        bad = [m for m in modalities if m not in MODALITIES]
        if bad or not modalities:
            raise ValueError(f"modalities must be a non-empty subset of {MODALITIES}, got {modalities}")
        for name in cameras:
            if mujoco.mj_name2id(sim.model, mujoco.mjtObj.mjOBJ_CAMERA, name) < 0:
                raise ValueError(f"no camera {name!r} in the model")
        w, h = resolution
        if w < 1 or h < 1:
            raise ValueError(f"resolution must be positive (width, height), got {resolution}")
        wp, mjw = warp_modules()
        self._wp, self._mjw = wp, mjw
        self.sim = sim
        self.cameras = list(cameras)
        self.resolution = (w, h)
        self.modalities = tuple(modalities)
        self.per_world_fields = tuple(per_world_fields)
        self.num_worlds = worlds or sim.num_worlds
        model = sim.model
        # Ids of the active cameras, in the order MuJoCo numbers them (the renderer's order).
        cam_ids = sorted(mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, n) for n in cameras)
        self._order = [cam_ids.index(mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, n)) for n in cameras]
        rc_kw = dict(
            cam_res=(w, h),
            render_rgb="rgb" in modalities,
            render_depth="depth" in modalities,
            render_seg="segmentation" in modalities,
            cam_active=list(cameras),
            **_FAST,
        )
        handles = sim.warp_handles()
        self._device = wp.get_device("cpu") if handles is None else handles[1].qpos.device
        self._shards: list[_Shard] = []
        with wp.ScopedDevice(self._device):
            if handles is not None and self.num_worlds == sim.num_worlds:
                m, d = handles
                rc = mjw.create_render_context(model, nworld=sim.num_worlds, **rc_kw)
                self._shards.append(_Shard(m, d, rc, 0, sim.num_worlds, owns_data=False))
            else:
                n = shards or (1 if self._device.is_cuda else min(os.cpu_count() or 1, self.num_worlds))
                bounds = np.linspace(0, self.num_worlds, n + 1).astype(int)
                for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
                    size = int(hi - lo)
                    m = mjw.put_model(model, batch_sizes={f: size for f in self.per_world_fields})
                    d = mjw.make_data(model, nworld=size, nconmax=1, njmax=1)
                    rc = mjw.create_render_context(model, nworld=size, **rc_kw)
                    self._shards.append(_Shard(m, d, rc, int(lo), int(hi), owns_data=True))
        self._static = torch.as_tensor(static_geoms(model))
        self.pool = ThreadPoolExecutor(len(self._shards)) if len(self._shards) > 1 else None
        self._warm = False
        self.segmentation_classes: torch.Tensor | None = None

    def _render_shard(self, s: _Shard) -> None:
        wp, mjw = self._wp, self._mjw
        with wp.ScopedDevice(self._device):
            if s.owns_data:
                qpos = wp.to_torch(s.d.qpos)
                qpos.copy_(self.sim.qpos[s.lo : s.hi].to(device=qpos.device, dtype=qpos.dtype))
                for name in self.per_world_fields:
                    dst = wp.to_torch(getattr(s.m, name))
                    src = self.sim.field(name)[s.lo : s.hi]
                    dst.view(src.shape).copy_(src.to(device=dst.device, dtype=dst.dtype))
            mjw.kinematics(s.m, s.d)
            if "geom_pos" in self.per_world_fields:
                xpos = wp.to_torch(s.d.geom_xpos)
                sync_static_geoms(xpos, self.sim.field("geom_pos")[s.lo : s.hi], self._static.to(xpos.device))
            mjw.camlight(s.m, s.d)
            mjw.refit_bvh(s.m, s.d, s.rc)
            mjw.render(s.m, s.d, s.rc)

    def render(self) -> dict[str, torch.Tensor]:
        """Draw every camera of every world at the sim's current state.

        Returns:
            ``rgb``: uint8 ``[W, C, 3, H, Wd]``; ``depth``: float32 metres ``[W, C, 1, H, Wd]``;
            ``segmentation``: int32 geom id per pixel, -1 for background, ``[W, C, 1, H, Wd]``.
            C is the number of cameras, in the order given.
        """
        if self.pool is None or not self._warm:
            # The first render runs the shards one after another: Warp loads the render kernels
            # on first use, and two threads doing that at once left one shard drawing wrong
            # images for the whole process (about one process in three; tested).
            for s in self._shards:
                self._render_shard(s)
            self._warm = True
        else:
            list(self.pool.map(self._render_shard, self._shards))
        self._wp.synchronize_device(self._device)
        w, h = self.resolution
        nc = len(self.cameras)
        order = torch.as_tensor(self._order)
        out: dict[str, list[torch.Tensor]] = {k: [] for k in self.modalities}
        for s in self._shards:
            n = s.hi - s.lo
            if "rgb" in self.modalities:
                # Pixels are packed little-endian 0xAARRGGBB: bytes B, G, R, A.
                px = self._wp.to_torch(s.rc.rgb_data).view(torch.uint8).view(n, nc, h, w, 4)
                out["rgb"].append(px[:, order][..., [2, 1, 0]].permute(0, 1, 4, 2, 3))
            if "depth" in self.modalities:
                dd = self._wp.to_torch(s.rc.depth_data).view(n, nc, 1, h, w)
                out["depth"].append(dd[:, order])
            if "segmentation" in self.modalities:
                sd = self._wp.to_torch(s.rc.seg_data).view(n, nc, h, w, -1)[..., 0]
                out["segmentation"].append(sd[:, order].unsqueeze(2))
        dev = self.sim.device
        return {k: torch.cat(v).to(dev) if len(v) > 1 else v[0].to(dev).clone() for k, v in out.items()}

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None


class WorldView:
    """The part of the ``Sim`` interface a renderer reads, narrowed to one world of an env."""

    def __init__(self, env: Any, world: int) -> None:
        self.env, self.world = env, world
        self.model = env.mj_model
        self.num_worlds = 1
        self.device = torch.device("cpu")

    @property
    def qpos(self) -> torch.Tensor:
        return self.env.sim.qpos[self.world : self.world + 1].cpu()

    def field(self, name: str) -> torch.Tensor:
        return self.env.sim.field(name)[self.world : self.world + 1].cpu()

    def warp_handles(self) -> None:
        return None
