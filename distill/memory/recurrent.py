"""A GRU over the frames; training sequences can start from the state stored when acting (R2D2)."""

from __future__ import annotations

import torch
from torch import nn

from distill.memory.base import Memory, renamed
from distill.student_config import StudentConfig


class GRUMemory(Memory):
    """``gru``: one GRU layer of ``hidden`` units, its state cut at episode starts."""

    def __init__(self, cfg: StudentConfig, frame_dim: int, **_: object) -> None:
        super().__init__()
        self.gru = nn.GRU(frame_dim, cfg.hidden, batch_first=True)
        self.hidden = self.out_dim = cfg.hidden

    def stored(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        return {"hidden": ((self.hidden,), torch.float32)}

    def stored_values(self, before: torch.Tensor, after: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"hidden": before[0]}  # the state this step started from

    def training_inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"h0": batch["hidden"][:, 0]} if "hidden" in batch else {}

    def init_state(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.zeros(1, batch, self.hidden, device=device)

    def sequence(self, f: torch.Tensor, first: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        B, T, _ = f.shape
        h0 = inputs.get("h0")
        hx = torch.zeros(1, B, self.hidden, device=f.device) if h0 is None else h0[None].to(f)
        outs = []
        for t in range(T):  # the state is cut at episode starts
            hx = hx * (~first[:, t]).float()[None, :, None]
            o, hx = self.gru(f[:, t : t + 1], hx)
            outs.append(o)
        return torch.cat(outs, 1)

    def step(self, f: torch.Tensor, state: torch.Tensor, first: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        state = state * (~first).float()[None, :, None]
        o, state = self.gru(f[:, None], state)
        return o[:, 0], state

    def legacy_keys(self, prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return renamed(tensors, prefix, prefix + "gru.")
