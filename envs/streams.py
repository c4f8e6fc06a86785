"""A random stream per world: every start a world draws (a reset, a kick-off after a goal, a reset
after its physics failed) comes from a stream of that world's own, so that nothing one world does
(failing, ending early, scoring) changes any other world's draws.

The streams are counter-based (SplitMix64, computed with int64 tensor ops on the env's device):
world ``w``'s ``n``-th draw of an env seeded with ``seed`` is keyed by ``(seed, w, n)``, and its
``i``-th number is a pure function of the key and ``i``. So a batch of worlds draws in one
vectorised call, on the CPU or the GPU alike, with no generator objects, no loop over worlds and
no host synchronisation; the numbers are the same bits on every backend; and only the count per
world is state, so a snapshot holds ``[W]`` integers.
"""

from __future__ import annotations

import math

import torch


def _int64(c: int) -> int:
    """An unsigned 64-bit constant as the int64 with the same bits."""
    return c - (1 << 64) if c >= 1 << 63 else c


GOLDEN = _int64(0x9E3779B97F4A7C15)
_M1 = _int64(0xBF58476D1CE4E5B9)
_M2 = _int64(0x94D049BB133111EB)


def _shr(x: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 bits (torch's ``>>`` is arithmetic)."""
    return (x >> s) & ((1 << (64 - s)) - 1)


def mix(x: torch.Tensor) -> torch.Tensor:
    """SplitMix64's output function on int64 tensors (multiplication wraps modulo 2**64)."""
    x = (x ^ _shr(x, 30)) * _M1
    x = (x ^ _shr(x, 27)) * _M2
    return x ^ _shr(x, 31)


def stream_keys(seed: int, worlds: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """The key ``[k]`` (int64) of each world's ``counts``-th draw in an env seeded with ``seed``."""
    # The seed's own key is one number: mixed on the CPU and passed to the device as a scalar, so
    # no tensor is copied to the GPU per draw.
    seed_key = int(mix(torch.tensor(_int64(int(seed) & ((1 << 64) - 1))) + GOLDEN))
    key = mix((worlds.long() + GOLDEN) ^ seed_key)
    return mix(key ^ (counts.long() + GOLDEN))


def stream_bits(keys: torch.Tensor, start: int, n: int) -> torch.Tensor:
    """Numbers ``start .. start + n - 1`` of the SplitMix64 streams seeded with ``keys`` ``[k]``:
    ``[k, n]`` int64 (64 random bits each)."""
    i = torch.arange(start + 1, start + n + 1, device=keys.device, dtype=torch.long)
    return mix(keys[:, None] + i[None] * GOLDEN)


class WorldDraws:
    """Random numbers for a batch of worlds, row ``i`` from world ``worlds[i]``'s own stream.

    Each method returns ``[k, *shape]`` on the worlds' device; the calls of one ``WorldDraws``
    take consecutive numbers of each stream, so a row is the same whichever other worlds are
    drawn in the same batch."""

    def __init__(self, seed: int, worlds: torch.Tensor, counts: torch.Tensor) -> None:
        self.keys = stream_keys(seed, worlds, counts)
        self.device = worlds.device
        self.used = 0

    def __len__(self) -> int:
        return self.keys.shape[0]

    def _bits(self, shape: tuple[int, ...]) -> torch.Tensor:
        n = math.prod(shape)
        bits = stream_bits(self.keys, self.used, n)
        self.used += n
        return bits.view(len(self), *shape)

    def rand(self, *shape: int) -> torch.Tensor:
        """Uniform on [0, 1) (24 random bits, exact in float32), ``[k, *shape]``."""
        return _shr(self._bits(shape), 40).float() * 2.0**-24

    def randn(self, *shape: int) -> torch.Tensor:
        """Standard normal (Box-Muller), ``[k, *shape]``."""
        u = self.rand(2, *shape)
        return torch.sqrt(-2.0 * torch.log1p(-u[:, 0])) * torch.cos(2 * math.pi * u[:, 1])

    def seeds(self) -> list[int]:
        """One integer seed in [0, 2**31) per world (for a peer env's own ``reset(seed=)``)."""
        return _shr(self._bits(()), 33).tolist()
