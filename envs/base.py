"""The batched env contract shared by every task: checks, auto-reset, reward terms, divergence.

A task subclasses ``BatchedEnv`` and fills in ``_reset_worlds``, ``_observe`` and ``_evaluate``;
this class does the rest, so that every task behaves the same way at its edges.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
import torch

from envs.sim import Sim

Obs = dict[str, torch.Tensor]


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run torch's CPU ops on ``n`` threads inside the block, then restore the caller's setting.

    The ``cpu`` backend's ``mujoco.batch`` threads already fill every core; torch's OpenMP
    workers, spinning between the many small ops of an env step, would take cores from them.
    Measured on 2 cores: soccer-2v2 at W=256 steps in 8.6 ms instead of 10.1 ms.
    """
    prev = torch.get_num_threads()
    if prev == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


class EnvPart:
    """A piece of a task with per-world state of its own (a keypoint memory, a start curriculum): an
    env's ``snapshot`` and ``restore`` take in every ``[W, ...]`` tensor attribute of each part it holds."""

    def state(self) -> dict[str, torch.Tensor]:
        """The part's per-world tensors by attribute name."""
        return {k: v for k, v in vars(self).items() if isinstance(v, torch.Tensor) and v.dim() >= 1}


class BatchedEnv(abc.ABC):
    """W worlds of A agents each, stepped together; everything is a torch tensor on ``device``.

    Attributes:
        num_envs: W.  agents: agent names.  num_agents: A.  act_dim: per-agent action size.
        observation_spaces: group name -> per-agent ``gymnasium.spaces.Box``.
        action_space: per-agent ``Box(-1, 1, (act_dim,))``; actions outside are clipped.
        mj_model: the MjModel.  n_substeps: physics steps per control step.
        num_diverged: worlds reset so far because their physics failed.
    """

    act_dim: int
    agents: list[str]
    render_mode = "rgb_array"  # render_frame() draws any world from any camera
    competitive = False  # True: two teams play each other and ``info["score"]`` says who won
    observation_spaces: dict[str, gym.spaces.Box]

    def __init__(
        self,
        mj_model: mujoco.MjModel,
        num_envs: int,
        n_substeps: int,
        backend: str,
        device: str | None,
        per_world_fields: tuple[str, ...] = (),
        nthread: int = 0,
    ) -> None:
        self.mj_model = mj_model
        self.n_substeps = n_substeps
        self.num_envs = num_envs
        self.sim = Sim(
            mj_model,
            num_envs,
            backend=backend,
            device=device,
            n_substeps=n_substeps,
            nthread=nthread,
            per_world_fields=per_world_fields,
        )
        self.device = self.sim.device
        self.num_diverged = 0
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(0)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.act_dim,), dtype=np.float32)
        self.episode_length = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self._per_world_fields = per_world_fields
        self._scales: dict[str, float] | None = None
        self._renderer = None
        self._viewers: dict[Any, Any] = {}

    @property
    def num_agents(self) -> int:
        return len(self.agents)

    @property
    def control_dt(self) -> float:
        return self.mj_model.opt.timestep * self.n_substeps

    # -- to be provided by a task ---------------------------------------------------------------
    @abc.abstractmethod
    def _reset_worlds(self, ids: torch.Tensor) -> None:
        """Start new episodes in worlds ``ids`` (long ``[n]``): sample and write their state."""

    @abc.abstractmethod
    def _apply_actions(self, actions: torch.Tensor) -> None:
        """Write clipped actions ``[W, A, act_dim]`` to the sim's controls."""

    @abc.abstractmethod
    def _observe(self) -> Obs:
        """Every observation group, ``[W, A, ...]``."""

    @abc.abstractmethod
    def _evaluate(self) -> tuple[dict[str, torch.Tensor], torch.Tensor, dict[str, Any]]:
        """After a physics step: (unscaled reward terms ``[W, A]``, terminated ``[W]``, info)."""

    @abc.abstractmethod
    def reward_scales(self) -> dict[str, float]:
        """Scale of each reward term, by name (the keys of ``_evaluate``'s terms)."""

    # -- the contract --------------------------------------------------------------------------
    def observe(self) -> Obs:
        """The observations of the worlds' state now, without stepping (after a ``restore``, or a
        state written by hand): every group, ``[W, A, ...]``."""
        return self._observe()

    def reset(self, seed: int | None = None) -> Obs:
        """Start a new episode in every world; ``seed`` reseeds the env's generator."""
        if seed is not None:
            self.generator.manual_seed(int(seed))
        ids = torch.arange(self.num_envs, device=self.device)
        self._reset_worlds(ids)
        self.episode_length.zero_()
        return self._observe()

    def check_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Validated, clipped float32 actions ``[W, A, act_dim]`` on ``device``."""
        expected = (self.num_envs, self.num_agents, self.act_dim)
        if not isinstance(actions, torch.Tensor):
            actions = torch.as_tensor(np.asarray(actions, dtype=np.float32))
        if tuple(actions.shape) != expected:
            raise ValueError(f"actions must have shape [W, A, act_dim] = {list(expected)}, got {list(actions.shape)}")
        actions = actions.to(device=self.device, dtype=torch.float32)
        if not torch.isfinite(actions).all():
            bad = (~torch.isfinite(actions)).any(-1).any(-1).nonzero().flatten().tolist()
            raise ValueError(f"actions contain NaN or inf (worlds {bad[:10]})")
        return actions.clamp(-1.0, 1.0)

    def step(self, actions: torch.Tensor) -> tuple[Obs, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Advance every world one control step.

        Args:
            actions: float ``[W, A, act_dim]``; clipped to [-1, 1].

        Returns:
            obs (groups ``[W, A, ...]``), reward ``[W, A]``, terminated ``[W]``, truncated ``[W]``,
            info with ``reward_terms`` (each scaled term ``[W, A]``), ``diverged`` ``[W]``,
            ``teleported`` ``[W]`` (the task rewrote the world's state inside the step, as at a
            kick-off after a goal), and, when any world finished, ``final_obs`` and
            ``final_state`` (observations and ``Sim.get_state()`` before the auto-reset, valid
            where ``terminated | truncated``) and ``episode_length``.
        """
        actions = self.check_actions(actions)
        if self.sim.backend == "cpu":
            with torch_threads(1):
                return self._step(actions)
        return self._step(actions)

    def _step(self, actions: torch.Tensor) -> tuple[Obs, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        self._apply_actions(actions)
        failed = self.sim.step()
        self.episode_length += 1
        terms, terminated, info = self._evaluate()
        if self._scales is None:
            self._scales = self.reward_scales()
        scales = self._scales
        scaled = {k: v * scales[k] for k, v in terms.items()}
        reward = torch.stack(list(scaled.values())).sum(0)
        truncated = self.episode_length >= self.max_episode_steps
        diverged = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        if len(failed):
            fid = torch.as_tensor(failed, device=self.device)
            diverged[fid] = True
            self.num_diverged += len(failed)
            # A failed world's state means nothing: no reward from it, end its episode.
            reward[fid] = 0.0
            terminated[fid] = False
            truncated[fid] = True
        info["reward_terms"] = scaled
        info["diverged"] = diverged
        info["num_diverged"] = self.num_diverged
        obs = self._observe()
        done = terminated | truncated
        info.setdefault("teleported", torch.zeros(self.num_envs, dtype=torch.bool, device=self.device))
        if done.any():
            info["final_obs"] = obs
            info["final_state"] = self.sim.get_state()
            info["episode_length"] = self.episode_length.clone()
            ids = done.nonzero().flatten()
            self._reset_worlds(ids)
            self.episode_length[ids] = 0
            obs = self._observe()
        return obs, reward, terminated, truncated, info

    max_episode_steps: int

    # -- snapshots -------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, torch.Tensor]:
        """Everything that decides the env's future: the sim's integration state, its per-world
        fields, the env's generator and every per-world tensor the task keeps (``[W, ...]``
        attributes). With ``restore`` a training run continues exactly where it stopped."""
        snap = {f"sim/{k}": v for k, v in self.sim.get_state().items()}
        snap.update({f"field/{n}": self.sim.field(n).clone() for n in self._per_world_fields})
        snap["generator"] = self.generator.get_state()
        for name, value in vars(self).items():
            if isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == self.num_envs:
                snap[f"task/{name}"] = value.clone()
            elif isinstance(value, EnvPart):
                for key, part_value in value.state().items():
                    snap[f"part/{name}.{key}"] = part_value.clone()
        return snap

    def restore(self, snap: dict[str, torch.Tensor]) -> None:
        """Undo everything since ``snapshot`` (see there)."""
        state = {k[4:]: v for k, v in snap.items() if k.startswith("sim/")}
        self.sim.set_state(None, state)
        for key, value in snap.items():
            group, _, name = key.partition("/")
            if group == "field":
                self.sim.field(name).copy_(value)
            elif group == "task":
                setattr(self, name, value.clone().to(self.device))
            elif group == "part":
                part, _, key = name.partition(".")
                setattr(getattr(self, part), key, value.clone().to(self.device))
        self.generator.set_state(snap["generator"])

    # -- cameras ------------------------------------------------------------------------------------
    def render_cameras(
        self, cameras: list[str], resolution: tuple[int, int], modalities: tuple[str, ...]
    ) -> dict[str, torch.Tensor]:
        """Every world's ``cameras`` through one lazily built ``BatchRenderer`` (see its ``render``)."""
        from envs.render import BatchRenderer

        if self._renderer is None:
            self._renderer = BatchRenderer(self.sim, cameras, resolution, modalities, self._per_world_fields)
        return self._renderer.render()

    def render_frame(
        self, world: int = 0, camera: str = "overview", resolution: tuple[int, int] = (320, 240)
    ) -> np.ndarray:
        """One RGB frame ``[H, W, 3]`` uint8 of ``world`` from ``camera`` (any camera of the model)."""
        from envs.render import BatchRenderer

        if not 0 <= world < self.num_envs:
            raise ValueError(f"world must be in [0, {self.num_envs}), got {world}")
        key = (camera, tuple(resolution))
        if key not in self._viewers:
            view = _WorldView(self, world)
            self._viewers[key] = (
                view,
                BatchRenderer(view, [camera], resolution, ("rgb",), self._per_world_fields, shards=1),
            )
        view, renderer = self._viewers[key]
        view.world = world
        return renderer.render()["rgb"][0, 0].permute(1, 2, 0).cpu().numpy()

    def close(self) -> None:
        """Release renderers and their threads."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        for _, r in self._viewers.values():
            r.close()
        self._viewers.clear()


class _WorldView:
    """The part of the ``Sim`` interface a renderer reads, narrowed to one world of an env."""

    def __init__(self, env: BatchedEnv, world: int) -> None:
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
