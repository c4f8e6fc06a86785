"""A rolling key/value cache and the causal transformer that uses it.

A causal transformer over a stream of frames can run two ways:

- **full recompute**: ``CausalTransformer.forward`` over the whole sequence ``[B, T, E]`` with a
  mask (a query sees the keys of its own episode, at most ``window - 1`` steps back). This is
  what training uses, and what a naive step-by-step policy would recompute at every new frame.
- **cached steps**: ``CausalTransformer.step`` takes one new frame per row and a ``KVCache``; the
  keys and values of past frames are kept, so a frame costs O(window) attention instead of a
  whole forward pass. Its outputs equal the full recompute's (tested).

Positions are rotary (RoPE), applied with each row's absolute step index when a key is written,
so the cache never has to be rewritten when old entries are evicted: attention scores depend
only on the distance between query and key. Rows (e.g. the worlds of a batched env) reset
independently: ``KVCache.reset(rows)`` forgets their past at an episode boundary.

``KVCache`` is model-agnostic (any number of layers, heads and tokens per step) so other causal
models, such as a world model's block-causal student, can reuse it: such a model writes a whole
block at once (``write(..., causal=False)``: every token of the block sees the whole block), may
write the same slots several times before ``advance`` (a noisy block re-denoised in place), and may
keep the first ``sink`` tokens of a stream forever (attention sinks; the ring then rolls over the
slots after them).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class KVCache:
    """Per-layer keys and values of the last ``window`` tokens of each of ``batch`` rows.

    Storage is a ring of ``window`` slots ``[batch, heads, window, head_dim]`` per layer, with a
    validity mask ``[batch, window]``; a write goes to the slot after the newest, overwriting
    (evicting) the oldest once the ring is full. Each row counts its own positions.

    Use: for every new step, ``write(layer, k, v)`` in each layer (it returns the keys, values and
    mask to attend over), then ``advance(tokens)`` once.

    With ``sink > 0`` the first ``sink`` tokens written after a full ``reset()`` go to slots
    ``0..sink-1`` and are never evicted; the ring is slots ``sink..window-1``. The sinks are shared
    by all rows, so a per-row reset is refused then.
    """

    def __init__(
        self,
        batch: int,
        layers: int,
        heads: int,
        head_dim: int,
        window: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        sink: int = 0,
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if not 0 <= sink < window:
            raise ValueError(f"sink must be in [0, window={window}), got {sink}")
        self.sink = sink
        self.written = 0  # tokens advanced since the last full reset (shared by all rows)
        self.batch, self.layers, self.heads, self.head_dim, self.window = batch, layers, heads, head_dim, window
        shape = (batch, heads, window, head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(layers)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(layers)]
        self.valid = torch.zeros(batch, window, dtype=torch.bool, device=device)
        self.pos = torch.zeros(batch, dtype=torch.long, device=device)  # next position of each row
        self.head = 0  # next slot to write (shared by all rows)

    def slots(self, tokens: int) -> torch.Tensor:
        """Ring slots the next ``tokens`` tokens go to."""
        if tokens > self.window - self.sink:
            raise ValueError(f"{tokens} tokens in one step do not fit a window of {self.window} ({self.sink} sink)")
        if self.sink == 0:
            return (self.head + torch.arange(tokens, device=self.valid.device)) % self.window
        n = self.written + torch.arange(tokens, device=self.valid.device)  # stream index of each token
        ring = self.window - self.sink
        return torch.where(n < self.sink, n, self.sink + (n - self.sink) % ring)

    def write(
        self, layer: int, k: torch.Tensor, v: torch.Tensor, causal: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Store ``k``, ``v`` ``[batch, heads, tokens, head_dim]`` of this step in ``layer``;
        returns every cached key and value of the layer and the mask ``[batch, tokens, window]``
        of what each new token may attend to (valid entries, and new tokens up to itself, or all
        new tokens when not ``causal``)."""
        t = k.shape[2]
        idx = self.slots(t)
        self.k[layer][:, :, idx] = k.to(self.k[layer].dtype)
        self.v[layer][:, :, idx] = v.to(self.v[layer].dtype)
        mask = self.valid[:, None, :].expand(-1, t, -1).clone()  # older entries still in the ring
        # The slots just written: token i of this step sees new tokens 0..i (causal inside the step).
        new = torch.ones(t, t, dtype=torch.bool, device=mask.device)
        mask[:, :, idx] = torch.tril(new) if causal else new
        return self.k[layer], self.v[layer], mask

    def advance(self, tokens: int = 1) -> None:
        """Mark this step's ``tokens`` written in every layer: they become valid, positions move on."""
        idx = self.slots(tokens)
        self.valid[:, idx] = True
        self.pos += tokens
        self.written += tokens
        self.head = (self.head + tokens) % self.window if self.sink == 0 else int(self.slots(1)[0])

    def reset(self, rows: torch.Tensor | None = None) -> None:
        """Forget the past of ``rows`` (bool mask ``[batch]`` or indices; all rows if None)."""
        if rows is None:
            self.valid[:] = False
            self.pos[:] = 0
            self.written = 0
            self.head = 0
        elif self.sink:
            raise ValueError("a cache with sink tokens resets all rows at once (the sink slots are shared)")
        else:
            self.valid[rows] = False
            self.pos[rows] = 0

    def __len__(self) -> int:
        """Entries held by the fullest row."""
        return int(self.valid.sum(1).max()) if self.batch else 0


