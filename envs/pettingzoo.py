"""A peer PettingZoo ``ParallelEnv`` brought into the batched env contract as it is, not rewritten.

``from_pettingzoo(factory, num_envs)`` steps ``num_envs`` instances of the env one after the other
in this process and stacks what they return into torch tensors: the ``privileged`` group
``[W, A, obs]`` (each agent's own observation), the ``critic`` group ``[W, A, obs + A * obs]`` (its
own, then every agent's, joined: what a centralised critic reads), reward ``[W, A]``,
terminated/truncated ``[W]``, auto-reset with ``info["final_obs"]``. The peer env keeps its own
physics and rewards; only the edges change:

- actions in the contract's ``[-1, 1]`` are mapped affinely onto the env's ``Box(low, high)``;
- a world's episode ends when any of its agents terminates or truncates (or at
  ``max_episode_steps``); the contract has no per-agent episode ends;
- each world seeds its new episodes from a stream of its own (``envs.streams``; ``reset(seed)``
  starts every stream again), so a seed reproduces every world's sequence of episodes, whatever
  the other worlds do.

The env's agents must be homogeneous (one ``Box`` observation and one ``Box`` action space,
the same for every agent): the contract's ``[W, A, ...]`` tensors need it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from envs.base import BatchedEnv
from envs.streams import WorldDraws

Obs = dict[str, torch.Tensor]
TaskInfo = Callable[[Any], dict[str, float]]


class PeerState:
    """How to read and write one peer env's state as flat float arrays (for recordings and
    replays); a task that has one passes it to ``from_pettingzoo``. Without one the state is empty."""

    def get(self, peer_env: Any) -> dict[str, np.ndarray]:
        """``{field: [n]}`` of one peer env."""
        return {}

    def set(self, peer_env: Any, state: dict[str, np.ndarray]) -> None:
        """Write ``get``'s fields back into one peer env."""
        if state:
            raise NotImplementedError(f"{type(self).__name__} cannot write a peer env's state")


class _PeerSim:
    """The part of ``envs.sim.Sim``'s interface that recording and replay read, over peer envs:
    ``get_state()`` ``{field: [W, n]}`` and ``set_state(ids, state)``; no per-world model fields."""

    backend = "cpu"

    def __init__(self, env: PettingZooBatchedEnv, io: PeerState) -> None:
        self.env, self.io = env, io

    def get_state(self) -> dict[str, torch.Tensor]:
        rows = [self.io.get(e) for e in self.env.envs]
        return {k: torch.as_tensor(np.stack([r[k] for r in rows]), dtype=torch.float64) for k in rows[0]}

    def set_state(self, ids: list[int] | None, state: dict[str, torch.Tensor]) -> None:
        ids = list(range(self.env.num_envs)) if ids is None else [int(i) for i in ids]
        for row, w in enumerate(ids):
            self.io.set(self.env.envs[w], {k: np.asarray(v[row], dtype=np.float64) for k, v in state.items()})

    def field(self, name: str) -> torch.Tensor:
        raise KeyError(f"a peer env has no per-world model field {name!r}")


@dataclasses.dataclass(frozen=True)
class PettingZooConfig:
    """The only config a wrapped peer env has of ours (its own lives in its factory)."""

    max_episode_steps: int = 25
    """Time limit in steps: the world is truncated here even if the peer env would go on."""

    def __post_init__(self) -> None:
        if self.max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {self.max_episode_steps}")


def _box(space: Any, what: str, agent: str) -> gym.spaces.Box:
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
        raise ValueError(f"{what} space of {agent!r} must be a 1-D Box, got {space}")
    return space


