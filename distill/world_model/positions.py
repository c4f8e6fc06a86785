"""Where a token sits: a 4-D rotary encoding over (time, agent, height, width).

Every attention head's channels are split into four bands of rotary pairs. The time, height and
width bands rotate by position x frequency, as in ordinary RoPE, so attention scores depend only
on differences of positions (a cache written at absolute frame indices never needs re-rotating).

The agent band is the **Simplex Rotary Agent Encoding** of gamma-World: agent ``p`` gets the
vertex ``s_pi(p)`` of a centred regular simplex (unit vectors with ``s_m . s_m' = -1/(M-1)``)
drawn from a pool of ``M`` vertices, and the band's pairs are rotated by ``theta = alpha * s``
(one component per pair). Every two distinct vertices are equally far apart, so no agent is
privileged and nothing is learnt per slot. Training draws a random subset of the pool for every
sample, in random order, so that a model trained on 2 agents has seen every vertex and can
address up to ``M`` agents at test time. A band of ``d_p`` channels holds ``d_p/2 + 1`` vertices
(a simplex of ``M`` vertices spans ``M - 1`` dimensions).

The baseline (``kind="slot"``) adds a learnt embedding per slot to the agent tokens instead and
leaves the agent band unrotated.

Hub tokens (see ``attention``) carry only the time rotation: they belong to a frame, not to an
agent or a place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn


@dataclass(frozen=True)
class PositionConfig:
    """How tokens are told apart: rotary bands and the agent encoding."""

    kind: Literal["simplex", "slot"] = "simplex"
    """``simplex``: agent identity as a rotation by a simplex vertex; ``slot``: a learnt
    embedding per slot added to the tokens (the baseline)."""
    pool: int = 4
    """M, the number of simplex vertices (or learnt slots): the most agents the model can address."""
    alpha: float = 1.5
    """Scale of the agent band's angles: two vertices' phases differ by up to ``2 alpha`` radians
    per pair; large enough to tell agents apart, small enough not to wrap around."""
    bands: tuple[int, int, int, int] = (8, 8, 8, 8)
    """Channels of each head given to time, agent, height and width (each even; they sum to the
    head size)."""
    base: float = 100.0
    """RoPE frequency base of the time and space bands (positions here are small: tens of frames,
    a few patches)."""

    def __post_init__(self) -> None:
        if self.kind not in ("simplex", "slot"):
            raise ValueError(f"kind must be 'simplex' or 'slot', got {self.kind!r}")
        if self.pool < 2:
            raise ValueError(f"pool must hold at least 2 agents, got {self.pool}")
        if len(self.bands) != 4 or any(b < 0 or b % 2 for b in self.bands):
            raise ValueError(f"bands must be 4 even channel counts (time, agent, h, w), got {self.bands}")
        if self.kind == "simplex" and self.bands[1] // 2 < self.pool - 1:
            raise ValueError(
                f"an agent band of {self.bands[1]} channels holds at most {self.bands[1] // 2 + 1} simplex "
                f"vertices, pool is {self.pool}"
            )

    @property
    def head_dim(self) -> int:
        return sum(self.bands)


def simplex_vertices(m: int) -> torch.Tensor:
    """The ``m`` unit vertices ``[m, m-1]`` of a regular simplex centred at the origin:
    ``|s_i| = 1`` and ``s_i . s_j = -1/(m-1)`` for ``i != j``."""
    if m < 2:
        raise ValueError(f"a simplex needs at least 2 vertices, got {m}")
    centred = torch.eye(m, dtype=torch.float64) - 1.0 / m  # e_i - mean: in the sum-zero hyperplane
    # Coordinates in an orthonormal basis of that (m-1)-dim hyperplane: the top right-singular vectors.
    _, _, vh = torch.linalg.svd(centred)
    coords = centred @ vh[: m - 1].T
    return (coords / coords.norm(dim=1, keepdim=True)).float()


def assign_agents(
    batch: int, agents: int, pool: int, generator: torch.Generator | None = None, shuffle: bool = False
) -> torch.Tensor:
    """Pool indices ``[batch, agents]`` of each sample's agents: ``0..agents-1`` in order, or
    with ``shuffle`` (training) a random subset of the pool in random order per sample."""
    if agents > pool:
        raise ValueError(
            f"{agents} agents but the agent encoding's pool holds at most {pool} (PositionConfig.pool={pool})"
        )
    if not shuffle:
        return torch.arange(agents).expand(batch, agents).clone()
    keys = torch.rand(batch, pool, generator=generator)
    return keys.argsort(dim=1)[:, :agents]  # a uniformly random ordered subset per row


def _freqs(pairs: int, base: float) -> torch.Tensor:
    return base ** (-torch.arange(pairs, dtype=torch.float32) / max(pairs, 1))


class Rotary4D(nn.Module):
    """Rotary angles of agent and hub tokens, and the rotation itself.

    Agent tokens of a clip are laid out per agent stream, frame-major: ``[frames, h, w]``;
    hub tokens per frame: ``[frames, hubs]``.
    """

    def __init__(self, cfg: PositionConfig, dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        bt, bp, bh, bw = (b // 2 for b in cfg.bands)
        self.register_buffer("f_t", _freqs(bt, cfg.base), persistent=False)
        self.register_buffer("f_h", _freqs(bh, cfg.base), persistent=False)
        self.register_buffer("f_w", _freqs(bw, cfg.base), persistent=False)
        vert = torch.zeros(cfg.pool, bp)
        if cfg.kind == "simplex":
            vert[:, : cfg.pool - 1] = simplex_vertices(cfg.pool)  # unused pairs of the band stay unrotated
        self.register_buffer("vertices", vert, persistent=False)
        # The baseline's identity: a learnt vector per slot (zero-initialised: starts agent-blind).
        self.slot = nn.Embedding(cfg.pool, dim) if cfg.kind == "slot" else None
        if self.slot is not None:
            nn.init.zeros_(self.slot.weight)

    def check(self, agent_ids: torch.Tensor) -> None:
        """Refuse more agents than the pool holds, or ids outside it."""
        a = agent_ids.shape[-1]
        if a > self.cfg.pool:
            raise ValueError(
                f"{a} agents but the agent encoding's pool holds at most {self.cfg.pool} "
                f"(PositionConfig.pool={self.cfg.pool})"
            )
        if agent_ids.numel() and (int(agent_ids.min()) < 0 or int(agent_ids.max()) >= self.cfg.pool):
            raise ValueError(f"agent ids must be in [0, {self.cfg.pool}), got {agent_ids.tolist()}")

    def agent_angles(self, frames: torch.Tensor, agent_ids: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Angles ``[B, A, F*h*w, head_dim/2]`` of agent tokens at absolute frame indices
        ``frames`` ``[F]`` for agents ``agent_ids`` ``[B, A]`` (pool indices)."""
        self.check(agent_ids)
        h, w = grid
        dev = self.f_t.device
        t = frames.to(dev).float()[:, None, None].expand(-1, h, w).reshape(-1)  # [L]
        y = torch.arange(h, device=dev).float()[None, :, None].expand(len(frames), h, w).reshape(-1)
        x = torch.arange(w, device=dev).float()[None, None, :].expand(len(frames), h, w).reshape(-1)
        space = torch.cat((t[:, None] * self.f_t, y[:, None] * self.f_h, x[:, None] * self.f_w), -1)  # [L, bt+bh+bw]
        agent = self.cfg.alpha * self.vertices[agent_ids.to(dev)]  # [B, A, bp]
        B, A = agent_ids.shape
        L = space.shape[0]
        bt = self.f_t.numel()
        return torch.cat(
            (
                space[None, None, :, :bt].expand(B, A, L, -1),
                agent[:, :, None, :].expand(B, A, L, -1),
                space[None, None, :, bt:].expand(B, A, L, -1),
            ),
            -1,
        )

    def hub_angles(self, frames: torch.Tensor, hubs: int) -> torch.Tensor:
        """Angles ``[F*hubs, head_dim/2]`` of hub tokens: the time band only."""
        t = frames.to(self.f_t.device).float().repeat_interleave(hubs)
        ang = torch.zeros(t.numel(), self.cfg.head_dim // 2, device=self.f_t.device)
        ang[:, : self.f_t.numel()] = t[:, None] * self.f_t
        return ang

    def slot_embedding(self, agent_ids: torch.Tensor) -> torch.Tensor | None:
        """The baseline's learnt identity ``[B, A, dim]`` (None for the simplex)."""
        if self.slot is None:
            return None
        self.check(agent_ids)
        return self.slot(agent_ids.to(self.slot.weight.device))


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs of ``x`` ``[..., L, head_dim]`` by angles given as their ``cos`` and
    ``sin``, broadcastable to ``[..., L, head_dim/2]`` (pairs are adjacent channels, as in
    ``distill.kv_cache.rotary``)."""
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), -1).flatten(-2)
