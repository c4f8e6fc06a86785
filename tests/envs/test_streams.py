"""The per-world random streams (``envs.streams``): SplitMix64 bit for bit (checked against a numpy
uint64 reference, so a platform whose int64 multiplication did not wrap would fail here), a row
that does not depend on the other worlds drawn beside it, and numbers of the right distribution."""

import numpy as np
import torch

from envs.streams import WorldDraws, stream_bits, stream_keys

U = np.uint64
GOLDEN = U(0x9E3779B97F4A7C15)


def _mix(x: np.uint64) -> np.uint64:
    with np.errstate(over="ignore"):
        x = (x ^ (x >> U(30))) * U(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> U(27))) * U(0x94D049BB133111EB)
        return x ^ (x >> U(31))


def _reference(seed: int, world: int, count: int, n: int) -> list[int]:
    with np.errstate(over="ignore"):
        key = _mix(U(seed) + GOLDEN)
        key = _mix(key ^ (U(world) + GOLDEN))
        key = _mix(key ^ (U(count) + GOLDEN))
        return [int(_mix(key + U(i) * GOLDEN)) for i in range(1, n + 1)]


def test_streams_are_splitmix64_bit_for_bit():
    for seed, world, count in [(0, 0, 0), (5, 3, 7), (271828, 4095, 123456), (2**40 + 1, 17, 1)]:
        got = stream_bits(stream_keys(seed, torch.tensor([world]), torch.tensor([count])), 0, 6)[0]
        assert [v & (2**64 - 1) for v in got.tolist()] == _reference(seed, world, count, 6)


def test_a_rows_numbers_do_not_depend_on_the_worlds_beside_it():
    alone = WorldDraws(9, torch.tensor([5]), torch.tensor([2]))
    batch = WorldDraws(9, torch.tensor([0, 5, 7]), torch.tensor([1, 2, 9]))
    first = {"alone": alone.rand(3, 2), "batch": batch.rand(3, 2)}
    second = {"alone": alone.randn(4), "batch": batch.randn(4)}
    assert torch.equal(first["alone"][0], first["batch"][1]) and torch.equal(second["alone"][0], second["batch"][1])
    assert not torch.equal(first["batch"][0], first["batch"][1])  # other worlds draw other numbers
    assert not torch.equal(first["alone"][0].flatten()[:4], second["alone"][0])  # calls go on along the stream
    # Another draw of the same world, or another seed, is another stream.
    assert not torch.equal(WorldDraws(9, torch.tensor([5]), torch.tensor([3])).rand(3, 2)[0], first["alone"][0])
    assert not torch.equal(WorldDraws(8, torch.tensor([5]), torch.tensor([2])).rand(3, 2)[0], first["alone"][0])


def test_uniform_and_normal_numbers_have_their_distributions():
    draws = WorldDraws(1, torch.arange(512), torch.ones(512, dtype=torch.long))
    u = draws.rand(200)
    assert u.dtype == torch.float32 and u.shape == (512, 200)
    assert float(u.min()) >= 0.0 and float(u.max()) < 1.0
    assert abs(float(u.mean()) - 0.5) < 0.005 and abs(float(u.std()) - 12**-0.5) < 0.005
    counts = torch.histc(u, bins=10, min=0, max=1)
    assert float((counts / u.numel() - 0.1).abs().max()) < 0.005
    z = draws.randn(200)
    assert abs(float(z.mean())) < 0.01 and abs(float(z.std()) - 1) < 0.01
    assert abs(float((z.abs() < 1.96).float().mean()) - 0.95) < 0.005
    seeds = WorldDraws(3, torch.arange(64), torch.zeros(64, dtype=torch.long)).seeds()
    assert len(set(seeds)) == 64 and all(0 <= s < 2**31 for s in seeds)
