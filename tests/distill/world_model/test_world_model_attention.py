"""Sparse Hub Attention: what it computes, whom it lets an agent hear, and what it costs."""

import pytest
import torch
from torch.nn import functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from distill.kv_cache import KVCache
from distill.world_model.attention import (
    AttentionConfig,
    TimeMask,
    attention_flops,
    block_causal_mask,
    dense_attend,
    hub_attend,
)


def _qkv(B: int, A: int, L: int, Lh: int, H: int = 2, d: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    a = [torch.randn(B, A, H, L, d, generator=g) for _ in range(3)]
    h = [torch.randn(B, H, Lh, d, generator=g) for _ in range(3)]
    return a, h


def test_hub_attention_equals_a_dense_attention_masked_to_the_hub_pattern() -> None:
    B, A, L, Lh, H, d = 2, 3, 5, 4, 2, 8
    (qa, ka, va), (qh, kh, vh) = _qkv(B, A, L, Lh, H, d)
    oa, oh = hub_attend(qa, ka, va, qh, kh, vh)
    # Reference: one sequence [agent 0 | agent 1 | agent 2 | hubs], agents blind to each other.
    cat = lambda a, h: torch.cat((a.transpose(1, 2).reshape(B, H, A * L, d), h), 2)  # noqa: E731
    owner = torch.cat((torch.arange(A).repeat_interleave(L), torch.full((Lh,), -1)))
    allowed = (owner[:, None] == owner[None, :]) | (owner[:, None] == -1) | (owner[None, :] == -1)
    ref = F.scaled_dot_product_attention(cat(qa, qh), cat(ka, kh), cat(va, vh), attn_mask=allowed)
    assert torch.allclose(oa.transpose(1, 2).reshape(B, H, A * L, d), ref[:, :, : A * L], atol=1e-5)
    assert torch.allclose(oh, ref[:, :, A * L :], atol=1e-5)


def test_an_agent_hears_another_only_through_the_hubs() -> None:
    (qa, ka, va), (qh, kh, vh) = _qkv(1, 3, 6, 4)
    other = [t.clone() for t in (qa, ka, va)]
    for t in other:
        t[:, 2] = torch.randn_like(t[:, 2])  # agent 2's tokens change
    oa, oh = hub_attend(qa, ka, va, qh, kh, vh)
    oa2, oh2 = hub_attend(*other, qh, kh, vh)
    assert torch.allclose(oa[:, :2], oa2[:, :2], atol=1e-6)  # agents 0 and 1: unchanged at fixed hubs
    assert not torch.allclose(oh, oh2, atol=1e-3)  # the hubs did hear it
    d, d2 = dense_attend(qa, ka, va), dense_attend(*other)
    assert not torch.allclose(d[:, :2], d2[:, :2], atol=1e-3)  # dense attention lets it through directly


def test_block_causal_mask_with_window_and_sink_hand_worked() -> None:
    f = torch.arange(8)
    m = block_causal_mask(f, f, TimeMask(block=2, window=5, sink=1)).int()
    # Block of frames 6-7 sees the sink (0) and the 4 newest non-sink frames 4..7.
    assert m[6].tolist() == [1, 0, 0, 0, 1, 1, 1, 1]
    assert m[7].tolist() == m[6].tolist()
    # Block of frames 2-3 sees frames 0..3 (nothing evicted yet), not the future.
    assert m[2].tolist() == [1, 1, 1, 1, 0, 0, 0, 0]
    assert block_causal_mask(f, f, None) is None
    with pytest.raises(ValueError, match="must hold a block"):
        TimeMask(block=3, window=3, sink=1)


def _measured(kind: str, agents: int, L: int = 16, Lh: int = 4) -> int:
    (qa, ka, va), (qh, kh, vh) = _qkv(1, agents, L, Lh, H=2, d=8)
    # The math kernel runs as matmuls, which the counter sees (the fused CPU kernel it does not).
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        if kind == "hub":
            hub_attend(qa, ka, va, qh, kh, vh)
        else:
            dense_attend(qa, ka, va)
    return counter.get_total_flops()


def test_hub_cost_is_linear_in_agents_and_dense_is_quadratic() -> None:
    for agents in (2, 4, 8):
        for kind in ("hub", "dense"):
            hubs = 4 if kind == "hub" else 0
            expected = attention_flops(kind, agents, frames=4, patches=4, hubs=hubs // 4, dim=16)
            assert _measured(kind, agents) == expected  # the formula counts what really runs
    hub = [attention_flops("hub", a, 8, 16, 4, 128) for a in (2, 4, 8)]
    dense = [attention_flops("dense", a, 8, 16, 0, 128) for a in (2, 4, 8)]
    assert hub[2] / hub[1] == pytest.approx(2, rel=0.05) and dense[2] / dense[1] == 4
    assert hub[2] < dense[2] / 5  # 8 agents: hubs cost about a fifth


def test_config_refuses_unknown_kinds() -> None:
    with pytest.raises(ValueError, match="'hub' or 'dense'"):
        AttentionConfig(kind="sparse")


def test_kv_cache_sinks_stay_while_the_ring_rolls_past_them() -> None:
    cache = KVCache(batch=1, layers=1, heads=1, head_dim=2, window=5, sink=2)
    for t in range(10):
        k = torch.full((1, 1, 1, 2), float(t))
        cache.write(0, k, k)
        cache.advance()
    assert sorted(cache.k[0][0, 0, :, 0].tolist()) == [0.0, 1.0, 7.0, 8.0, 9.0]
    # A block of 2 written without advancing overwrites the 2 oldest ring entries (7, 8), never the sinks.
    k = torch.full((1, 1, 2, 2), 99.0)
    _, _, mask = cache.write(0, k, k, causal=False)
    assert sorted(cache.k[0][0, 0, :, 0].tolist()) == [0.0, 1.0, 9.0, 99.0, 99.0]
    assert mask.all()  # every new token sees the whole block and every valid entry
    with pytest.raises(ValueError, match="resets all rows at once"):
        cache.reset(torch.tensor([True]))
    cache.reset()
    assert cache.written == 0 and not cache.valid.any()
