"""The on-policy sequence buffer of DAgger: per-slot rings of steps, sampled as sequences."""

from __future__ import annotations

from typing import Any

import torch


class SequenceBuffer:
    """Ring buffer of the last ``capacity`` env steps for ``slots`` learner slots, time-major.

    Holds each step's image (float16 depth or uint8 RGB), proprio, the teacher's observation and
    action mean, and ``first`` (an episode started at this step). ``sample`` draws windows of
    consecutive steps of one slot.
    """

    def __init__(self, capacity: int, slots: int, shapes: dict[str, tuple[tuple[int, ...], torch.dtype]], device: Any):
        self.capacity, self.slots = capacity, slots
        self.data = {k: torch.zeros(capacity, slots, *s, dtype=d, device=device) for k, (s, d) in shapes.items()}
        self.head = 0  # next row to write
        self.size = 0

    def add(self, **step: torch.Tensor) -> None:
        for k, v in step.items():
            self.data[k][self.head] = v.to(self.data[k].dtype)
        self.head = (self.head + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch: int, length: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """``batch`` windows of ``length`` consecutive steps -> each field ``[batch, length, ...]``."""
        if length > self.size:
            raise ValueError(f"windows of {length} steps need that many in the buffer; it holds {self.size}")
        oldest = (self.head - self.size) % self.capacity
        start = torch.randint(0, self.size - length + 1, (batch,), generator=generator)
        rows = (oldest + start[:, None] + torch.arange(length)) % self.capacity  # [B, T]
        cols = torch.randint(0, self.slots, (batch,), generator=generator)[:, None].expand(-1, length)
        dev = next(iter(self.data.values())).device
        rows, cols = rows.to(dev), cols.to(dev)
        return {k: v[rows, cols] for k, v in self.data.items()}


# -- runner -----------------------------------------------------------------------------------------
