"""The simplex agent encoding: its geometry, its draws, and its limit."""

import pytest
import torch

from distill.world_model.positions import PositionConfig, Rotary4D, assign_agents, rotate, simplex_vertices


@pytest.mark.parametrize("m", [2, 3, 4, 7])
def test_simplex_vertices_are_unit_and_equally_apart(m: int) -> None:
    v = simplex_vertices(m)
    assert v.shape == (m, m - 1)
    gram = v @ v.T
    expected = torch.full((m, m), -1.0 / (m - 1))
    expected.fill_diagonal_(1.0)
    assert torch.allclose(gram, expected, atol=1e-6)
    assert torch.allclose(v.sum(0), torch.zeros(m - 1), atol=1e-6)  # centred


def test_training_draws_cover_the_pool_in_every_order() -> None:
    ids = assign_agents(4000, 2, 4, torch.Generator().manual_seed(0), shuffle=True)
    assert (ids[:, 0] != ids[:, 1]).all()
    pairs = {tuple(r) for r in ids.tolist()}
    assert len(pairs) == 12  # every ordered pair of distinct vertices of 4
    assert assign_agents(2, 3, 4).tolist() == [[0, 1, 2], [0, 1, 2]]


@pytest.mark.parametrize("kind", ["simplex", "slot"])
def test_more_agents_than_the_pool_is_refused_naming_the_limit(kind: str) -> None:
    with pytest.raises(ValueError, match="at most 4"):
        assign_agents(1, 5, 4)
    rope = Rotary4D(PositionConfig(kind=kind, pool=4), 32)
    with pytest.raises(ValueError, match="at most 4"):
        rope.agent_angles(torch.arange(2), torch.arange(5)[None], (2, 2))


def test_agent_band_too_narrow_for_the_pool_is_refused() -> None:
    with pytest.raises(ValueError, match="at most 5 simplex vertices"):
        PositionConfig(pool=6, bands=(8, 8, 8, 8))


def test_rotary_scores_depend_on_time_differences_only() -> None:
    rope = Rotary4D(PositionConfig(), 32)
    q, k = torch.randn(32), torch.randn(32)
    ids = torch.tensor([[1, 3]])

    def score(tq: int, tk: int) -> float:
        aq = rope.agent_angles(torch.tensor([tq]), ids, (1, 1))[0, 0, 0]
        ak = rope.agent_angles(torch.tensor([tk]), ids, (1, 1))[0, 1, 0]
        return float(rotate(q, aq.cos(), aq.sin()) @ rotate(k, ak.cos(), ak.sin()))

    assert score(7, 3) == pytest.approx(score(104, 100), abs=1e-4)
    assert score(7, 3) != pytest.approx(score(7, 4), abs=1e-3)