def rotary(x: torch.Tensor, pos: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotate pairs of channels of ``x`` ``[B, H, T, D]`` by angles ``pos`` ``[B, T]`` x frequency."""
    d = x.shape[-1]
    freq = base ** (-torch.arange(0, d, 2, device=x.device, dtype=torch.float32) / d)  # [D/2]
    ang = pos.float()[:, None, :, None] * freq  # [B, 1, T, D/2]
    cos, sin = torch.cos(ang).to(x.dtype), torch.sin(ang).to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), -1).flatten(-2)


class Block(nn.Module):
    """Pre-norm transformer block: rotary multi-head self-attention, then an MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 2) -> None:
        super().__init__()
        if dim % heads or (dim // heads) % 2:
            raise ValueError(f"dim {dim} must split into {heads} heads of an even size")
        self.heads, self.head_dim = heads, dim // heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def _qkv(self, x: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, T, _ = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, T, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return rotary(q, pos), rotary(k, pos), v

    def _finish(self, x: torch.Tensor, att: torch.Tensor) -> torch.Tensor:
        B, _, T, _ = att.shape
        x = x + self.proj(att.transpose(1, 2).reshape(B, T, -1))
        return x + self.mlp(self.norm2(x))

    def forward(self, x: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, T, dim]``, positions ``[B, T]``, ``mask`` ``[B, T, T]`` (True: may attend)."""
        q, k, v = self._qkv(x, pos)
        return self._finish(x, F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None]))

    def step(self, x: torch.Tensor, pos: torch.Tensor, cache: KVCache, layer: int) -> torch.Tensor:
        """New tokens ``x`` ``[B, t, dim]`` at positions ``[B, t]``, attending through ``cache``."""
        q, k, v = self._qkv(x, pos)
        keys, values, mask = cache.write(layer, k, v)
        return self._finish(x, F.scaled_dot_product_attention(q, keys, values, attn_mask=mask[:, None]))


def causal_mask(first: torch.Tensor, window: int) -> torch.Tensor:
    """``[B, T, T]`` mask of a batch of streams: query ``i`` sees key ``j`` when ``j <= i``,
    ``i - j < window`` and no episode starts in ``(j, i]`` (``first`` ``[B, T]`` marks starts)."""
    B, T = first.shape
    episode = torch.cumsum(first.long(), 1)  # episode index of each step
    i = torch.arange(T, device=first.device)
    causal = (i[None, :] <= i[:, None]) & (i[:, None] - i[None, :] < window)
    return causal[None] & (episode[:, :, None] == episode[:, None, :])


class CausalTransformer(nn.Module):
    """A stack of rotary transformer blocks over a stream of frame embeddings, each step seeing
    the last ``window`` frames of its episode (itself included)."""

    def __init__(self, dim: int, layers: int = 2, heads: int = 4, window: int = 16) -> None:
        super().__init__()
        self.dim, self.heads, self.window = dim, heads, window
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def new_cache(self, batch: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> KVCache:
        return KVCache(batch, len(self.blocks), self.heads, self.dim // self.heads, self.window, device, dtype)

    def forward(self, x: torch.Tensor, first: torch.Tensor | None = None) -> torch.Tensor:
        """Full recompute: ``x`` ``[B, T, dim]``, episode starts ``first`` ``[B, T]`` (default: one
        episode starting at step 0) -> ``[B, T, dim]``."""
        B, T, _ = x.shape
        if first is None:
            first = torch.zeros(B, T, dtype=torch.bool, device=x.device)
            first[:, 0] = True
        # Position = steps since the episode started (any offset would do: RoPE sees differences).
        start = torch.cummax(torch.where(first, torch.arange(T, device=x.device), 0), 1).values
        pos = torch.arange(T, device=x.device)[None] - start
        mask = causal_mask(first, self.window)
        for block in self.blocks:
            x = block(x, pos, mask)
        return self.norm(x)

    def step(self, x: torch.Tensor, cache: KVCache, first: torch.Tensor | None = None) -> torch.Tensor:
        """One new frame per row, ``x`` ``[B, dim]``; rows with ``first`` set start a new episode
        (their cache is cleared first). Returns ``[B, dim]``."""
        if first is not None and bool(first.any()):
            cache.reset(first)
        pos = cache.pos[:, None]
        h = x[:, None]
        for layer, block in enumerate(self.blocks):
            h = block.step(h, pos, cache, layer)
        cache.advance(1)
        return self.norm(h)[:, 0]
