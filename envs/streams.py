"""A random stream per world: every start a world draws (a reset, a kick-off after a goal, a reset
after its physics failed) comes from a stream of that world's own, so that nothing one world does
(failing, ending early, scoring) changes any other world's draws.

World ``w``'s ``n``-th draw of an env seeded with ``seed`` is ``world_generator(seed, w, n)``: a
generator keyed by the three numbers through numpy's ``SeedSequence`` (well mixed, reproducible
across machines and backends). Only the count per world is state, so a snapshot holds ``[W]``
integers rather than ``W`` generator states.
"""

from __future__ import annotations

import numpy as np
import torch


def world_generator(seed: int, world: int, count: int) -> torch.Generator:
    """The generator of world ``world``'s ``count``-th draw in an env seeded with ``seed``."""
    words = np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, int(world), int(count)]).generate_state(2)
    return torch.Generator(device="cpu").manual_seed(int(words[0]) << 32 | int(words[1]))


class WorldDraws:
    """Random numbers for a batch of worlds, row ``i`` from world ``worlds[i]``'s own stream.

    Each method returns ``[k, *shape]`` on ``device``: every world's row is drawn from its own
    generator, so a row is the same whichever other worlds are drawn in the same batch."""

    def __init__(self, seed: int, worlds: list[int], counts: list[int], device: torch.device | str) -> None:
        self.generators = [world_generator(seed, w, n) for w, n in zip(worlds, counts, strict=True)]
        self.device = torch.device(device)

    def __len__(self) -> int:
        return len(self.generators)

    def rand(self, *shape: int) -> torch.Tensor:
        """Uniform on [0, 1), ``[k, *shape]``."""
        if not self.generators:
            return torch.zeros((0, *shape), device=self.device)
        return torch.stack([torch.rand(shape, generator=g) for g in self.generators]).to(self.device)

    def randn(self, *shape: int) -> torch.Tensor:
        """Standard normal, ``[k, *shape]``."""
        if not self.generators:
            return torch.zeros((0, *shape), device=self.device)
        return torch.stack([torch.randn(shape, generator=g) for g in self.generators]).to(self.device)

    def seeds(self) -> list[int]:
        """One integer seed in [0, 2**31 - 1) per world (for a peer env's own ``reset(seed=)``)."""
        return [int(torch.randint(0, 2**31 - 1, (1,), generator=g)) for g in self.generators]
