"""How agents see each other: Sparse Hub Attention, and the dense cross-agent baseline.

Tokens of a clip: each agent's stream ``[B, A, heads, L, head_dim]`` (its latent patches,
frame-major: ``L = frames * N`` with ``N`` patches per frame) and, for hub attention, the hub
tokens ``[B, heads, Lh, head_dim]`` (``Lh = frames * K``, K learnable hubs per latent frame).

- **hub**: an agent token attends to its own stream and to the hubs; a hub attends to every
  agent's tokens and to the hubs. Agents never attend to each other directly: whatever one agent
  learns of another has passed through a hub. The two attentions are computed separately (agent
  queries as ``B*A`` independent rows over ``L + Lh`` keys, hub queries over ``A*L + Lh`` keys), so
  the cost is ``A*L*(L + Lh) + Lh*(A*L + Lh)``: linear in agents. A dense attention with a mask
  would give the same numbers but pay for every masked pair.
- **dense**: every agent token attends to every agent's tokens, ``(A*L)^2``; no hubs.

Time structure is a boolean mask over frame indices: bidirectional (the teacher) or block-causal
with a rolling window and sink frames (the student); ``block_causal_mask`` is the one definition,
and ``StreamCache`` reproduces it step by step from ``distill.kv_cache.KVCache`` rings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch.nn import functional as F

from distill.kv_cache import KVCache


@dataclass(frozen=True)
class AttentionConfig:
    """Which cross-agent attention, and its hubs."""

    kind: Literal["hub", "dense"] = "hub"
    """``hub``: Sparse Hub Attention (linear in agents); ``dense``: full cross-agent attention."""
    hubs: int = 4
    """K, learnable hub tokens per latent frame (hub attention only; 0 isolates the agents)."""

    def __post_init__(self) -> None:
        if self.kind not in ("hub", "dense"):
            raise ValueError(f"kind must be 'hub' or 'dense', got {self.kind!r}")
        if self.hubs < 0:
            raise ValueError(f"hubs must be >= 0, got {self.hubs}")

    @property
    def hub_tokens(self) -> int:
        """Hub tokens per frame actually used (dense attention has none)."""
        return self.hubs if self.kind == "hub" else 0


@dataclass(frozen=True)
class TimeMask:
    """Block-causal structure over latent frames: a query frame sees the frames of its own block
    and earlier ones, at most ``window`` frames in all counting ``sink`` first frames kept forever.
    ``window=None`` is plain block-causal (no eviction)."""

    block: int
    """Latent frames per block (generated together)."""
    window: int | None = None
    """Frames a block may see, its own and the sinks included (None: all earlier frames)."""
    sink: int = 0
    """First frames of the stream that never leave the window."""

    def __post_init__(self) -> None:
        if self.block < 1:
            raise ValueError(f"block must be >= 1 frame, got {self.block}")
        if self.sink < 0:
            raise ValueError(f"sink must be >= 0 frames, got {self.sink}")
        if self.window is not None and self.window - self.sink < self.block:
            raise ValueError(f"window {self.window} minus sink {self.sink} must hold a block of {self.block}")


def block_causal_mask(q_frames: torch.Tensor, k_frames: torch.Tensor, time: TimeMask | None) -> torch.Tensor | None:
    """``[Lq, Lk]`` bool (True: may attend) from absolute frame indices of queries ``[Lq]`` and
    keys ``[Lk]``; None (everything visible) when ``time`` is None (bidirectional)."""
    if time is None:
        return None
    qb, kb = q_frames // time.block, k_frames // time.block
    mask = kb[None, :] <= qb[:, None]
    if time.window is not None:
        last = (qb + 1) * time.block - 1  # the last frame of the query's block
        ring = time.window - time.sink  # the KV ring holds this many non-sink frames, the block included
        recent = k_frames[None, :] > (last[:, None] - ring)
        mask &= recent | (k_frames[None, :] < time.sink)
    return mask


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def hub_attend(
    qa: torch.Tensor,
    ka: torch.Tensor,
    va: torch.Tensor,
    qh: torch.Tensor,
    kh: torch.Tensor,
    vh: torch.Tensor,
    m_aa: torch.Tensor | None = None,
    m_ah: torch.Tensor | None = None,
    m_ha: torch.Tensor | None = None,
    m_hh: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparse Hub Attention, split so its cost is linear in agents.

    Queries ``qa`` ``[B, A, H, La, d]`` and hub queries ``qh`` ``[B, H, Lh, d]``; keys/values
    ``ka, va`` ``[B, A, H, Sa, d]`` (each agent's own stream) and ``kh, vh`` ``[B, H, Sh, d]``.
    Masks (True: may attend; None: all), broadcastable to: ``m_aa`` ``[B, A, La, Sa]`` (own stream),
    ``m_ah`` ``[B, La, Sh]`` (agent -> hubs), ``m_ha`` ``[B, Lh, A*Sa]`` (hubs -> agents, agent-major),
    ``m_hh`` ``[B, Lh, Sh]``. Returns ``(oa [B, A, H, La, d], oh [B, H, Lh, d])``.
    """
    B, A, H, La, d = qa.shape
    Sa, Sh, Lh = ka.shape[3], kh.shape[2], qh.shape[2]
    dev = qa.device

    def full(mask: torch.Tensor | None, *shape: int) -> torch.Tensor:
        return torch.ones(shape, dtype=torch.bool, device=dev) if mask is None else mask.expand(*shape)

    # Agent queries: B*A independent rows, each over its own stream then the hubs.
    q = qa.reshape(B * A, H, La, d)
    k, v = ka.reshape(B * A, H, Sa, d), va.reshape(B * A, H, Sa, d)
    mask = None if m_aa is None else m_aa.expand(B, A, La, Sa).reshape(B * A, 1, La, Sa)
    if Sh:
        k = torch.cat((k, kh[:, None].expand(B, A, H, Sh, d).reshape(B * A, H, Sh, d)), 2)
        v = torch.cat((v, vh[:, None].expand(B, A, H, Sh, d).reshape(B * A, H, Sh, d)), 2)
        if m_aa is not None or m_ah is not None:
            own = full(m_aa, B, A, La, Sa)
            hub = full(m_ah, B, La, Sh)[:, None].expand(B, A, La, Sh)
            mask = torch.cat((own, hub), -1).reshape(B * A, 1, La, Sa + Sh)
    oa = _sdpa(q, k, v, mask).view(B, A, H, La, d)
    if not Lh:
        return oa, qh
    # Hub queries: over every agent's stream (agent-major) then the hubs.
    k = torch.cat((ka.transpose(1, 2).reshape(B, H, A * Sa, d), kh), 2)
    v = torch.cat((va.transpose(1, 2).reshape(B, H, A * Sa, d), vh), 2)
    mask = None
    if m_ha is not None or m_hh is not None:
        mask = torch.cat((full(m_ha, B, Lh, A * Sa), full(m_hh, B, Lh, Sh)), -1)[:, None]
    return oa, _sdpa(qh, k, v, mask)


