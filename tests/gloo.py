"""Two CPU processes in one Gloo group, joined from the variables torchrun would set: what the
distributed tests of both trainers share."""

import os
import socket

import torch
import torch.multiprocessing as mp

from agents import distributed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def join(rank: int, port: int) -> None:
    """Join a 2-process Gloo group from the variables torchrun would set, as the trainers do."""
    torch.set_num_threads(1)
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank)
    )
    ranks = distributed.init_from_env(None)
    assert (ranks.world_size, distributed.rank()) == (2, rank)


def spawn(fn, *args) -> None:
    """Run ``fn(rank, port, *args)`` in two fresh processes."""
    mp.start_processes(fn, (free_port(), *args), nprocs=2, start_method="spawn")
