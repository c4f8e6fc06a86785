"""The batched env contract shared by every task: checks, auto-reset, reward terms, divergence.

A task subclasses ``BatchedEnv`` and fills in ``_reset_worlds``, ``_observe`` and ``_evaluate``;
this class does the rest, so that every task behaves the same way at its edges.
"""

from __future__ import annotations

import abc
import contextlib
import types
from collections.abc import Iterator, Mapping
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
import torch

from envs.config import integer
from envs.sim import Sim
from envs.streams import WorldDraws
from envs.threads import choose_threads

Obs = dict[str, torch.Tensor]


def real_actions(actions: Any, what: str = "actions") -> torch.Tensor:
    """``actions`` as a float32 tensor cut from any autograd graph (same shape, same device).

    Accepts a torch tensor or numpy array (or nested list) of real floating or integer numbers;
    refuses bool, complex, string and object data with a ``TypeError`` naming ``what``: such
    data cast to float would be a silent guess (``True`` -> 1, ``"0.5"`` -> 0.5, ``1j`` -> 0).
    """
    if isinstance(actions, torch.Tensor):
        if actions.dtype == torch.bool or actions.is_complex():
            raise TypeError(f"{what} must be real floating or integer numbers, got a {actions.dtype} tensor")
        return actions.detach().to(torch.float32)
    try:
        array = np.asarray(actions)
    except (TypeError, ValueError) as e:  # ragged nesting, objects numpy cannot hold
        raise TypeError(f"{what} must be an array of real floating or integer numbers: {e}") from None
    if array.dtype.kind not in "fiu":
        raise TypeError(f"{what} must be real floating or integer numbers, got an array of {array.dtype}")
    return torch.as_tensor(array.astype(np.float32))


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


