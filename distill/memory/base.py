"""The protocol every student memory follows."""

from __future__ import annotations

import abc
from typing import Any

import torch
from torch import nn


class Memory(nn.Module, abc.ABC):
    """A student's memory. Each frame's features (image embeddings and proprio) may first gain the
    memory's own parts (``extras``: a map's encoding, geometry's estimate), computed while acting by
    ``observe`` and read back in training from what the DAgger buffer stored (``stored``); then the
    memory turns the frames into the features the action head reads: ``sequence`` over ``[B, T, F]``
    in training, ``step`` one frame at a time while acting.

    Subclasses set ``extra_dim`` (features ``extras`` adds per frame) and ``out_dim`` (what the head
    reads), and override what differs from a memoryless frame.
    """

    extra_dim: int = 0
    out_dim: int

    # -- training data ----------------------------------------------------------------------------
    def stored(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        """Per-step tensors the DAgger buffer keeps for this memory (name -> shape, dtype)."""
        return {}

    def stored_values(self, before: Any, after: Any) -> dict[str, torch.Tensor]:
        """The ``stored`` tensors of a step, from the state it started from and the one it left."""
        return {}

    def training_inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """What ``sequence`` and ``extras`` read in training, from a sampled buffer batch."""
        return {}

    def train_seq_len(self, seq_len: int) -> int:
        """The length of the training sequences this memory needs (``seq_len``: DAgger's setting)."""
        return seq_len

    # -- per-frame parts --------------------------------------------------------------------------
    def observe(
        self, img: torch.Tensor, proprio: torch.Tensor, state: Any, first: torch.Tensor
    ) -> tuple[Any, dict[str, torch.Tensor]]:
        """Acting: update what the memory builds from the frame before its features (a map, an
        estimate); the new state and the inputs ``extras`` reads."""
        return state, {}

    def extras(self, img: torch.Tensor, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """Features ``[N, extra_dim]`` the memory adds to frames ``img`` ``[N, C, H, W]``."""
        return []

    def estimate_prior(self, h: torch.Tensor) -> torch.Tensor | None:
        """``head=teacher``: a prior the head's estimate is added to (None: the head's alone)."""
        return None

    # -- the memory itself ------------------------------------------------------------------------
    @abc.abstractmethod
    def init_state(self, batch: int, device: torch.device | str = "cpu") -> Any:
        """The state of ``batch`` rows that have seen nothing yet."""

    @abc.abstractmethod
    def sequence(self, f: torch.Tensor, first: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Training: frames ``[B, T, F]`` with episode starts ``first`` ``[B, T]`` -> ``[B, T, out_dim]``."""

    @abc.abstractmethod
    def step(self, f: torch.Tensor, state: Any, first: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Acting: one frame per row ``[N, F]`` -> ``[N, out_dim]`` and the new state."""

    def legacy_keys(self, prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Weights saved before the memories were modules of their own, renamed to theirs."""
        return tensors


def renamed(tensors: dict[str, torch.Tensor], old: str, new: str) -> dict[str, torch.Tensor]:
    """``tensors`` with every key starting ``old`` renamed to start ``new`` (unless already so)."""
    return {(new + k[len(old) :] if k.startswith(old) and not k.startswith(new) else k): v for k, v in tensors.items()}


class FrameInputMemory(Memory):
    """A memory whose work is done by a ``tracker`` without learnt parameters that it keeps while
    acting (a map, geometry's estimate: ``init_state(batch, device)`` and ``step(img, proprio, state,
    first)``), whose per-step output ``name`` each frame reads: training reads the stored outputs
    back, one frame at a time, so the memory passes the features on as they are. Subclasses set
    ``tracker`` and the ``name``, ``shape`` and ``dtype`` of that output, and define ``output(state)``."""

    tracker: Any
    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype

    @abc.abstractmethod
    def output(self, state: Any) -> torch.Tensor:
        """The per-step output a frame reads, from the state ``observe`` left."""

    def init_state(self, batch: int, device: torch.device | str = "cpu") -> Any:
        return self.tracker.init_state(batch, device)

    def observe(
        self, img: torch.Tensor, proprio: torch.Tensor, state: Any, first: torch.Tensor
    ) -> tuple[Any, dict[str, torch.Tensor]]:
        state = self.tracker.step(img.float(), proprio, state, first)
        return state, {self.name: self.output(state)}

    def stored(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        return {self.name: (self.shape, self.dtype)}

    def stored_values(self, before: Any, after: Any) -> dict[str, torch.Tensor]:
        return {self.name: self.output(after)}  # what the student read at this step

    def training_inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {self.name: batch[self.name]}

    def train_seq_len(self, seq_len: int) -> int:
        return 1  # stored with each step: nothing to unroll

    def sequence(self, f: torch.Tensor, first: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return f

    def step(self, f: torch.Tensor, state: Any, first: torch.Tensor) -> tuple[torch.Tensor, Any]:
        return f, state
