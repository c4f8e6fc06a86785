"""``mpe-spread``: mpe2's cooperative navigation (``simple_spread_v3``), continuous actions, batched
by ``from_pettingzoo``: N agents cover N landmarks and are penalised for colliding.

Its ``info`` carries, per world, ``coverage`` (the share of landmarks with an agent within
``CAPTURE_RADIUS``, mpe2's own threshold), ``stage`` (how many are covered), ``success`` (every
landmark covered), ``reach`` (at least one covered) and ``path_length`` (metres the agents moved
this episode, mean over agents), so that the suite's evaluation reads it as it reads the MuJoCo tasks.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from envs.pettingzoo import PeerState, PettingZooBatchedEnv

CAPTURE_RADIUS = 0.1  # mpe2's simple_spread ``benchmark_data`` counts a landmark occupied within 0.1


@dataclasses.dataclass(frozen=True)
class SpreadConfig:
    """Config of ``mpe-spread`` (the arguments of ``simple_spread_v3.parallel_env``)."""

    n_agents: int = 3
    """N: agents, and landmarks."""
    local_ratio: float = 0.5
    """Weight of each agent's own (collision) reward against the shared (coverage) one."""
    max_cycles: int = 25
    """Steps per episode."""
    cameras: tuple[str, ...] = ()
    """None: MPE has no cameras (the field exists so that tools asking for none work unchanged)."""

    def __post_init__(self) -> None:
        if self.n_agents < 1:
            raise ValueError(f"n_agents must be >= 1, got {self.n_agents}")
        if not 0.0 <= self.local_ratio <= 1.0:
            raise ValueError(f"local_ratio must be in [0, 1], got {self.local_ratio}")
        if self.max_cycles < 1:
            raise ValueError(f"max_cycles must be >= 1, got {self.max_cycles}")
        if self.cameras:
            raise ValueError(f"mpe-spread has no cameras, got cameras={self.cameras}")

    @property
    def max_episode_steps(self) -> int:
        return self.max_cycles


def coverage(peer_env: Any) -> float:
    """Share of landmarks with some agent within ``CAPTURE_RADIUS`` in one mpe2 spread env."""
    world = peer_env.unwrapped.world
    agents = np.stack([a.state.p_pos for a in world.agents])
    marks = np.stack([lm.state.p_pos for lm in world.landmarks])
    dist = np.linalg.norm(marks[:, None] - agents[None], axis=-1)  # [landmarks, agents]
    return float((dist.min(1) < CAPTURE_RADIUS).mean())


class _SpreadInfo:
    """Per-step task info of each world, with the path length accumulated over its episode."""

    def __init__(self) -> None:
        self._length: dict[int, float] = {}

    def __call__(self, peer_env: Any) -> dict[str, float]:
        raw = peer_env.unwrapped
        world = raw.world
        # mpe2 integrates p_pos += p_vel * dt with the new velocity: this step's displacement exactly.
        moved = float(np.mean([np.linalg.norm(a.state.p_vel) for a in world.agents]) * world.dt)
        length = moved + (self._length.get(id(raw), 0.0) if raw.steps > 1 else 0.0)
        self._length[id(raw)] = length
        cov = coverage(peer_env)
        n = len(world.landmarks)
        return {
            "coverage": cov,
            "stage": round(cov * n),
            "success": float(cov == 1.0),
            "reach": float(cov > 0.0),
            "path_length": length,
        }


class SpreadState(PeerState):
    """An MPE world's state: every agent's and landmark's position and velocity, flattened, and
    the step count (the communication state is always zero in spread; the peer env's own random
    generator is only read at a reset, which ``from_pettingzoo`` seeds)."""

    def get(self, peer_env: Any) -> dict[str, np.ndarray]:
        world = peer_env.unwrapped.world
        ents = list(world.agents) + list(world.landmarks)
        return {
            "p_pos": np.concatenate([e.state.p_pos for e in ents]),
            "p_vel": np.concatenate([e.state.p_vel for e in ents]),
            "steps": np.array([peer_env.unwrapped.steps], dtype=np.float64),  # the time limit counts them
        }

    def set(self, peer_env: Any, state: dict[str, np.ndarray]) -> None:
        raw = peer_env.unwrapped
        world = raw.world
        if "steps" in state:
            raw.steps = int(state["steps"][0])
        if not raw.agents:  # a finished peer env lists no agents until reset; a written state is mid-episode
            raw.agents = list(raw.possible_agents)
            peer_env.agents = raw.agents
        for i, e in enumerate(list(world.agents) + list(world.landmarks)):
            e.state.p_pos = np.array(state["p_pos"][2 * i : 2 * i + 2], dtype=np.float64)
            e.state.p_vel = np.array(state["p_vel"][2 * i : 2 * i + 2], dtype=np.float64)


