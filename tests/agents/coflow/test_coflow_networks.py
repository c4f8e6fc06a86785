"""CoFlow's U-Net: with every CVA gate at 0 the agents are independent; a gate couples them;
``alpha`` scales the coupling; the inverse dynamics is shared or per agent; the ``cpu`` preset's size."""

import pytest
import torch

from agents.coflow.config import CoFlowConfig, for_algo, preset_config
from agents.coflow.networks import InverseDynamics, TemporalUNet
from agents.coflow.policy import CoFlowModel

CFG = dict(horizon=8, width=8, dim_mults=(1, 2, 4), emb_dim=16, groups=4, cva_heads=4)


def net_and_inputs(**over):
    torch.manual_seed(0)
    net = TemporalUNet(5, for_algo("coflow-c", **{**CFG, **over})).eval()
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2, 8, 3, 5, generator=g)
    r, t, ret = torch.rand(2, generator=g) * 0.5, 0.5 + torch.rand(2, generator=g) * 0.5, torch.rand(2, 3, generator=g)
    return net, z, r, t, ret


def others_changed(z, ret):
    """Agents 1 and 2's inputs and return conditions replaced; agent 0's kept."""
    z2, ret2 = z.clone(), ret.clone()
    z2[:, :, 1:] = torch.randn_like(z2[:, :, 1:])
    ret2[:, 1:] += 3.0
    return z2, ret2


@torch.no_grad()
def test_with_every_gate_at_zero_an_agent_ignores_the_others():
    net, z, r, t, ret = net_and_inputs()
    assert len(net.gates()) == 4 and all(g.item() == 0.0 for g in net.gates())  # 3 skips + bottleneck
    z2, ret2 = others_changed(z, ret)
    a, b = net(z, r, t, ret), net(z2, r, t, ret2)
    torch.testing.assert_close(a[:, :, 0], b[:, :, 0], rtol=0, atol=1e-6)
    assert (a[:, :, 1:] - b[:, :, 1:]).abs().max() > 1e-3  # the others' outputs did change


@torch.no_grad()
def test_a_nonzero_gate_couples_the_agents_and_alpha_zero_uncouples_them():
    net, z, r, t, ret = net_and_inputs()
    net.gates()[-1].fill_(0.5)  # the bottleneck's CVA only
    z2, ret2 = others_changed(z, ret)
    assert (net(z, r, t, ret)[:, :, 0] - net(z2, r, t, ret2)[:, :, 0]).abs().max() > 1e-4
    net.alpha = 0.0
    torch.testing.assert_close(net(z, r, t, ret)[:, :, 0], net(z2, r, t, ret2)[:, :, 0], rtol=0, atol=1e-6)


@torch.no_grad()
def test_cva_off_has_no_gates_and_the_net_is_agent_permutation_equivariant():
    off, z, r, t, ret = net_and_inputs(cva=False)
    assert off.gates() == []
    net, *_ = net_and_inputs()
    for g in net.gates():
        g.fill_(0.7)
    perm = torch.tensor([2, 0, 1])
    # Shared weights and attention without positions: permuting agents permutes the output.
    torch.testing.assert_close(net(z[:, :, perm], r, t, ret[:, perm]), net(z, r, t, ret)[:, :, perm], atol=1e-5, rtol=0)


def test_the_unet_keeps_the_shape_and_learns():
    net, z, r, t, ret = net_and_inputs()
    net.train()
    out = net(z, r, t, ret, keep=torch.tensor([1.0, 0.0]))
    assert out.shape == z.shape
    out.pow(2).sum().backward()
    assert all(g.grad is not None for g in net.gates())  # the gates are trained


@torch.no_grad()
def test_inverse_dynamics_shared_or_one_per_agent():
    torch.manual_seed(0)
    o, o2 = torch.randn(4, 3, 5), torch.randn(4, 3, 5)
    shared = InverseDynamics(5, 2, 16, n_mlps=1)
    out = shared(o, o2)
    assert out.shape == (4, 3, 2)
    # Shared: agent 1's row through the MLP equals what agent 0 would get from the same inputs.
    swapped = shared(o[:, [1, 0, 2]], o2[:, [1, 0, 2]])
    torch.testing.assert_close(swapped[:, 0], out[:, 1])
    own = InverseDynamics(5, 2, 16, n_mlps=3)
    out = own(o, o2)
    swapped = own(o[:, [1, 0, 2]], o2[:, [1, 0, 2]])
    assert (swapped[:, 0] - out[:, 1]).abs().max() > 1e-4  # agent 0's MLP is not agent 1's


def test_the_cpu_preset_is_the_documented_size_and_an_unknown_preset_is_refused():
    model = CoFlowModel(preset_config("cpu", algo="coflow-c"), obs_dim=18, act_dim=5, n_agents=3)
    assert 155_000 < sum(p.numel() for p in model.parameters()) < 165_000  # "about 161k" (MODEL_PRESETS)
    assert preset_config("default") == CoFlowConfig()
    with pytest.raises(ValueError, match="preset must be one of"):
        preset_config("gpu")
