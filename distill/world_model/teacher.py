"""The world model's transformer, and the teacher: flow matching over every agent's latent video.

Inputs are latent clips ``[B, F, A, C, h, w]`` (F latent frames of A agents, from
``tokenizer.Tokenizer``), cut into ``p x p`` patches: each agent-frame is ``N = (h/p)*(w/p)``
tokens. ``actions[:, t]`` ``[B, F, A, act_dim]`` is the action each agent took *into* frame ``t``
(the one applied after frame ``t-1``), so conditioning frame ``t`` on it never looks ahead.

``WorldTransformer`` is shared by the teacher and the student: DiT-style blocks (adaLN-Zero
modulation by flow time and, for agent tokens, by that agent's action), 4-D rotary positions
(``positions``), hub or dense cross-agent attention (``attention``). It runs a whole clip with an
optional block-causal ``TimeMask`` (``forward``) or one block through a ``StreamCache`` (``step``).

The teacher is bidirectional over its clip. Flow matching: ``x_tau = (1 - tau) x0 + tau eps`` with
``tau`` from 0 (data) to 1 (noise); the network predicts the velocity ``eps - x0``; sampling
integrates from ``tau = 1`` to 0 with Euler steps on a shifted schedule (more steps near noise).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from distill.world_model.attention import AttentionConfig, StreamCache, TimeMask, attend_clip
from distill.world_model.positions import PositionConfig, Rotary4D, assign_agents, rotate

Attend = Callable[..., tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class WorldModelConfig:
    """The shape of the world model's transformer (shared by teacher and student)."""

    act_dim: int = 3
    """Size of one agent's action."""
    latent_channels: int = 8
    """C of the tokenizer's latent grid."""
    latent_size: int = 8
    """h = w of the tokenizer's latent grid."""
    patch: int = 2
    """Latent patch per token: an agent-frame is ``(latent_size/patch)^2`` tokens."""
    dim: int = 128
    """Model width."""
    depth: int = 4
    """Transformer blocks."""
    heads: int = 4
    """Attention heads; ``dim/heads`` must equal the rotary bands' total."""
    mlp_ratio: int = 2
    """MLP hidden width over ``dim``."""
    shift: float = 3.0
    """Timestep shift of training and sampling: ``tau' = s tau / (1 + (s-1) tau)`` (more weight
    near noise, where a frame's layout is decided)."""
    positions: PositionConfig = field(default_factory=PositionConfig)
    """Rotary bands and the agent encoding (simplex or learnt slots)."""
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    """Hub or dense cross-agent attention."""

    def __post_init__(self) -> None:
        for name in ("act_dim", "latent_channels", "latent_size", "patch", "dim", "depth", "heads", "mlp_ratio"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.latent_size % self.patch:
            raise ValueError(f"patch {self.patch} must divide latent_size {self.latent_size}")
        if self.dim % self.heads or self.dim // self.heads != self.positions.head_dim:
            raise ValueError(
                f"dim/heads = {self.dim}/{self.heads} must equal the rotary bands' total {self.positions.head_dim}"
            )
        if self.shift <= 0:
            raise ValueError(f"shift must be > 0, got {self.shift}")

    @property
    def grid(self) -> int:
        """Tokens per side of an agent-frame."""
        return self.latent_size // self.patch

    @property
    def patches(self) -> int:
        """N, tokens per agent-frame."""
        return self.grid**2


def shift_tau(tau: torch.Tensor, shift: float) -> torch.Tensor:
    """The shifted flow time ``s tau / (1 + (s-1) tau)`` (identity at ``s = 1``)."""
    return shift * tau / (1 + (shift - 1) * tau)


def time_embedding(tau: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features ``[..., dim]`` of flow times ``tau`` in [0, 1]."""
    half = dim // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=tau.device) / half)
    ang = 1000.0 * tau[..., None].float() * freq
    return torch.cat((torch.cos(ang), torch.sin(ang)), -1)


class WorldBlock(nn.Module):
    """Pre-norm block with adaLN-Zero modulation: attention (via a given ``attend``), then an MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))
        self.ada = nn.Linear(dim, 6 * dim)
        nn.init.zeros_(self.ada.weight)  # every block starts as the identity (DiT's adaLN-Zero)
        nn.init.zeros_(self.ada.bias)

    def _heads(
        self, y: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Projected ``y`` ``[..., L, 3D]`` -> rotated q, k and v ``[..., H, L, d]``."""
        qkv = y.unflatten(-1, (3, self.heads, self.head_dim)).movedim(-3, 0).transpose(-3, -2)
        q, k, v = qkv.unbind(0)
        return rotate(q, *rope), rotate(k, *rope), v

    @staticmethod
    def _joint(fn: nn.Module, ya: torch.Tensor, yh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A token-wise ``fn`` on agent tokens ``[B, A, La, D]`` and hub tokens ``[B, Lh, D]`` in one
        call (on a CPU a small model's passes cost more in calls than in arithmetic)."""
        if yh.shape[1] == 0:
            return fn(ya), yh
        B, A, La = ya.shape[:3]
        z = fn(torch.cat((ya.reshape(B, A * La, -1), yh), 1))
        return z[:, : A * La].unflatten(1, (A, La)), z[:, A * La :]

    @staticmethod
    def _mod(x: torch.Tensor, frames: int, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """Modulate tokens ``[..., F*n, D]`` by per-frame ``[..., F, D]`` shift and scale."""
        if x.shape[-2] == 0:
            return x
        y = x.unflatten(-2, (frames, -1)) * (1 + scale.unsqueeze(-2)) + shift.unsqueeze(-2)
        return y.flatten(-3, -2)

    @staticmethod
    def _gate(x: torch.Tensor, frames: int, gate: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] == 0:
            return x
        return x + (y.unflatten(-2, (frames, -1)) * gate.unsqueeze(-2)).flatten(-3, -2)

    def forward(
        self,
        xa: torch.Tensor,
        xh: torch.Tensor,
        ca: torch.Tensor,
        ch: torch.Tensor,
        rope_a: tuple[torch.Tensor, torch.Tensor],
        rope_h: tuple[torch.Tensor, torch.Tensor],
        attend: Attend,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Agent tokens ``xa`` ``[B, A, F*N, D]``, hubs ``xh`` ``[B, F*K, D]`` (K may be 0),
        conditions ``ca`` ``[B, A, F, D]`` and ``ch`` ``[B, F, D]``, rotary (cos, sin) of agent
        tokens ``[B, A, 1, F*N, d/2]`` and of hubs ``[F*K, d/2]``."""
        nf = ca.shape[2]
        ma = self.ada(F.silu(ca)).chunk(6, -1)
        mh = self.ada(F.silu(ch)).chunk(6, -1)
        na, nh = self._joint(self.norm1, xa, xh)
        qkv_a, qkv_h = self._joint(self.qkv, self._mod(na, nf, ma[0], ma[1]), self._mod(nh, nf, mh[0], mh[1]))
        qa, ka, va = self._heads(qkv_a, rope_a)
        if xh.shape[1]:
            qh, kh, vh = self._heads(qkv_h, rope_h)
        else:
            qh = kh = vh = xa.new_zeros(xa.shape[0], self.heads, 0, self.head_dim)
        oa, oh = attend(qa, ka, va, qh, kh, vh)
        pa, ph = self._joint(self.proj, oa.transpose(-3, -2).flatten(-2), oh.transpose(-3, -2).flatten(-2))
        xa, xh = self._gate(xa, nf, ma[2], pa), self._gate(xh, nf, mh[2], ph)
        na, nh = self._joint(self.norm2, xa, xh)
        pa, ph = self._joint(self.mlp, self._mod(na, nf, ma[3], ma[4]), self._mod(nh, nf, mh[3], mh[4]))
        return self._gate(xa, nf, ma[5], pa), self._gate(xh, nf, mh[5], ph)


class WorldTransformer(nn.Module):
    """Velocity of every agent's latent frames given flow times, actions and agent identities."""

    def __init__(self, cfg: WorldModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        D, tok = cfg.dim, cfg.latent_channels * cfg.patch**2
        self.patch_in = nn.Linear(tok, D)
        self.tau_mlp = nn.Sequential(nn.Linear(D, D), nn.SiLU(), nn.Linear(D, D))
        self.act_mlp = nn.Sequential(nn.Linear(cfg.act_dim, D), nn.SiLU(), nn.Linear(D, D))
        K = cfg.attention.hub_tokens
        self.hub = nn.Parameter(torch.randn(K, D) * 0.02)
        self.rope = Rotary4D(cfg.positions, D)
        self.blocks = nn.ModuleList(WorldBlock(D, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(D, elementwise_affine=False)
        self.out_ada = nn.Linear(D, 2 * D)
        self.out = nn.Linear(D, tok)
        for lin in (self.out_ada, self.out):  # the untrained model predicts zero velocity
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def _patchify(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, F, A, C, h, w]`` -> ``[B, A, F*N, C*p*p]`` (frame-major, row-major patches)."""
        B, nf, A, C, h, w = x.shape
        p, g = self.cfg.patch, self.cfg.grid
        x = x.permute(0, 2, 1, 3, 4, 5).reshape(B, A, nf, C, g, p, g, p)
        return x.permute(0, 1, 2, 4, 6, 3, 5, 7).reshape(B, A, nf * g * g, C * p * p)

    def _unpatchify(self, t: torch.Tensor, nf: int) -> torch.Tensor:
        B, A = t.shape[:2]
        p, g, C = self.cfg.patch, self.cfg.grid, self.cfg.latent_channels
        x = t.view(B, A, nf, g, g, C, p, p).permute(0, 1, 2, 5, 3, 6, 4, 7).reshape(B, A, nf, C, g * p, g * p)
        return x.transpose(1, 2)

    def _run(
        self,
        x: torch.Tensor,
        tau: torch.Tensor,
        actions: torch.Tensor,
        agent_ids: torch.Tensor,
        frames: torch.Tensor,
        attends: list[Attend],
    ) -> torch.Tensor:
        B, nf, A = x.shape[:3]
        if actions.shape != (B, nf, A, self.cfg.act_dim):
            raise ValueError(f"actions {tuple(actions.shape)}, expected {(B, nf, A, self.cfg.act_dim)}")
        ct = self.tau_mlp(time_embedding(tau, self.cfg.dim))  # [B, F, D]
        ca = ct[:, None] + self.act_mlp(actions).transpose(1, 2)  # [B, A, F, D]
        xa = self.patch_in(self._patchify(x))
        slot = self.rope.slot_embedding(agent_ids)
        if slot is not None:
            xa = xa + slot[:, :, None]
        K = self.hub.shape[0]
        xh = self.hub.expand(B, nf, K, self.cfg.dim).reshape(B, nf * K, self.cfg.dim)
        # Every layer rotates by the same angles: their cos and sin once per pass.
        ang_a = self.rope.agent_angles(frames, agent_ids, (self.cfg.grid, self.cfg.grid))[:, :, None]
        ang_h = self.rope.hub_angles(frames, K)
        rope_a, rope_h = (torch.cos(ang_a), torch.sin(ang_a)), (torch.cos(ang_h), torch.sin(ang_h))
        for block, attend in zip(self.blocks, attends, strict=True):
            xa, xh = block(xa, xh, ca, ct, rope_a, rope_h, attend)
        shift, scale = self.out_ada(F.silu(ca)).chunk(2, -1)
        y = self.norm(xa).unflatten(-2, (nf, -1)) * (1 + scale.unsqueeze(-2)) + shift.unsqueeze(-2)
        return self._unpatchify(self.out(y.flatten(-3, -2)), nf)

    def forward(
        self,
        x: torch.Tensor,
        tau: torch.Tensor,
        actions: torch.Tensor,
        agent_ids: torch.Tensor,
        frames: torch.Tensor | None = None,
        time: TimeMask | None = None,
    ) -> torch.Tensor:
        """Velocity ``[B, F, A, C, h, w]`` of noisy latents ``x`` (same shape) at per-frame flow
        times ``tau`` ``[B, F]``, with ``actions`` ``[B, F, A, act_dim]``, agent pool indices
        ``agent_ids`` ``[B, A]``, absolute frame indices ``frames`` ``[F]`` (default ``0..F-1``) and
        a block-causal ``time`` mask (None: bidirectional)."""
        if frames is None:
            frames = torch.arange(x.shape[1], device=x.device)
        attend = lambda *qkv: attend_clip(self.cfg.attention, *qkv, frames, self.cfg.patches, time)  # noqa: E731
        return self._run(x, tau, actions, agent_ids, frames, [attend] * self.cfg.depth)

    def step(
        self,
        x: torch.Tensor,
        tau: torch.Tensor,
        actions: torch.Tensor,
        agent_ids: torch.Tensor,
        frames: torch.Tensor,
        cache: StreamCache,
    ) -> torch.Tensor:
        """``forward`` for one block at absolute ``frames`` attending through ``cache`` (which
        receives the block's keys/values; call ``cache.advance`` after the block's clean pass)."""
        attends = [lambda *qkv, i=i: cache.attend(i, *qkv) for i in range(self.cfg.depth)]
        return self._run(x, tau, actions, agent_ids, frames, attends)


def flow_targets(
    x0: torch.Tensor, tau: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy latents and velocity targets for clean ``x0`` ``[B, F, A, ...]`` at per-frame ``tau`` ``[B, F]``."""
    eps = torch.randn(x0.shape, generator=generator, device=x0.device)
    t = tau.view(*tau.shape, *([1] * (x0.dim() - 2)))
    return (1 - t) * x0 + t * eps, eps - x0


def sample_tau(shape: tuple[int, ...], shift: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Training flow times: uniform, then shifted as the sampler's schedule is."""
    return shift_tau(torch.rand(shape, generator=generator), shift)


class Teacher(nn.Module):
    """The bidirectional flow-matching world model: the first ``context`` frames are given clean,
    every later frame of every agent is generated jointly over the whole clip."""

    def __init__(self, cfg: WorldModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.net = WorldTransformer(cfg)

    def loss(
        self, latents: torch.Tensor, actions: torch.Tensor, context: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Flow-matching loss on clips ``[B, T, A, C, h, w]`` with ``actions`` ``[B, T, A, act_dim]``:
        one flow time per clip, the first ``context`` frames clean and not scored; agents drawn
        from the simplex pool in random order (how the model learns every vertex)."""
        B, T, A = latents.shape[:3]
        tau = sample_tau((B, 1), self.cfg.shift, generator).to(latents.device).expand(B, T).clone()
        tau[:, :context] = 0.0
        xt, target = flow_targets(latents, tau, generator)
        ids = assign_agents(B, A, self.cfg.positions.pool, generator, shuffle=True).to(latents.device)
        v = self.net(xt, tau, actions, ids)
        return F.mse_loss(v[:, context:], target[:, context:])

    @torch.no_grad()
    def sample(
        self,
        context: torch.Tensor,
        actions: torch.Tensor,
        steps: int = 32,
        generator: torch.Generator | None = None,
        agent_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Generate a clip ``[B, T, A, C, h, w]`` from clean ``context`` latents ``[B, Tc, A, C, h, w]``
        and every frame's ``actions`` ``[B, T, A, act_dim]`` with ``steps`` Euler steps over the
        full clip (its first ``Tc`` frames are the context)."""
        B, Tc, A = context.shape[:3]
        T = actions.shape[1]
        if agent_ids is None:
            agent_ids = assign_agents(B, A, self.cfg.positions.pool).to(context.device)
        x = torch.randn((B, T - Tc, *context.shape[2:]), generator=generator).to(context)
        taus = shift_tau(torch.linspace(1.0, 0.0, steps + 1), self.cfg.shift).tolist()
        for t0, t1 in zip(taus[:-1], taus[1:], strict=True):
            tau = torch.zeros(B, T, device=context.device)
            tau[:, Tc:] = t0
            v = self.net(torch.cat((context, x), 1), tau, actions, agent_ids)[:, Tc:]
            x = x + (t1 - t0) * v
        return torch.cat((context, x), 1)