def make_spread(
    cfg: SpreadConfig, num_envs: int, backend: str = "cpu", device: str | None = None, name: str = "mpe-spread"
) -> PettingZooBatchedEnv:
    """The batched ``mpe-spread`` env (the registry's constructor)."""
    from mpe2 import simple_spread_v3

    if backend != "cpu":
        raise ValueError(f"{name} runs mpe2 in numpy: backend must be 'cpu', got {backend!r}")

    def factory() -> Any:
        return simple_spread_v3.parallel_env(
            N=cfg.n_agents,
            local_ratio=cfg.local_ratio,
            max_cycles=cfg.max_cycles,
            continuous_actions=True,
            render_mode="rgb_array",
        )

    env = PettingZooBatchedEnv(
        factory, num_envs, cfg=cfg, device=device, name=name, task_info=_SpreadInfo(), state=SpreadState()
    )
    env.scripted_policy = lambda: ScriptedSpread(cfg.n_agents)  # what ``--policy scripted`` plays
    return env


class ScriptedSpread:
    """A hand-written spread player: every agent rebuilds the whole scene from its own observation,
    all agree on the assignment of agents to landmarks with the least total distance (brute force
    over permutations: N <= 6), and each steers to its landmark with a PD law on its velocity.

    Observation of agent i (mpe2 ``simple_spread``): own velocity (2), own position (2), landmarks
    relative to it (2N), the other agents relative to it in index order (2(N-1)), their
    communication (2(N-1), always zero).
    """

    def __init__(self, n_agents: int, gain: float = 3.0, damping: float = 1.0) -> None:
        if not 1 <= n_agents <= 6:
            raise ValueError(f"ScriptedSpread assigns by brute force: 1 <= n_agents <= 6, got {n_agents}")
        import itertools

        self.n, self.gain, self.damping = n_agents, gain, damping
        self.perms = torch.tensor(list(itertools.permutations(range(n_agents))))  # [P, N]: agent -> landmark

    def __call__(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        o = obs["privileged"].float()
        W, N = o.shape[:2]
        vel, pos = o[..., 0:2], o[..., 2:4]
        marks = pos.unsqueeze(2) + o[..., 4 : 4 + 2 * N].reshape(W, N, N, 2)  # [W, i, landmark, 2]
        others = pos.unsqueeze(2) + o[..., 4 + 2 * N : 4 + 2 * N + 2 * (N - 1)].reshape(W, N, N - 1, 2)
        # Each agent's view of every agent's position, itself inserted at its own index.
        agents = torch.stack(
            [torch.cat((others[:, i, :i], pos[:, i : i + 1], others[:, i, i:]), 1) for i in range(N)], 1
        )
        dist = torch.linalg.norm(agents.unsqueeze(3) - marks.unsqueeze(2), dim=-1)  # [W, i, agent, landmark]
        cost = dist[..., torch.arange(N), self.perms].sum(-1)  # [W, i, P]
        best = self.perms[cost.argmin(-1)]  # [W, i, N]
        mine = best.gather(2, torch.arange(N).view(1, N, 1).expand(W, N, 1)).squeeze(2)  # [W, i]
        target = marks.gather(2, mine.view(W, N, 1, 1).expand(W, N, 1, 2)).squeeze(2)
        force = (self.gain * (target - pos) - self.damping * vel).clamp(-1, 1)
        # mpe2 moves by (p2 - p1, p4 - p3) of its Box(0, 1) action; contract actions map p = (a + 1) / 2.
        p = torch.zeros(W, N, 5)
        p[..., 2], p[..., 1] = force[..., 0].clamp(min=0), (-force[..., 0]).clamp(min=0)
        p[..., 4], p[..., 3] = force[..., 1].clamp(min=0), (-force[..., 1]).clamp(min=0)
        return (2 * p - 1).to(obs["privileged"].device)
