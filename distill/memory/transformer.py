"""A causal transformer over the last ``window`` frames, stepped with the KV cache of ``distill.kv_cache``."""

from __future__ import annotations

import torch
from torch import nn

from distill.kv_cache import CausalTransformer, KVCache
from distill.memory.base import Memory, renamed
from distill.student_config import StudentConfig


class TransformerMemory(Memory):
    """``transformer``: a linear map of each frame to ``hidden`` features, then ``layers`` causal blocks."""

    def __init__(self, cfg: StudentConfig, frame_dim: int, **_: object) -> None:
        super().__init__()
        self.inp = nn.Linear(frame_dim, cfg.hidden)
        self.transformer = CausalTransformer(cfg.hidden, cfg.layers, cfg.heads, cfg.window)
        self.out_dim = cfg.hidden

    def init_state(self, batch: int, device: torch.device | str = "cpu") -> KVCache:
        return self.transformer.new_cache(batch, device)

    def sequence(self, f: torch.Tensor, first: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.transformer(self.inp(f), first)

    def step(self, f: torch.Tensor, state: KVCache, first: torch.Tensor) -> tuple[torch.Tensor, KVCache]:
        return self.transformer.step(self.inp(f), state, first), state

    def legacy_keys(self, prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        tensors = renamed(tensors, prefix, prefix + "transformer.")
        return renamed(tensors, "inp.", prefix + "inp.")