class PettingZooBatchedEnv:
    """W instances of a PettingZoo ``ParallelEnv``, as one batched env (see the module docstring).

    Attributes:
        num_envs: W.  agents: agent names.  num_agents: A.  act_dim: per-agent action size.
        observation_spaces: ``{"privileged": Box(obs), "critic": Box(obs + A * obs)}``.
        action_space: ``Box(-1, 1, (act_dim,))``.
        max_episode_steps: time limit.  episode_length: ``[W]`` steps into each world's episode.
        envs: the W peer env instances.
    """

    render_mode = "rgb_array"
    competitive = False

    def __init__(
        self,
        factory: Callable[[], Any],
        num_envs: int,
        cfg: Any = None,
        device: str | None = None,
        name: str = "pettingzoo",
        task_info: TaskInfo | None = None,
        state: PeerState | None = None,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int | np.integer) or num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
        num_envs = int(num_envs)
        self.cfg = cfg if cfg is not None else PettingZooConfig()
        self.max_episode_steps = int(self.cfg.max_episode_steps)
        self.num_envs, self.name = num_envs, name
        self.device = torch.device(device or "cpu")
        self.envs = [factory() for _ in range(num_envs)]
        first = self.envs[0]
        self.agents = list(first.possible_agents)
        obs_space = _box(first.observation_space(self.agents[0]), "observation", self.agents[0])
        act_space = _box(first.action_space(self.agents[0]), "action", self.agents[0])
        for a in self.agents[1:]:
            if first.observation_space(a) != obs_space or first.action_space(a) != act_space:
                raise ValueError(f"agent {a!r} has other spaces than {self.agents[0]!r}: agents must be homogeneous")
        self.act_dim = act_space.shape[0]
        self._low = torch.as_tensor(act_space.low, dtype=torch.float32)
        self._high = torch.as_tensor(act_space.high, dtype=torch.float32)
        if not (torch.isfinite(self._low).all() and torch.isfinite(self._high).all()):
            raise ValueError(f"action space must be bounded to be mapped from [-1, 1], got {act_space}")
        D, A = obs_space.shape[0], len(self.agents)
        self.observation_spaces = {
            "privileged": gym.spaces.Box(-np.inf, np.inf, (D,), dtype=np.float32),
            "critic": gym.spaces.Box(-np.inf, np.inf, (D + A * D,), dtype=np.float32),
        }
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.act_dim,), dtype=np.float32)
        self.episode_length = torch.zeros(num_envs, dtype=torch.long)
        self.num_diverged = 0
        self.stream_seed = 0
        self.draw_count = torch.zeros(num_envs, dtype=torch.long)
        self.task_info = task_info
        self.sim = _PeerSim(self, state or PeerState())
        self._obs = np.zeros((num_envs, self.num_agents, obs_space.shape[0]), dtype=np.float32)
        # A peer env cannot be read or rendered before its first reset (a replay loads states first).
        for w in range(num_envs):
            self._reset_world(w)

    @property
    def num_agents(self) -> int:
        return len(self.agents)

    @property
    def control_dt(self) -> float:
        """Seconds per step where the peer env says (MPE's ``world.dt``), else 0.1."""
        return float(getattr(getattr(self.envs[0].unwrapped, "world", None), "dt", 0.1))

    def reward_scales(self) -> dict[str, float]:
        # The peer env's reward is one term, taken as it is.
        return {"reward": 1.0}

    # -- the contract --------------------------------------------------------------------------
    def _reset_world(self, w: int) -> None:
        self.draw_count[w] += 1
        (seed,) = WorldDraws(self.stream_seed, torch.tensor([w]), self.draw_count[w : w + 1]).seeds()
        obs, _ = self.envs[w].reset(seed=seed)
        self._obs[w] = self._stack(obs, w)
        self.episode_length[w] = 0

    def _stack(self, per_agent: dict[str, Any], w: int) -> np.ndarray:
        missing = [a for a in self.agents if a not in per_agent]
        if missing:
            raise RuntimeError(f"world {w}: the peer env returned no observation for agents {missing}")
        return np.stack([np.asarray(per_agent[a], dtype=np.float32) for a in self.agents])

    def _observe(self) -> Obs:
        obs = torch.from_numpy(self._obs.copy()).to(self.device)
        W, A, D = obs.shape
        # A centralised critic's view: each agent's own observation, then every agent's, joined.
        critic = torch.cat((obs, obs.reshape(W, 1, A * D).expand(W, A, A * D)), -1)
        return {"privileged": obs, "critic": critic}

    def observe(self) -> Obs:
        """The observations of the worlds' state now, without stepping."""
        return self._observe()

    def reset(self, seed: int | None = None) -> Obs:
        """Start a new episode in every world; ``seed`` starts every world's stream again."""
        if seed is not None:
            self.stream_seed = int(seed)
            self.draw_count.zero_()
        for w in range(self.num_envs):
            self._reset_world(w)
        return self._observe()

    def check_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Validated, clipped float32 actions ``[W, A, act_dim]`` on ``device``, detached: the
        contract's own check (it reads only ``num_envs``, ``num_agents``, ``act_dim`` and ``device``)."""
        return BatchedEnv.check_actions(self, actions)  # type: ignore[arg-type]

    def to_peer_actions(self, actions: torch.Tensor) -> np.ndarray:
        """Contract actions ``[..., act_dim]`` in [-1, 1] -> the peer env's ``Box(low, high)``."""
        a = actions.detach().cpu().float()
        return (self._low + (a + 1.0) * 0.5 * (self._high - self._low)).numpy()

    def step(self, actions: torch.Tensor) -> tuple[Obs, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Advance every world one step (see ``envs.base.BatchedEnv.step`` for the returns).

        ``info`` holds ``reward_terms`` (``{"reward": reward}``), ``diverged`` and ``teleported``
        (always False here), the ``task_info`` values ``[W]`` when one was given, and, when any
        world finished, ``final_obs``, ``final_state`` (``sim.get_state()`` before the reset) and
        ``episode_length``.
        """
        peer = self.to_peer_actions(self.check_actions(actions))
        W, A = self.num_envs, self.num_agents
        reward = np.zeros((W, A), dtype=np.float32)
        term = np.zeros(W, dtype=bool)
        trunc = np.zeros(W, dtype=bool)
        extra: dict[str, np.ndarray] = {}
        for w, env in enumerate(self.envs):
            obs, rew, te, tr, _ = env.step({a: peer[w, i] for i, a in enumerate(self.agents)})
            self._obs[w] = self._stack(obs, w)
            reward[w] = [float(rew.get(a, 0.0)) for a in self.agents]
            term[w] = any(bool(te.get(a, False)) for a in self.agents)
            trunc[w] = not term[w] and any(bool(tr.get(a, False)) for a in self.agents)
            for key, value in (self.task_info(env) if self.task_info else {}).items():
                extra.setdefault(key, np.zeros(W, dtype=np.float32))[w] = value
        self.episode_length += 1
        trunc |= ~term & (self.episode_length >= self.max_episode_steps).numpy()
        reward_t = torch.from_numpy(reward).to(self.device)
        info: dict[str, Any] = {
            "reward_terms": {"reward": reward_t},
            "diverged": torch.zeros(W, dtype=torch.bool, device=self.device),
            "num_diverged": 0,
            "teleported": torch.zeros(W, dtype=torch.bool, device=self.device),
        }
        info.update({k: torch.from_numpy(v).to(self.device) for k, v in extra.items()})
        done = term | trunc
        if done.any():
            info["final_obs"] = self._observe()
            info["final_state"] = self.sim.get_state()
            info["episode_length"] = self.episode_length.clone().to(self.device)
            for w in np.flatnonzero(done):
                self._reset_world(int(w))
        term_t, trunc_t = torch.from_numpy(term).to(self.device), torch.from_numpy(trunc).to(self.device)
        return self._observe(), reward_t, term_t, trunc_t, info

    # -- snapshots -------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, torch.Tensor]:
        """The worlds' streams, every world's step count and observation, and its state through the
        ``PeerState`` (``sim/<field>``). With a ``PeerState`` that writes everything the peer env's
        future depends on (``mpe-spread``'s does), ``restore`` continues every episode exactly;
        without one (an empty state) it starts new episodes in every world instead."""
        snap = {f"sim/{k}": v for k, v in self.sim.get_state().items()}
        snap.update(episode_length=self.episode_length.clone(), draw_count=self.draw_count.clone())
        snap["stream_seed"] = torch.tensor(self.stream_seed, dtype=torch.long)
        snap["obs"] = torch.from_numpy(self._obs.copy())
        return snap

    def restore(self, snap: dict[str, torch.Tensor]) -> None:
        """Undo everything since ``snapshot`` (see there); a snapshot lacking a part is refused
        before anything is written."""
        missing = [k for k in ("stream_seed", "draw_count", "episode_length", "obs") if k not in snap]
        if missing:
            raise ValueError(f"snapshot lacks {missing}: not a whole snapshot of this env")
        state = {k[4:]: v for k, v in snap.items() if k.startswith("sim/")}
        self.stream_seed = int(snap["stream_seed"])
        self.draw_count.copy_(snap["draw_count"])
        if not state:
            for w in range(self.num_envs):
                self._reset_world(w)
            return
        self.sim.set_state(None, state)
        self.episode_length.copy_(snap["episode_length"])
        self._obs[:] = snap["obs"].numpy()

    # -- rendering --------------------------------------------------------------------------------
    def render_frame(
        self, world: int = 0, camera: str = "overview", resolution: tuple[int, int] = (320, 240)
    ) -> np.ndarray:
        """One RGB frame ``[H, W, 3]`` uint8 of ``world``: the peer env's own ``render()``, resized.

        A peer env has one view; ``camera`` may be ``"overview"`` or ``"<agent>_cam"`` (an agent's
        panel in a replay shows that same view: the peer env has no egocentric camera).
        """
        from PIL import Image

        if not 0 <= world < self.num_envs:
            raise ValueError(f"world must be in [0, {self.num_envs}), got {world}")
        if camera != "overview" and camera not in {f"{a}_cam" for a in self.agents}:
            raise ValueError(f"unknown camera {camera!r}: 'overview' or '<agent>_cam'")
        frame = self.envs[world].render()
        if frame is None:
            raise RuntimeError("the peer env rendered nothing: build it with render_mode='rgb_array'")
        return np.asarray(Image.fromarray(np.asarray(frame, dtype=np.uint8)).resize(tuple(resolution)))

    def close(self) -> None:
        for env in self.envs:
            env.close()


def from_pettingzoo(
    factory: Callable[[], Any],
    num_envs: int,
    max_episode_steps: int | None = None,
    device: str | None = None,
    name: str = "pettingzoo",
    task_info: TaskInfo | None = None,
    state: PeerState | None = None,
    cfg: Any = None,
) -> PettingZooBatchedEnv:
    """``num_envs`` instances of the PettingZoo ``ParallelEnv`` that ``factory()`` builds, batched.

    Args:
        factory: builds one peer env (pass ``render_mode="rgb_array"`` in it for ``render_frame``).
        num_envs: W, instances stepped together (one after the other, in this process).
        max_episode_steps: time limit (default: the peer env's ``max_cycles`` where it has one, else 25).
        device: where the tensors go (the peer env itself runs in numpy on the CPU).
        name: the env's name in logs and recordings.
        task_info: ``task_info(peer_env) -> {key: float}`` after each step, before any reset:
            per-world task outcomes (e.g. ``success``) put into ``info[key]`` ``[W]``.
        state: reads and writes a peer env's state (``env.sim.get_state``), for recordings and replays.
        cfg: the config stored in checkpoints and recordings; it must have ``max_episode_steps``
            (default: a ``PettingZooConfig``).
    """
    if cfg is None:
        if max_episode_steps is None:
            probe = factory()
            max_episode_steps = int(getattr(probe.unwrapped, "max_cycles", 25))
            probe.close()
        cfg = PettingZooConfig(max_episode_steps=max_episode_steps)
    return PettingZooBatchedEnv(factory, num_envs, cfg=cfg, device=device, name=name, task_info=task_info, state=state)
