"""Thread counts for the whole process, chosen once: physics, rendering and the learner.

On the ``cpu`` backend ``mujoco.batch`` steps the worlds on every core (``nthread=0``, the env
configs' default) and the batch renderer runs in Warp's own CPU kernels; between steps torch
runs the learner. torch's OpenMP workers (one per core by default) spin-wait after each op and
take the cores from ``mujoco.batch``'s threads: on 2 shared cores PPO ran about 5x slower with
torch's default than with one torch thread (``scripts/bench_train.py`` measures the counts side
by side). So unless the user chose, torch gets ``DEFAULT_TORCH_THREADS`` intra-op threads.

The user has chosen when any of these holds, and then nothing is changed:
  - ``EGOTEACH_TORCH_THREADS=N`` in the environment (``0``: leave torch's own default);
  - ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` in the environment;
  - ``torch.set_num_threads`` was called after ``envs`` was imported;
  - ``choose_threads(n)`` was called with a count.
"""

from __future__ import annotations

import os

import torch

ENV_VAR = "EGOTEACH_TORCH_THREADS"
DEFAULT_TORCH_THREADS = 1
"""Measured on 2 cores only (docs/benchmarks.md); larger machines keep the same rule until measured."""

TORCH_AT_IMPORT = torch.get_num_threads()
"""torch's intra-op threads when ``envs`` was imported: torch's own default unless set before."""

_chosen_by: str | None = None


def choose_threads(torch_threads: int | None = None) -> int:
    """Set torch's intra-op threads for the process, once; returns the count now in use.

    With ``torch_threads`` (the knob) that count is set whatever was chosen before. Without it,
    the first call sets ``DEFAULT_TORCH_THREADS`` unless the user chose (see the module's
    docstring); later calls change nothing. Called by ``BatchedEnv.__init__``.
    """
    global _chosen_by
    if torch_threads is not None:
        if torch_threads < 1:
            raise ValueError(f"torch_threads must be >= 1, got {torch_threads}")
        torch.set_num_threads(torch_threads)
        _chosen_by = "knob"
    elif _chosen_by is None:
        _chosen_by = _decide()
    return torch.get_num_threads()


def chosen_by() -> str | None:
    """Who set torch's threads: ``"knob"``, ``"env"`` (``EGOTEACH_TORCH_THREADS``), ``"user"``
    (OpenMP/MKL variables or ``torch.set_num_threads``), ``"egoteach"`` (the default), or ``None``
    before the first env was made."""
    return _chosen_by


def _decide() -> str:
    wanted = os.environ.get(ENV_VAR, "").strip()
    if wanted:
        try:
            n = int(wanted)
        except ValueError:
            raise ValueError(
                f"{ENV_VAR} must be a whole number of threads (0: torch's default), got {wanted!r}"
            ) from None
        if n < 0:
            raise ValueError(f"{ENV_VAR} must be >= 0 (0: torch's default), got {n}")
        if n > 0:
            torch.set_num_threads(n)
        return "env"
    if os.environ.get("OMP_NUM_THREADS") or os.environ.get("MKL_NUM_THREADS"):
        return "user"
    if torch.get_num_threads() != TORCH_AT_IMPORT:
        return "user"
    torch.set_num_threads(DEFAULT_TORCH_THREADS)
    return "egoteach"
