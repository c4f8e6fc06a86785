"""The KV cache: cached step-by-step inference equals a full recompute, and the rolling window
forgets exactly what fell out of it."""

import pytest
import torch

from distill.kv_cache import CausalTransformer, KVCache, causal_mask


def _model(window: int, layers: int = 2, dim: int = 32, seed: int = 0) -> CausalTransformer:
    torch.manual_seed(seed)
    return CausalTransformer(dim, layers=layers, heads=4, window=window).eval()


def _stepped(model: CausalTransformer, x: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
    cache = model.new_cache(x.shape[0])
    with torch.no_grad():
        return torch.stack([model.step(x[:, t], cache, first[:, t]) for t in range(x.shape[1])], 1)


@pytest.mark.parametrize("window", [4, 8, 64])
def test_cached_steps_equal_full_recompute(window: int) -> None:
    B, T = 3, 40
    model = _model(window)
    x = torch.randn(B, T, 32)
    first = torch.zeros(B, T, dtype=torch.bool)
    first[:, 0] = True
    first[1, 13] = True  # row 1 starts a new episode mid-stream, row 2 twice
    first[2, 5] = first[2, 30] = True
    with torch.no_grad():
        full = model(x, first)
    stepped = _stepped(model, x, first)
    assert torch.allclose(stepped, full, atol=1e-5), (stepped - full).abs().max()


def test_rolling_window_evicts_what_fell_out() -> None:
    window, T = 5, 20
    model = _model(window, layers=1)
    x = torch.randn(1, T, 32)
    first = torch.zeros(1, T, dtype=torch.bool)
    base = _stepped(model, x, first)[0, -1]
    # An input older than the window no longer matters ...
    old = x.clone()
    old[0, T - window - 1] = torch.randn(32)  # (a random frame: LayerNorm ignores a constant shift)
    assert torch.allclose(_stepped(model, old, first)[0, -1], base, atol=1e-6)
    # ... while the oldest one still inside it does.
    inside = x.clone()
    inside[0, T - window] = torch.randn(32)
    assert not torch.allclose(_stepped(model, inside, first)[0, -1], base, atol=1e-3)
    # With one layer, the cached output is the transformer over exactly the last `window` frames.
    with torch.no_grad():
        last = model(x[:, T - window :])[0, -1]
    assert torch.allclose(last, base, atol=1e-5)


def test_cache_holds_at_most_window_entries_and_reset_forgets_one_row() -> None:
    cache = KVCache(batch=2, layers=1, heads=1, head_dim=2, window=3)
    for t in range(5):
        k = torch.full((2, 1, 1, 2), float(t))
        cache.write(0, k, k)
        cache.advance()
        assert len(cache) == min(t + 1, 3)
    # The ring holds steps 2, 3, 4 (step 0 and 1 evicted).
    assert sorted(cache.k[0][0, 0, :, 0].tolist()) == [2.0, 3.0, 4.0]
    cache.reset(torch.tensor([True, False]))
    assert cache.valid[0].sum() == 0 and cache.valid[1].sum() == 3
    assert cache.pos.tolist() == [0, 5]


def test_reset_of_one_row_leaves_the_others_alone() -> None:
    model = _model(8)
    x = torch.randn(2, 12, 32)
    no_reset = torch.zeros(2, 12, dtype=torch.bool)
    reset_row1 = no_reset.clone()
    reset_row1[1, 6] = True
    a, b = _stepped(model, x, no_reset), _stepped(model, x, reset_row1)
    assert torch.allclose(a[0], b[0], atol=1e-6)
    assert torch.allclose(a[1, :6], b[1, :6], atol=1e-6)
    assert not torch.allclose(a[1, 6:], b[1, 6:], atol=1e-3)


def test_causal_mask_hand_worked() -> None:
    first = torch.tensor([[True, False, True, False]])
    m = causal_mask(first, window=2)[0].int().tolist()
    assert m == [[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]]
