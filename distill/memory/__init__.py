"""What a vision student carries from frame to frame: one module per kind of memory, all behind the
``Memory`` protocol of ``base``, built from a ``StudentConfig`` by ``make_memory``."""

from __future__ import annotations

from typing import Any

from distill.memory.base import Memory
from distill.memory.frame_stack import FrameStack
from distill.memory.geometric import GeometricMemory
from distill.memory.map import MapMemory
from distill.memory.recurrent import GRUMemory
from distill.memory.transformer import TransformerMemory
from distill.student_config import StudentConfig

MEMORIES: dict[str, type[Memory]] = {
    "none": FrameStack,
    "gru": GRUMemory,
    "transformer": TransformerMemory,
    "map": MapMemory,
    "geometric": GeometricMemory,
}


def make_memory(cfg: StudentConfig, frame_dim: int, **context: Any) -> Memory:
    """The memory ``cfg.memory`` over frames of ``frame_dim`` features; ``context``: ``image_shape``
    ``(C, H, W)``, ``roles`` (role layers, 0 for RGB), ``geometry`` and ``teacher_dims`` (see
    ``Student``), each kind taking what it needs."""
    return MEMORIES[cfg.memory](cfg, frame_dim, **context)


__all__ = ["MEMORIES", "Memory", "make_memory"]
