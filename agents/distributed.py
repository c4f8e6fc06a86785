"""Several processes training one model (``torchrun``): the process group, read from the environment
torchrun sets, and the few collectives a trainer needs. Each helper is a no-op in a single process, so
a trainer calls them unconditionally and runs without torchrun exactly as it always did."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Ranks:
    """Where this process stands among the ones training together."""

    world_size: int = 1
    """Processes in the run (``WORLD_SIZE``)."""
    rank: int = 0
    """This process's global rank (``RANK``): 0 logs and writes checkpoints."""
    local_rank: int = 0
    """Its rank on its machine (``LOCAL_RANK``): which GPU it drives."""


def init_from_env(device: str | None = None) -> Ranks:
    """Join the process group torchrun describes in ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``
    (``MASTER_ADDR``/``MASTER_PORT`` for the rendezvous): NCCL when ``device`` is CUDA, Gloo otherwise.
    Without those variables (or with ``WORLD_SIZE=1``) it joins nothing: one process, as before."""
    ranks = Ranks(
        int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0))
    )
    if ranks.world_size == 1 or initialized():
        return ranks
    cuda = device is not None and torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(local_device(device, ranks))
    dist.init_process_group("nccl" if cuda else "gloo")
    return ranks


def local_device(device: str | None, ranks: Ranks) -> str | None:
    """The device a rank uses: ``cuda`` without an index means this machine's GPU ``LOCAL_RANK``."""
    if device is not None and device == "cuda" and ranks.world_size > 1:
        return f"cuda:{ranks.local_rank}"
    return device


def initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if initialized() else 1


def rank() -> int:
    return dist.get_rank() if initialized() else 0


def is_main() -> bool:
    """Whether this process logs and writes checkpoints (global rank 0)."""
    return rank() == 0


def close() -> None:
    """Leave the process group (a no-op in a single process)."""
    if initialized():
        dist.destroy_process_group()


def broadcast_module_(module: nn.Module, src: int = 0) -> None:
    """Overwrite ``module``'s parameters and buffers (normalisers) with rank ``src``'s, in place."""
    if world_size() == 1:
        return
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src)


def average_gradients_(params: list[nn.Parameter]) -> None:
    """Replace every parameter's gradient by its mean over the ranks: one all-reduce of the flattened
    gradients. Parameters without a gradient (left out of the loss, the same ones on every rank) are
    left without one, as a single process leaves them (Adam then skips them)."""
    n = world_size()
    if n == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= n
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def mean(x: torch.Tensor) -> torch.Tensor:
    """The mean over the ranks of a tensor each rank holds (the same shape everywhere); ``x`` itself
    in a single process."""
    n = world_size()
    if n == 1:
        return x
    out = x.detach().clone()
    dist.all_reduce(out)
    return out / n


def standardize(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``(x - mean) / (std + eps)`` with the mean and (unbiased) standard deviation of every rank's
    ``x`` together, as one process holding the whole batch would compute them."""
    if world_size() == 1:
        return (x - x.mean()) / (x.std() + eps)
    count = torch.tensor([float(x.numel())], device=x.device, dtype=torch.float64)
    total = x.detach().sum().to(torch.float64).reshape(1)
    both = torch.cat([total, count])
    dist.all_reduce(both)
    m = both[0] / both[1]
    sq = ((x.detach().to(torch.float64) - m) ** 2).sum().reshape(1)
    dist.all_reduce(sq)
    std = torch.sqrt(sq[0] / (both[1] - 1))
    return (x - m.to(x.dtype)) / (std.to(x.dtype) + eps)


@torch.no_grad()
def update_normaliser(norm: nn.Module, x: torch.Tensor) -> None:
    """``norm.update(x)`` (a ``RunningNorm``) with the batch of every rank together: each rank sends its
    batch's count, mean and variance; every rank combines them the same way (Chan et al.), so every
    rank holds the same statistics, those one process seeing all the worlds would hold."""
    n = world_size()
    if n == 1:
        norm.update(x)
        return
    x = x.reshape(-1, x.shape[-1]).float()
    local = torch.cat([torch.tensor([float(x.shape[0])], device=x.device), x.mean(0), x.var(0, unbiased=False)])
    parts = [torch.empty_like(local) for _ in range(n)]
    dist.all_gather(parts, local)
    stacked = torch.stack(parts)
    counts, means, variances = stacked[:, :1], stacked[:, 1 : 1 + x.shape[1]], stacked[:, 1 + x.shape[1] :]
    batch = counts.sum()
    batch_mean = (counts * means).sum(0) / batch
    batch_var = (counts * (variances + (means - batch_mean) ** 2)).sum(0) / batch
    total = norm.count + batch
    delta = batch_mean - norm.mean
    norm.mean += delta * batch / total
    norm.var = (norm.var * norm.count + batch_var * batch + delta**2 * norm.count * batch / total) / total
    norm.count = total


def any_rank(flag: bool) -> bool:
    """Whether ``flag`` holds on at least one rank (every rank gets the same answer)."""
    if world_size() == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def sum_stats(sums: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """Per-iteration statistics as ``{name: (sum, count)}`` summed over the ranks (a name some ranks
    lack counts as ``(0, 0)`` there): every rank gets the whole run's sums."""
    if world_size() == 1:
        return sums
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, sums)
    out: dict[str, tuple[float, float]] = {}
    for part in gathered:
        for k, (s, c) in part.items():
            s0, c0 = out.get(k, (0.0, 0.0))
            out[k] = (s0 + s, c0 + c)
    return out


def gather_to_main(obj: Any) -> list[Any] | None:
    """Every rank's ``obj`` (picklable; tensors on the CPU), in rank order, on rank 0; ``None`` on
    the others. A single process gets ``[obj]``."""
    if world_size() == 1:
        return [obj]
    out: list[Any] | None = [None] * world_size() if is_main() else None
    dist.gather_object(obj, out, dst=0)
    return out


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def _collective_device() -> torch.device:
    """Where small tensors go for a collective: the current GPU under NCCL, the CPU under Gloo."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def as_rank(device: str | None, run: Callable[[Ranks], T]) -> T:
    """``run(ranks)`` as this process's rank of the torchrun group (joined from the environment; a
    single process is rank 0 of 1), leaving the group after unless someone else had opened it."""
    joined = not initialized()
    ranks = init_from_env(device)
    try:
        return run(ranks)
    finally:
        if joined:  # a process group someone else opened (a test's) is theirs to close
            close()
