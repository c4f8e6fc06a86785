"""DAgger's typed settings (validated where they are declared)."""

from __future__ import annotations

import dataclasses
from typing import Literal


@dataclasses.dataclass(frozen=True)
class DaggerConfig:
    """DAgger settings."""

    loss: Literal["mse", "kl"] = "mse"
    """Action loss: ``mse`` on the means, or ``kl`` between the action distributions."""
    align_coef: float | None = None
    """Weight of the relational alignment loss (default 0.1 with ``depth_layers``, 0 otherwise)."""
    beta: float = 1.0
    """Probability that the teacher drives a world at the start."""
    beta_frames: int = 50_000
    """Student frames over which ``beta`` decays linearly to 0."""
    steps_per_iter: int = 16
    """Env steps collected between updates."""
    buffer_steps: int = 64
    """Ring buffer length in env steps (x worlds x learning agents frames)."""
    updates_per_iter: int = 4
    """Minibatches per iteration."""
    batch_frames: int = 256
    """Frames per minibatch (``seq_len`` x sequences)."""
    seq_len: int = 16
    """Sequence length of minibatches for ``gru`` and ``transformer`` students (1 for ``none``
    unless frames are stacked, then ``frame_stack``)."""
    stored_state: bool = True
    """``gru`` students: each training sequence starts from the memory state the student had when it
    collected that step (stored in the buffer, as R2D2 does), not from an empty memory, so the
    student learns to use what it saw before the sequence."""
    lr: float = 5e-4
    """Adam learning rate (the starting one, with a decaying ``lr_schedule``)."""
    lr_schedule: Literal["constant", "linear", "cosine"] = "constant"
    """Learning rate over the run, by the fraction of ``total_frames`` collected: ``constant``, or
    decaying from ``lr`` to ``lr_final`` along a line or a half cosine."""
    lr_final: float = 5e-5
    """Learning rate at the last iteration of a decaying ``lr_schedule``."""
    max_grad_norm: float = 1.0
    """Gradient clipping."""
    augment_shift: int = 0
    """Random shift augmentation: pad by this many pixels and crop back (0: off)."""
    aux_coef: float = 0.0
    """Weight of the privileged-prediction loss: a linear head on the student's features predicts
    the teacher's normalised observation (MSE, clipped to +-5 standard deviations; 0: off)."""
    stagger_starts: bool = False
    """Cut each world's first episode short at a random step (its episode clock starts at a random
    point in ``[0, max_episode_steps)``), so that the worlds' episodes do not end together and the
    buffer holds every phase of an episode at once, not the same phase of every world. Worlds that
    start together and time out together (EgoPush's 60-s episodes) otherwise fill the buffer with
    the start of an episode, then its middle, then its end. Those cut episodes count as failures in
    the training success."""
    teacher_head_lr: float = 0.0
    """``head=teacher``: the student's copy of the teacher's network trains too, at this fraction of
    the learning rate (0: frozen, the teacher's weights as they are). The action loss then also
    shapes how the student acts on its estimate, errors included, not only the estimate."""

    def __post_init__(self) -> None:
        if self.loss not in ("mse", "kl"):
            raise ValueError(f"loss must be 'mse' or 'kl', got {self.loss!r}")
        if self.teacher_head_lr < 0:
            raise ValueError(f"teacher_head_lr must be >= 0, got {self.teacher_head_lr}")
        if self.aux_coef < 0:
            raise ValueError(f"aux_coef must be >= 0, got {self.aux_coef}")
        if self.lr <= 0 or not 0 <= self.lr_final <= self.lr:
            raise ValueError(f"need lr > 0 and 0 <= lr_final <= lr, got lr {self.lr}, lr_final {self.lr_final}")
        if self.lr_schedule not in ("constant", "linear", "cosine"):
            raise ValueError(f"lr_schedule must be constant, linear or cosine, got {self.lr_schedule!r}")
        if min(self.steps_per_iter, self.buffer_steps, self.updates_per_iter, self.batch_frames, self.seq_len) < 1:
            raise ValueError("steps_per_iter, buffer_steps, updates_per_iter, batch_frames and seq_len must be >= 1")
        if not 0 <= self.beta <= 1:
            raise ValueError(f"beta is a probability in [0, 1], got {self.beta}")