def _kind(t: torch.Tensor) -> str:
    return "bool" if t.dtype == torch.bool else "float" if t.is_floating_point() else "int"


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
        masked_resets: reset finished worlds by mask, with no host sync in ``step`` (default on
            ``warp``); otherwise by index, only when a world finished (default on ``cpu``, where
            reading a flag costs nothing). Both give the same episodes (tested).
        divergences: ``[W]`` long, how many times each world was.
        draw_count: ``[W]`` long, how many starts each world has drawn since ``reset(seed)``; its
            ``n``-th is keyed by ``(seed, world, n)`` (``draws``, ``envs.streams``).
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
        num_envs = integer("num_envs", num_envs, 1)
        choose_threads()  # torch's threads for the process, once, unless the user chose (envs/threads.py)
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
        # Resets by mask (``step``): no host sync per step. The default where a sync costs (``warp``).
        self._masked_resets = self.sim.backend != "cpu"
        # Every start a world draws comes from a stream of its own (``draws``), so that nothing
        # one world does changes another's draws. ``generator`` is for what is drawn for every
        # world at every step (sensor noise) and for curricula the worlds share by design.
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(0)
        self.stream_seed = 0
        self.draw_count = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self.divergences = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self._held: frozenset[str] | None = None
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.act_dim,), dtype=np.float32)
        self.episode_length = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self.per_world_fields = per_world_fields
        self._scales: tuple[tuple[str, ...], torch.Tensor] | None = None  # term names, their scales
        self._renderer = None
        self._viewers: dict[Any, Any] = {}
        self.consts = types.SimpleNamespace()  # constant tensors of a task (index tables): not per-world state
        # Whether ``info["final_obs"]`` carries the camera groups. False: a step renders once, after its
        # resets, and the final frames are not drawn (DAgger reads none).
        self.final_cameras = True
        self._render = True  # read by a task's ``_observe``: False leaves its cameras out

    @property
    def num_agents(self) -> int:
        return len(self.agents)

    @property
    def masked_resets(self) -> bool:
        """Whether ``step`` resets finished worlds by mask (no host sync) rather than by index; see the
        class docstring. Setting it True where a task's starts or observations draw from the shared
        ``generator`` (``masked_resets_refused``) is a ``ValueError``: the two paths would draw apart."""
        return self._masked_resets

    @masked_resets.setter
    def masked_resets(self, value: bool) -> None:
        why = self.masked_resets_refused()
        if value and why:
            raise ValueError(f"masked_resets: {why}")
        self._masked_resets = bool(value)

    def masked_resets_refused(self) -> str | None:
        """Why this env cannot reset by mask, or None. A task whose resets or observations draw from the
        shared ``generator`` says so here (a masked step observes every world twice, an index step only
        when a world finished)."""
        return None

    @property
    def num_diverged(self) -> int:
        """Worlds reset so far because their physics failed (reads ``divergences``: a host sync)."""
        return int(self.divergences.sum())

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
        """Every observation group, ``[W, A, ...]``; the camera groups (``_observe_cameras``) only while
        ``self._render``."""

    def _observe_cameras(self) -> Obs:
        """The camera groups of the worlds' state now (none for an env without cameras)."""
        return {}

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
        """Start a new episode in every world; ``seed`` reseeds the env: every world's stream
        starts again from its first draw, and the shared generator from ``seed``."""
        self._held_names()
        if seed is not None:
            self.generator.manual_seed(int(seed))
            self.stream_seed = int(seed)
            self.draw_count.zero_()
        ids = torch.arange(self.num_envs, device=self.device)
        self._reset_worlds(ids)
        self.episode_length.zero_()
        return self._observe()

    def check_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Validated, clipped float32 actions ``[W, A, act_dim]`` on ``device``, detached (no gradient
        reaches the observations). A real floating or integer tensor or array is accepted; bool,
        complex, string or object data is a ``TypeError``, a wrong shape or NaN/inf a ``ValueError``."""
        expected = (self.num_envs, self.num_agents, self.act_dim)
        actions = real_actions(actions)
        if tuple(actions.shape) != expected:
            raise ValueError(f"actions must have shape [W, A, act_dim] = {list(expected)}, got {list(actions.shape)}")
        actions = actions.to(device=self.device, dtype=torch.float32)
        finite = torch.isfinite(actions).all()
        if actions.device.type == "cuda":
            # Checked on the device without waiting for it: NaN or inf stops the process at the next sync.
            torch._assert_async(finite, "actions contain NaN or inf")
        elif not finite:
            bad = (~torch.isfinite(actions)).any(-1).any(-1).nonzero().flatten().tolist()
            raise ValueError(f"actions contain NaN or inf (worlds {bad[:10]})")
        return actions.clamp(-1.0, 1.0)

    def step(self, actions: torch.Tensor) -> tuple[Obs, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Advance every world one control step.

        Args:
            actions: float (or integer) ``[W, A, act_dim]``; clipped to [-1, 1] (see ``check_actions``).

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
        self._held_names()
        self._apply_actions(actions)
        diverged = self.sim.step().to(self.device)
        self.episode_length += 1
        terms, terminated, info = self._evaluate()
        if self._scales is None or self._scales[0] != tuple(terms):
            scales = self.reward_scales()
            self._scales = (tuple(terms), torch.tensor([scales[k] for k in terms], device=self.device))
        # Every term times its scale in one op (the same floats as term by term), summed in term order.
        stacked = torch.stack(list(terms.values()))  # [terms, W, A]
        scaled_all = stacked * self._scales[1].view(-1, *[1] * (stacked.dim() - 1))
        scaled = dict(zip(terms, scaled_all.unbind(0), strict=True))
        reward = scaled_all.sum(0)
        # A failed world's state means nothing: no reward from it, end its episode.
        reward = reward.masked_fill(diverged[:, None], 0.0)
        terminated = terminated & ~diverged
        truncated = (self.episode_length >= self.max_episode_steps) | diverged
        self.divergences += diverged
        info["reward_terms"] = scaled
        info["diverged"] = diverged
        info["num_diverged"] = self.divergences.sum()
        self._render = self.final_cameras
        try:
            obs = self._observe()
        finally:
            self._render = True
        done = terminated | truncated
        info.setdefault("teleported", torch.zeros(self.num_envs, dtype=torch.bool, device=self.device))
        if self.masked_resets:
            info["final_obs"] = obs
            info["final_state"] = self.sim.get_state()
            info["episode_length"] = self.episode_length.clone()
            self.reset_where(done, self._reset_worlds)
            self.episode_length.masked_fill_(done, 0)
            fresh = self._observe()
            obs = {
                k: torch.where(done.view(-1, *[1] * (v.dim() - 1)), v, obs[k]) if k in obs else v
                for k, v in fresh.items()
            }
        elif done.any():
            info["final_obs"] = obs
            info["final_state"] = self.sim.get_state()
            info["episode_length"] = self.episode_length.clone()
            ids = done.nonzero().flatten()
            self._reset_worlds(ids)
            self.episode_length[ids] = 0
            obs = self._observe()
        elif not self.final_cameras:
            obs.update(self._observe_cameras())
        return obs, reward, terminated, truncated, info

    def reset_where(self, mask: torch.Tensor, start: Any) -> None:
        """``start(ids)`` (a reset or a kick-off) for the worlds where ``mask`` (``[W]`` bool) holds,
        with no host sync: ``start`` runs for every world, then every per-world tensor (the sim's state
        and fields, the task's and its parts') keeps its old value where ``mask`` is False. A world's
        draws are keyed by its own count (``draws``), so the worlds that start draw what they would
        have drawn alone. ``start`` must leave the shared ``generator`` alone. Only the integration state
        (``Sim.state_views``) of the other worlds is kept: a backend's reset also clears what egoteach's
        envs never set (applied forces, mocap bodies), for every world."""
        before = {k: v.clone() for k, v in self._world_state().items()}
        start(torch.arange(self.num_envs, device=self.device))
        after = self._world_state()
        for key, old in before.items():
            new = after[key]
            merged = torch.where(mask.view(-1, *[1] * (old.dim() - 1)), new, old)
            group, _, name = key.partition("/")
            if group in ("sim", "field"):
                new.copy_(merged)
            elif group == "task":
                setattr(self, name, merged)
            else:
                part, _, attr = name.partition(".")
                setattr(getattr(self, part), attr, merged)
        self.sim.version += 1  # the state moved (a task's cache of it keys on this)

    def _world_state(self) -> dict[str, torch.Tensor]:
        """Every per-world tensor the env's future depends on, live (not copies), ``[W, ...]``:
        ``sim/`` the integration state, ``field/`` per-world model fields, ``task/`` and ``part/``."""
        out = {f"sim/{k}": v for k, v in self.sim.state_views().items()}
        out.update({f"field/{n}": self.sim.field(n) for n in self.per_world_fields})
        out.update({f"task/{k}": v for k, v in self._world_tensors().items()})
        for name, value in vars(self).items():
            if isinstance(value, EnvPart):
                W = self.num_envs
                out.update({f"part/{name}.{k}": v for k, v in value.state().items() if v.shape[0] == W})
        return out

    max_episode_steps: int

    def draws(self, ids: torch.Tensor) -> WorldDraws:
        """Random numbers for a start of each world in ``ids``, each from that world's own stream
        (see ``envs.streams``): a task's ``_reset_worlds`` draws everything through this."""
        self.draw_count[ids] += 1
        return WorldDraws(self.stream_seed, ids, self.draw_count[ids])

    # -- snapshots -------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, torch.Tensor]:
        """Everything that decides the env's future: the sim's integration state, its per-world
        fields, the env's generator and every per-world tensor the task keeps (``[W, ...]``
        attributes). With ``restore`` a training run continues exactly where it stopped."""
        self._held_names()
        snap = {f"sim/{k}": v for k, v in self.sim.get_state().items()}
        snap.update({f"field/{n}": self.sim.field(n).clone() for n in self.per_world_fields})
        snap["generator"] = self.generator.get_state()
        snap["stream_seed"] = torch.tensor(self.stream_seed, dtype=torch.long)
        snap.update({f"task/{name}": value.clone() for name, value in self._world_tensors().items()})
        for name, value in vars(self).items():
            if isinstance(value, EnvPart):
                for key, part_value in value.state().items():
                    snap[f"part/{name}.{key}"] = part_value.clone()
        return snap

    def _world_tensors(self) -> dict[str, torch.Tensor]:
        """The task's per-world tensor attributes (``[W, ...]``, on the env's device) by name. A task keeps
        the constant index tensors it adds in ``self.consts``, where a length that happens to equal W does
        not make them per-world."""
        W = self.num_envs
        return {
            k: v
            for k, v in vars(self).items()
            if isinstance(v, torch.Tensor) and v.dim() >= 1 and v.shape[0] == W and v.device == self.device
        }

    def _held_names(self) -> frozenset[str]:
        """Names of the per-world tensors the env holds from one step to the next: those it had
        before its first step. Tensors a step makes for its own use (a position before the actions)
        are scratch: a snapshot carries them if it was taken after a step, and need not."""
        if self._held is None:
            self._held = frozenset(self._world_tensors())
        return self._held

    def restore(self, snap: dict[str, torch.Tensor]) -> None:
        """Undo everything since ``snapshot`` (see there). The snapshot is checked whole before
        anything is written: every key this env's own snapshot has (a step's scratch tensors aside)
        and no other, each a tensor of the same shape and dtype (of the same kind for the sim's
        state). Otherwise a ``ValueError`` names what differs, and the env is left as it was."""
        snap = self._checked_snapshot(snap)
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
        self.stream_seed = int(snap["stream_seed"])

    def _checked_snapshot(self, snap: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """``snap`` if it fits this env whole (see ``restore``), else a ``ValueError`` naming what differs."""
        if not isinstance(snap, Mapping):
            raise ValueError(f"a snapshot is a dict of tensors from env.snapshot(), got {type(snap).__name__}")
        expected = self.snapshot()
        snap = dict(snap)
        # Snapshots written before worlds had streams of their own: they go on from the first draws.
        snap.setdefault("task/divergences", torch.zeros_like(expected["task/divergences"]))
        snap.setdefault("task/draw_count", torch.zeros_like(expected["task/draw_count"]))
        snap.setdefault("stream_seed", torch.zeros_like(expected["stream_seed"]))
        scratch = {k for k in expected if k.startswith("task/") and k[5:] not in self._held_names()}
        missing = sorted(k for k in expected if k not in snap and k not in scratch)
        unknown = sorted(k for k in snap if k not in expected and not self._is_scratch(k, snap[k]))
        if missing or unknown:
            raise ValueError(
                f"snapshot does not fit this env (num_envs={self.num_envs}): missing {missing}, unknown {unknown}"
            )
        for key, want in expected.items():
            if key not in snap:
                continue
            got = snap[key]
            if not isinstance(got, torch.Tensor):
                raise ValueError(f"snapshot[{key!r}] must be a tensor, got {type(got).__name__}")
            exact = not key.startswith(("sim/", "field/"))  # those two are copied into the sim's own arrays
            kind = _kind(got) == _kind(want)
            if got.shape != want.shape or (got.dtype != want.dtype if exact else not kind):
                raise ValueError(
                    f"snapshot[{key!r}] must be {want.dtype} {list(want.shape)}, got {got.dtype} {list(got.shape)}"
                )
        return snap

    def _is_scratch(self, key: str, value: Any) -> bool:
        """Whether ``key`` is a step's scratch tensor (``task/NAME``, ``[W, ...]``) this env has not made yet."""
        group, _, name = key.partition("/")
        fits = isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == self.num_envs
        return group == "task" and name.isidentifier() and name not in vars(self) and fits

    # -- cameras ------------------------------------------------------------------------------------
    def render_cameras(
        self, cameras: list[str], resolution: tuple[int, int], modalities: tuple[str, ...]
    ) -> dict[str, torch.Tensor]:
        """Every world's ``cameras`` through one lazily built ``BatchRenderer`` (see its ``render``)."""
        from envs.render import BatchRenderer

        if self._renderer is None:
            self._renderer = BatchRenderer(self.sim, cameras, resolution, modalities, self.per_world_fields)
        return self._renderer.render()

    def render_frame(
        self, world: int = 0, camera: str = "overview", resolution: tuple[int, int] = (320, 240)
    ) -> np.ndarray:
        """One RGB frame ``[H, W, 3]`` uint8 of ``world`` from ``camera`` (any camera of the model)."""
        from envs.render import BatchRenderer, WorldView

        if not 0 <= world < self.num_envs:
            raise ValueError(f"world must be in [0, {self.num_envs}), got {world}")
        key = (camera, tuple(resolution))
        if key not in self._viewers:
            view = WorldView(self, world)
            self._viewers[key] = (
                view,
                BatchRenderer(view, [camera], resolution, ("rgb",), self.per_world_fields, shards=1),
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
