"""No memory: the features of the last ``frame_stack`` frames side by side (1: reactive)."""

from __future__ import annotations

import torch

from distill.memory.base import Memory
from distill.student_config import StudentConfig


class FrameStack(Memory):
    """Each step reads itself and the ``frame_stack - 1`` frames before it, the episode's first frame
    repeated before it starts."""

    def __init__(self, cfg: StudentConfig, frame_dim: int, **_: object) -> None:
        super().__init__()
        self.k = cfg.frame_stack
        self.out_dim = frame_dim * self.k

    def train_seq_len(self, seq_len: int) -> int:
        return self.k

    def init_state(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.zeros(batch, max(0, self.k - 1), 0, device=device)  # filled on first use

    def sequence(self, f: torch.Tensor, first: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.k == 1:
            return f
        B, T, _ = f.shape
        t = torch.arange(T, device=f.device)
        start = torch.cummax(torch.where(first, t, 0), 1).values  # [B, T] first step of the episode
        cols = [torch.maximum(t[None] - i, start) for i in range(self.k)]  # [B, T] each
        return torch.cat([f.gather(1, c[..., None].expand(-1, -1, f.shape[-1])) for c in cols], -1)

    def step(self, f: torch.Tensor, state: torch.Tensor, first: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.k == 1:
            return f, state
        if state.shape[-1] == 0:  # first use: every row starts an episode
            state = f[:, None].expand(-1, self.k - 1, -1).clone()
        state = torch.where(first[:, None, None], f[:, None].expand_as(state), state)
        h = torch.cat((f, state.flip(1).flatten(1)), -1)
        return h, torch.cat((state[:, 1:], f[:, None]), 1)
