"""Batched MuJoCo physics behind one class, on MuJoCo's batched CPU API or on MuJoCo Warp.

Both backends expose the state of every world as torch tensors, ``[W, n]``:
``cpu`` views the live ``mujoco.batch.Batch`` rows (float64, no copy), ``warp`` views MuJoCo
Warp's device arrays through ``wp.to_torch`` (float32, no copy). Writing to ``qpos``/``qvel``/
``ctrl`` changes the worlds' state for the next ``step``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import mujoco
import numpy as np
import torch

log = logging.getLogger(__name__)

BACKENDS = ("cpu", "warp")
# The integration state of a world: with these (and no applied forces, which egoteach's envs
# never use) the next step is determined. qacc_warmstart seeds the constraint solver: without
# it a re-simulation drifts from the original in the last bits.
STATE_FIELDS = ("time", "qpos", "qvel", "act", "qacc_warmstart", "ctrl")


def static_geoms(model: mujoco.MjModel) -> np.ndarray:
    """Ids of the geoms welded to the world (their pose is the model's ``geom_pos``/``geom_quat``)."""
    return np.flatnonzero(model.body_weldid[model.geom_bodyid] == 0)


def sync_static_geoms(geom_xpos: torch.Tensor, geom_pos: torch.Tensor, static: torch.Tensor) -> None:
    """Copy per-world ``geom_pos`` of world-welded geoms into MuJoCo Warp's ``geom_xpos``.

    MuJoCo Warp computes static geoms' world poses once, in ``make_data``, so a per-world
    ``geom_pos`` of a wall would otherwise be ignored by its collisions and its renderer.
    """
    geom_xpos[:, static] = geom_pos[:, static].to(geom_xpos)


def _ids(ids: torch.Tensor | Sequence[int] | np.ndarray | None, n: int) -> np.ndarray:
    if ids is None:
        return np.arange(n, dtype=np.int32)
    if isinstance(ids, torch.Tensor):
        ids = ids.detach().cpu().numpy()
    ids = np.asarray(ids)
    if ids.dtype == bool:
        ids = np.flatnonzero(ids)
    return ids.astype(np.int32)


class Sim:
    """``num_worlds`` copies of ``model`` stepped together, ``n_substeps`` physics steps per call.

    Args:
        model: the compiled MjModel every world shares (per-world fields via ``expand``).
        num_worlds: W, the number of worlds.
        backend: ``"cpu"`` (``mujoco.batch``) or ``"warp"`` (``mujoco_warp``).
        device: torch/Warp device for ``warp`` (``"cuda:0"``, ``"cpu"``); ignored by ``cpu``.
        n_substeps: physics steps per ``step()`` call.
        nthread: CPU threads for the ``cpu`` backend (0: all cores).
        per_world_fields: MjModel fields that get a value per world (domain randomisation).
            The ``warp`` backend must know them up front; ``cpu`` expands them here too.
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        num_worlds: int,
        backend: str = "cpu",
        device: str | None = None,
        n_substeps: int = 1,
        nthread: int = 0,
        per_world_fields: Sequence[str] = (),
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if num_worlds < 1:
            raise ValueError(f"num_worlds must be >= 1, got {num_worlds}")
        if n_substeps < 1:
            raise ValueError(f"n_substeps must be >= 1, got {n_substeps}")
        self.model = model
        self.num_worlds = num_worlds
        self.backend = backend
        self.n_substeps = n_substeps
        self._fields: dict[str, torch.Tensor] = {}
        self.version = 0  # bumped by every step() and reset(): a cheap "has the state moved" check
        if backend == "cpu":
            self._init_cpu(nthread, per_world_fields)
        else:
            self._init_warp(device or "cpu", per_world_fields)

    # -- construction -------------------------------------------------------------------------
    def _init_cpu(self, nthread: int, per_world_fields: Sequence[str]) -> None:
        from mujoco.batch import Batch

        self.device = torch.device("cpu")
        self._batch = Batch(self.model, self.num_worlds, nthread=nthread)
        self._batch.reset()
        self._qpos_np, self._qvel_np = self._batch.bind("qpos"), self._batch.bind("qvel")
        self.qpos = torch.from_numpy(self._qpos_np)
        self.qvel = torch.from_numpy(self._qvel_np)
        self.ctrl = torch.from_numpy(self._batch.bind("ctrl"))
        # MuJoCo resets a world whose state goes bad (with a warning) inside mj_step; its clock
        # going back is how such a world is recognised afterwards.
        self._time = self._batch.bind("time")
        self._state = {f: torch.from_numpy(self._batch.bind(f)) for f in STATE_FIELDS}
        for name in per_world_fields:
            self._fields[name] = torch.from_numpy(self._batch.expand(name))

    def _init_warp(self, device: str, per_world_fields: Sequence[str]) -> None:
        from envs.warp_setup import warp_modules

        wp, mjw = warp_modules()
        self._wp = wp
        self._mjw = mjw
        self._wp_device = wp.get_device(device)
        self.device = torch.device("cuda", self._wp_device.ordinal) if self._wp_device.is_cuda else torch.device("cpu")
        with wp.ScopedDevice(self._wp_device):
            self._m = mjw.put_model(self.model, batch_sizes={f: self.num_worlds for f in per_world_fields})
            # Room for contacts: a soccer or push scene has a few dozen at most per world.
            self._d = mjw.make_data(self.model, nworld=self.num_worlds, nconmax=64, njmax=256)
            mjw.reset_data(self._m, self._d)
        self.qpos = wp.to_torch(self._d.qpos)
        self.qvel = wp.to_torch(self._d.qvel)
        self.ctrl = wp.to_torch(self._d.ctrl)
        for name in per_world_fields:
            t = wp.to_torch(getattr(self._m, name))
            self._fields[name] = t.view(self.num_worlds, *t.shape[1:])
        self._graph = None
        self._geom_xpos = wp.to_torch(self._d.geom_xpos)
        self._state = {f: wp.to_torch(getattr(self._d, f)) for f in STATE_FIELDS}
        self._static = torch.as_tensor(static_geoms(self.model), device=self.device)

    # -- stepping -----------------------------------------------------------------------------
    def step(self) -> torch.Tensor:
        """Advance every world by ``n_substeps`` physics steps.

        Returns:
            ``[W]`` bool on the sim's device: the worlds whose physics failed (MuJoCo error or
            non-finite state). Their state is left as it is; the caller resets them. On ``warp``
            the check stays on the device (no host sync); on ``cpu`` it is numpy over the live rows.
        """
        self.version += 1
        if self.backend == "cpu":
            from mujoco.batch import SimulationError

            t0 = self._time.copy()
            try:
                self._batch.step(nstep=self.n_substeps)
                ids = None
            except SimulationError as err:
                ids = np.asarray(err.ids, dtype=np.int64)  # the failed worlds kept their state
            failed = self._time < t0 + 0.5 * self.n_substeps * self.model.opt.timestep
            if ids is not None:
                failed[ids] = True
            qpos, qvel = self._qpos_np, self._qvel_np
            # One pass over the state in the usual case: a sum is finite and small only if every term is.
            if not (np.isfinite(qpos.sum()) and np.abs(qvel).max() <= 1e4):
                failed |= ~(np.isfinite(qpos).all(1) & np.isfinite(qvel).all(1)) | ~(np.abs(qvel).max(1) <= 1e4)
            return torch.from_numpy(failed)
        self._step_warp()
        return ~(torch.isfinite(self.qpos).all(1) & (self.qvel.abs().amax(1) <= 1e4))

    def _step_warp(self) -> None:
        wp, mjw = self._wp, self._mjw
        if "geom_pos" in self._fields:
            sync_static_geoms(self._geom_xpos, self._fields["geom_pos"], self._static)
        with wp.ScopedDevice(self._wp_device):
            if not self._wp_device.is_cuda:
                for _ in range(self.n_substeps):
                    mjw.step(self._m, self._d)
                return
            if self._graph is None:
                # Warm up (compiles and allocates), then capture all substeps as one CUDA graph.
                for _ in range(self.n_substeps):
                    mjw.step(self._m, self._d)
                with wp.ScopedCapture() as capture:
                    for _ in range(self.n_substeps):
                        mjw.step(self._m, self._d)
                self._graph = capture.graph
                return
            wp.capture_launch(self._graph)

    # -- state access -------------------------------------------------------------------------
    def reset(
        self,
        ids: torch.Tensor | Sequence[int] | np.ndarray | None = None,
        qpos: torch.Tensor | None = None,
        qvel: torch.Tensor | None = None,
    ) -> None:
        """Reset worlds ``ids`` to the model defaults, then to ``qpos``/``qvel`` if given.

        Args:
            ids: world ids (or a ``[W]`` bool mask); None for all.
            qpos: ``[len(ids), nq]`` positions, or None for the model's ``qpos0``.
            qvel: ``[len(ids), nv]`` velocities, or None for zeros.
        """
        if self.backend == "cpu":
            idx = _ids(ids, self.num_worlds)
            if len(idx) == 0:
                return
            self._batch.reset(idx, stage=0)  # mjSTAGE_NONE: the next step runs forward anyway
            t_idx = torch.as_tensor(idx, dtype=torch.long)
        else:
            # On the device throughout (no host sync): the ids become a mask there, read by Warp in place.
            if ids is None:
                t_idx = torch.arange(self.num_worlds, device=self.device)
            elif isinstance(ids, torch.Tensor) and ids.dtype == torch.bool:
                t_idx = ids.to(self.device).nonzero().flatten()
            else:
                t = ids if isinstance(ids, torch.Tensor) else torch.as_tensor(np.asarray(ids, dtype=np.int64))
                t_idx = t.to(self.device, torch.long)
            mask = torch.zeros(self.num_worlds, dtype=torch.bool, device=self.device)
            mask[t_idx] = True
            with self._wp.ScopedDevice(self._wp_device):
                self._mjw.reset_data(self._m, self._d, reset=self._wp.from_torch(mask))
        self.version += 1
        if qpos is not None:
            self.qpos[t_idx] = qpos.to(self.qpos)
        if qvel is not None:
            self.qvel[t_idx] = qvel.to(self.qvel)

    def get_state(self) -> dict[str, torch.Tensor]:
        """A copy of every world's integration state: ``STATE_FIELDS`` -> ``[W, n]`` (time ``[W, 1]``)."""
        return {f: t.reshape(self.num_worlds, -1).clone() for f, t in self._state.items()}

    def state_views(self) -> dict[str, torch.Tensor]:
        """Live views ``[W, n]`` of every world's integration state (``STATE_FIELDS``): writing them
        writes the worlds."""
        return {f: t.view(self.num_worlds, -1) for f, t in self._state.items()}

    def set_state(self, ids: torch.Tensor | Sequence[int] | np.ndarray | None, state: dict[str, torch.Tensor]) -> None:
        """Write integration state rows ``[len(ids), n]`` (as from ``get_state``) into worlds ``ids``."""
        idx = torch.as_tensor(_ids(ids, self.num_worlds), dtype=torch.long, device=self.device)
        missing = [f for f in STATE_FIELDS if f not in state]
        if missing:
            raise ValueError(f"state lacks fields {missing}; expected {list(STATE_FIELDS)}")
        for f, t in self._state.items():
            view = t.view(self.num_worlds, -1)
            view[idx] = torch.as_tensor(state[f]).reshape(len(idx), -1).to(view)
        self.version += 1

    def field(self, name: str) -> torch.Tensor:
        """The live per-world values ``[W, ...]`` of a model field named in ``per_world_fields``."""
        if name not in self._fields:
            raise KeyError(f"{name!r} is not per-world; per-world fields: {sorted(self._fields)}")
        return self._fields[name]

    def warp_handles(self):  # noqa: ANN201 - Warp types are optional imports
        """(Model, Data) of the ``warp`` backend, for rendering in place; None on ``cpu``."""
        if self.backend != "warp":
            return None
        return self._m, self._d

    def get_data(self, world: int) -> mujoco.MjData:
        """One world's state as a fresh MjData (for inspection or single-world tools)."""
        d = mujoco.MjData(self.model)
        d.qpos[:] = self.qpos[world].detach().cpu().double().numpy()
        d.qvel[:] = self.qvel[world].detach().cpu().double().numpy()
        d.ctrl[:] = self.ctrl[world].detach().cpu().double().numpy()
        mujoco.mj_forward(self.model, d)
        return d