def dense_attend(
    qa: torch.Tensor, ka: torch.Tensor, va: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Dense cross-agent attention: queries ``[B, A, H, La, d]`` over every agent's keys
    ``[B, A, H, Sa, d]`` (agent-major), ``mask`` broadcastable to ``[B, A*La, A*Sa]``.
    Returns ``[B, A, H, La, d]``."""
    B, A, H, La, d = qa.shape
    Sa = ka.shape[3]
    q = qa.transpose(1, 2).reshape(B, H, A * La, d)
    k, v = (t.transpose(1, 2).reshape(B, H, A * Sa, d) for t in (ka, va))
    out = _sdpa(q, k, v, None if mask is None else mask.expand(B, A * La, A * Sa)[:, None])
    return out.view(B, H, A, La, d).transpose(1, 2)


def attend_clip(
    cfg: AttentionConfig,
    qa: torch.Tensor,
    ka: torch.Tensor,
    va: torch.Tensor,
    qh: torch.Tensor,
    kh: torch.Tensor,
    vh: torch.Tensor,
    frames: torch.Tensor,
    patches: int,
    time: TimeMask | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention over a whole clip at once (training, the teacher, the recompute baseline).
    Shapes as ``hub_attend``; ``frames`` ``[F]`` absolute frame indices, ``patches`` = N tokens
    per agent-frame. Dense returns the hub tensors unchanged (they are empty)."""
    fa = frames.repeat_interleave(patches)
    m = block_causal_mask(fa, fa, time)
    if cfg.kind == "dense":
        A = qa.shape[1]
        return dense_attend(qa, ka, va, None if m is None else m.repeat(A, A)), qh
    fh = frames.repeat_interleave(cfg.hubs)
    m_ah, m_ha, m_hh = block_causal_mask(fa, fh, time), block_causal_mask(fh, fa, time), block_causal_mask(fh, fh, time)
    if m_ha is not None:
        m_ha = m_ha.repeat(1, qa.shape[1])
    return hub_attend(qa, ka, va, qh, kh, vh, m, m_ah, m_ha, m_hh)


def _hubs_over_rows(qh: torch.Tensor, kr: torch.Tensor, vr: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Hub queries ``[B, H, Lh, d]`` over every agent's cached row ``kr, vr`` ``[B, A, H, S, d]``
    where ``allowed`` ``[B, A, S]``, one softmax over all rows. Broadcasting matmuls read the rows
    in place (no copy of the cache: the queries are few, the rows long)."""
    scale = qh.shape[-1] ** -0.5
    scores = (qh[:, None] * scale) @ kr.transpose(-1, -2)  # [B, A, H, Lh, S]
    scores = scores.masked_fill(~allowed[:, :, None, None, :], float("-inf"))
    B, A, H, Lh, S = scores.shape
    w = scores.permute(0, 2, 3, 1, 4).reshape(B, H, Lh, A * S).softmax(-1)
    w = w.view(B, H, Lh, A, S).permute(0, 3, 1, 2, 4)
    return (w @ vr).sum(1)


class StreamCache:
    """The keys and values of a block-causal world model's past, in ``KVCache`` rings.

    Hub attention keeps one ring row per agent holding, frame after frame, that agent's ``N``
    patch tokens and the frame's ``K`` hub tokens (the hubs repeated in every row): an agent's
    queries then attend to exactly one row, read in place, and the hubs' queries to every row's
    patches plus one row's hubs. Dense attention keeps one joint row per world (``[A, N]`` per
    frame, frame-major so that whole frames leave the ring together). Keys are stored rotated at
    absolute frame indices, so eviction never re-rotates anything and relative positions stay right.

    Use per block: ``attend(layer, ...)`` in every layer (it writes the block's keys/values into
    the ring slots after the newest, then attends), as often as needed (each denoising step
    overwrites the same slots), then ``advance(frames)`` once, after the clean pass.
    """

    def __init__(
        self,
        cfg: AttentionConfig,
        time: TimeMask,
        batch: int,
        agents: int,
        layers: int,
        heads: int,
        head_dim: int,
        patches: int,
        max_frames: int,
        device: torch.device | str = "cpu",
    ) -> None:
        self.cfg, self.agents, self.patches = cfg, agents, patches
        window = time.window if time.window is not None else max_frames
        sink = time.sink if time.window is not None else 0
        rows, n = (batch, agents * patches) if cfg.kind == "dense" else (batch * agents, patches + cfg.hubs)
        self.per_frame = n  # tokens a frame adds to a row
        self.cache = KVCache(rows, layers, heads, head_dim, window * n, device, sink=sink * n)
        # Which ring slots hold hub tokens: writes are whole frames and the sink and the ring are
        # whole frames too, so a slot's kind never changes.
        self.hub_slot = torch.arange(window * n, device=device) % n >= patches

    def attend(
        self,
        layer: int,
        qa: torch.Tensor,
        ka: torch.Tensor,
        va: torch.Tensor,
        qh: torch.Tensor,
        kh: torch.Tensor,
        vh: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Attend a block's queries (shapes as ``hub_attend``, ``La = F*N``, ``Lh = F*K``) to the
        cache plus the block itself (every token of the block sees the whole block)."""
        B, A, H, La, d = qa.shape
        F_, N, K = La // self.patches, self.patches, self.cfg.hub_tokens
        if self.cfg.kind == "dense":

            def frame_major(t: torch.Tensor) -> torch.Tensor:
                return t.view(B, A, H, F_, N, d).permute(0, 2, 3, 1, 4, 5).reshape(B, H, -1, d)

            keys, values, mask = self.cache.write(layer, frame_major(ka), frame_major(va), causal=False)
            q = qa.transpose(1, 2).reshape(B, H, A * La, d)
            out = _sdpa(q, keys, values, mask[:, :1, None])
            return out.view(B, H, A, La, d).transpose(1, 2), qh

        def rows(ta: torch.Tensor, th: torch.Tensor) -> torch.Tensor:
            """The block's tokens of each agent's row: per frame its N patches, then the K hubs."""
            per = ta.view(B, A, H, F_, N, d)
            if K:
                per = torch.cat((per, th.view(B, 1, H, F_, K, d).expand(B, A, H, F_, K, d)), 4)
            return per.reshape(B * A, H, F_ * (N + K), d)

        keys, values, mask = self.cache.write(layer, rows(ka, kh), rows(va, vh), causal=False)
        valid = mask[:, 0]  # [B*A, S]: rows of one block are alike
        S = keys.shape[2]
        oa = _sdpa(qa.reshape(B * A, H, La, d), keys, values, valid[:, None, None]).view(B, A, H, La, d)
        if not K:
            return oa, qh
        # Hubs see every agent's patches, and the hub tokens once (those of the first row).
        first_row = torch.zeros(A, 1, dtype=torch.bool, device=valid.device)
        first_row[0] = True
        allowed = valid.view(B, A, S) & (~self.hub_slot | first_row)
        return oa, _hubs_over_rows(qh, keys.view(B, A, H, S, d), values.view(B, A, H, S, d), allowed)

    def advance(self, frames: int) -> None:
        """The block of ``frames`` frames just written (clean) becomes part of the past."""
        self.cache.advance(frames * self.per_frame)

    def reset(self) -> None:
        """Forget everything (a new rollout)."""
        self.cache.reset()


def attention_flops(kind: str, agents: int, frames: int, patches: int, hubs: int, dim: int) -> int:
    """Self-attention FLOPs of one layer over a whole clip with full context: the score product
    ``Q K^T`` and the weighted sum ``A V``, 2 FLOPs per multiply-add (projections and MLPs, which
    are linear in tokens for both kinds, are left out). ``dim`` is the model width (heads x head size)."""
    La, Lh = frames * patches, frames * hubs
    if kind == "dense":
        pairs = (agents * La) ** 2
    elif kind == "hub":
        pairs = agents * La * (La + Lh) + Lh * (agents * La + Lh)
    else:
        raise ValueError(f"kind must be 'hub' or 'dense', got {kind!r}")
    return 4 * dim * pairs
