"""Offline multi-agent datasets for CoFlow, read from recordings (``envs/recording.py``).

A ``SegmentDataset`` holds every episode of a recording in padded arrays and samples training
segments of ``H`` steps starting at any step of any episode:

    obs       [B, H, A, obs]   o_s .. o_{s+H-1}; past the episode's end o_T is repeated (the agents
                               stay), so that late steps are planned as often as early ones
    actions   [B, H, A, act]   a_s .. a_{s+H-1}; zeros past the end
    valid     [B, H]           True where a_{s+k} exists (a real transition o_{s+k} -> o_{s+k+1})
    returns   [B, A]           discounted return-to-go from s, scaled: ``(R - return_offset) / return_scale``

With a given scale the offset is 0 (the paper divides by a scale). By default the returns-to-go
are mapped onto [0, 1], the worst in the data to 0 and the best to 1, so that a target return
(``CoFlowConfig.target_return``) reads the same whatever the sign of the env's rewards: MPE's are
negative, and dividing them by a scale would put every return below 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from envs.recording import Recording, RecordingError


@dataclass(frozen=True)
class Batch:
    """One training batch (shapes in the module docstring)."""

    obs: torch.Tensor
    actions: torch.Tensor
    valid: torch.Tensor
    returns: torch.Tensor


def returns_to_go(rewards: np.ndarray, discount: float) -> np.ndarray:
    """``R_t = sum_k discount**k r_{t+k}`` for rewards ``[T, A]``; returns ``[T, A]``."""
    out = np.zeros_like(rewards, dtype=np.float64)
    acc = np.zeros(rewards.shape[1:], dtype=np.float64)
    for t in range(len(rewards) - 1, -1, -1):
        acc = rewards[t] + discount * acc
        out[t] = acc
    return out


class SegmentDataset:
    """Segments of a recording for offline training (see the module docstring).

    Args:
        path: the recording's directory.
        horizon: H.
        discount: of the returns-to-go.
        return_scale: returns-to-go are divided by it; 0: mapped onto [0, 1] (see the module docstring).
        obs_group: the flat observation group read (``[T + 1, A, obs]`` per episode).
        agents: indices of the agents kept (e.g. ``(0, 1)``, soccer's blue team); default all.
        env: when given, the env the recording must come from.
    """

    def __init__(
        self,
        path: str | Path,
        horizon: int,
        discount: float = 0.99,
        return_scale: float = 0.0,
        obs_group: str = "privileged",
        agents: tuple[int, ...] | None = None,
        env: str | None = None,
    ) -> None:
        rec = Recording(path)
        self.path, self.env, self.config = Path(path), rec.env, rec.config
        if env is not None and rec.env != env:
            raise RecordingError(f"recording {path} is of env {rec.env!r}, expected {env!r}")
        if obs_group not in rec.manifest["obs_groups"]:
            raise RecordingError(
                f"recording {path} has no observation group {obs_group!r} (it has {rec.manifest['obs_groups']})"
            )
        if len(rec) == 0:
            raise RecordingError(f"recording {path} holds no episodes")
        if horizon < 2:
            raise ValueError(f"horizon must be >= 2 (a transition), got {horizon}")
        episodes = [rec.episode(i).data for i in range(len(rec))]
        first = episodes[0][f"obs/{obs_group}"]
        if first.ndim != 3:
            raise RecordingError(
                f"recording {path}: group {obs_group!r} has per-step shape {first.shape[1:]}; "
                "CoFlow reads flat per-agent vectors [A, obs]"
            )
        n_agents = first.shape[1]
        self.agent_ids = tuple(range(n_agents)) if agents is None else tuple(agents)
        if not self.agent_ids or any(not 0 <= a < n_agents for a in self.agent_ids):
            raise ValueError(f"agents {agents} out of range: recording {path} has {n_agents} agents")
        ids = list(self.agent_ids)
        self.horizon, self.discount = horizon, discount
        lens = np.array([len(e["actions"]) for e in episodes])
        T_max, E, A = int(lens.max()), len(episodes), len(ids)
        D, act_dim = first.shape[2], episodes[0]["actions"].shape[2]
        self.obs = np.zeros((E, T_max + horizon, A, D), dtype=np.float32)
        self.actions = np.zeros((E, T_max + horizon, A, act_dim), dtype=np.float32)
        rtg = np.zeros((E, T_max, A), dtype=np.float64)
        for e, ep in enumerate(episodes):
            o, a, T = ep[f"obs/{obs_group}"][:, ids], ep["actions"][:, ids], int(lens[e])
            if o.shape[1:] != (A, D) or a.shape[1:] != (A, act_dim):
                raise RecordingError(f"recording {path}: episode {e} has other shapes than episode 0")
            self.obs[e, : T + 1] = o
            self.obs[e, T + 1 :] = o[-1]
            self.actions[e, :T] = a
            rtg[e, :T] = returns_to_go(ep["rewards"][:, ids].astype(np.float64), discount)
        self.ep_len = lens
        real_rtg = np.concatenate([rtg[e, : int(lens[e])].ravel() for e in range(E)])
        if return_scale > 0:
            self.return_offset, self.return_scale = 0.0, float(return_scale)
        else:
            lo, hi = float(real_rtg.min()), float(real_rtg.max())
            self.return_offset, self.return_scale = lo, max(hi - lo, 1e-6)
        self.rtg = ((rtg - self.return_offset) / self.return_scale).astype(np.float32)
        # Every (episode, start) pair with at least one real transition.
        self.index = np.array([(e, s) for e in range(E) for s in range(int(lens[e]))], dtype=np.int64)
        real = np.concatenate([ep[f"obs/{obs_group}"][:, ids].reshape(-1, D) for ep in episodes])
        self.obs_mean = real.mean(0).astype(np.float32)
        self.obs_std = np.maximum(real.std(0), 1e-3).astype(np.float32)  # constant features stay finite
        self.episode_returns = np.array([ep["rewards"][:, ids].sum(0).mean() for ep in episodes])

    def delta_std(self) -> np.ndarray:
        """``[D]``: per feature, the std of ``(o_{s+h} - o_s) / obs_std`` over every real start ``s``
        and ``h`` in ``1 .. H-1`` within its episode (the scale of a residual plan's steps)."""
        D = self.obs_dim
        count, total, total_sq = 0, np.zeros(D), np.zeros(D)
        for e, T in enumerate(self.ep_len):
            o = self.obs[e, : int(T) + 1] / self.obs_std  # [T + 1, A, D]
            for h in range(1, min(self.horizon, int(T) + 1)):
                d = (o[h:] - o[:-h]).reshape(-1, D).astype(np.float64)
                count += len(d)
                total += d.sum(0)
                total_sq += (d**2).sum(0)
        if count == 0:
            return np.ones(D, dtype=np.float32)
        var = total_sq / count - (total / count) ** 2
        return np.maximum(np.sqrt(np.maximum(var, 0.0)), 1e-3).astype(np.float32)

    @property
    def n_agents(self) -> int:
        return self.obs.shape[2]

    @property
    def obs_dim(self) -> int:
        return self.obs.shape[3]

    @property
    def act_dim(self) -> int:
        return self.actions.shape[3]

    @property
    def agent_steps(self) -> int:
        """Agent-steps the dataset holds (transitions times agents)."""
        return int(self.ep_len.sum()) * self.n_agents

    def __len__(self) -> int:
        return len(self.index)

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        """``batch_size`` segments drawn uniformly (with replacement) with ``generator``."""
        pick = torch.randint(len(self.index), (batch_size,), generator=generator).numpy()
        e, s = self.index[pick, 0], self.index[pick, 1]
        steps = s[:, None] + np.arange(self.horizon)[None]  # [B, H]
        rows = e[:, None]
        return Batch(
            obs=torch.from_numpy(self.obs[rows, steps]),
            actions=torch.from_numpy(self.actions[rows, steps]),
            valid=torch.from_numpy(steps < self.ep_len[e][:, None]),
            returns=torch.from_numpy(self.rtg[e, s]),
        )
