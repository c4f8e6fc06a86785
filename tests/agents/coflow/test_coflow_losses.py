"""CoFlow's objective: the finite-difference surrogate against MeanFlow's exact (JVP) target, the
(r, t) draw, condition dropout and the conditioning masks."""

import pytest
import torch
from torch.func import jvp

from agents.coflow.config import for_algo
from agents.coflow.losses import condition_mask, flow_loss, sample_times, surrogate_velocity


def u_field(z: torch.Tensor, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A smooth analytic averaged-velocity field u(z, r, t), elementwise."""
    return torch.sin(z) * t**2 + r * z * t + torch.cos(3 * t) * z**2


def meanflow_exact(x0, noise, r, t):
    """MeanFlow's target velocity u + (t - r) du/dt, du/dt by a Jacobian-vector product along the path."""
    z_t = (1 - t) * x0 + t * noise
    u, dudt = jvp(lambda z, tt: u_field(z, r, tt), (z_t, t), (noise - x0, torch.ones_like(t)))
    return u + (t - r) * dudt


def same_point_surrogate(u, x0, noise, r, t, mask):
    """The tempting shortcut: both passes at z_t (it misses the dz/dt . grad_z u term)."""
    z_t = (1 - t) * x0 + t * noise
    u_t = u(z_t, r, t)
    return u_t + (u_t - u(z_t, r, r)).detach(), u_t


def surrogate_errors(fn) -> list[float]:
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(64, generator=g, dtype=torch.float64), torch.randn(64, generator=g, dtype=torch.float64)
    t = torch.full((64,), 0.6, dtype=torch.float64)
    out = []
    for h in (0.08, 0.04, 0.02):
        V, _ = fn(u_field, x0, noise, t - h, t, None)
        out.append((V - meanflow_exact(x0, noise, t - h, t)).abs().max().item())
    return out


def test_surrogate_matches_the_jvp_target_to_first_order():
    errors = surrogate_errors(surrogate_velocity)
    # The error is O((t - r)^2): halving t - r quarters it, so error / (t - r) -> 0.
    for big, small in zip(errors, errors[1:], strict=False):
        assert 0.2 < small / big < 0.3, errors
    # The same check catches a surrogate that is wrong at first order: its error only halves.
    naive = surrogate_errors(same_point_surrogate)
    assert 0.4 < naive[-1] / naive[-2] < 0.6, naive


def test_surrogate_is_plain_flow_matching_at_r_equal_t():
    x0, noise = torch.randn(8), torch.randn(8)
    t = torch.rand(8)
    V, u = surrogate_velocity(u_field, x0, noise, t, t, None)
    assert torch.equal(V, u)


def test_gradient_flows_through_the_pass_at_r_t_only():
    w = torch.tensor(2.0, requires_grad=True)
    x0, noise = torch.zeros(4), torch.ones(4)
    r, t = torch.full((4,), 0.2), torch.full((4,), 0.7)
    V, _ = surrogate_velocity(lambda z, r_, t_: w * z * t_, x0, noise, r, t, None)
    V.sum().backward()
    # V = w z_t t + sg[...]: dV/dw = z_t * t = 0.7 * 0.7 per element.
    assert w.grad.item() == pytest.approx(4 * 0.49)


def test_times_are_ordered_logit_normal_with_half_equal():
    cfg = for_algo("coflow-c")
    r, t = sample_times(4000, cfg, torch.Generator().manual_seed(1))
    assert (r <= t).all() and ((r > 0) & (t < 1)).all()
    assert (r == t).float().mean().item() == pytest.approx(0.5, abs=0.03)
    # Without the surrogate every sample is r = t.
    r, t = sample_times(100, for_algo("flow"), torch.Generator().manual_seed(1))
    assert torch.equal(r, t)


def test_condition_masks_of_c_and_d():
    g = torch.Generator().manual_seed(0)
    c = condition_mask(5, 4, 3, decentralised=False, generator=g)
    assert c[:, 0].all() and not c[:, 1:].any()
    d = condition_mask(500, 4, 3, decentralised=True, generator=g)
    assert (d[:, 0].sum(1) == 1).all() and not d[:, 1:].any()  # one agent's own observation each
    assert set(d[:, 0].float().argmax(1).tolist()) == {0, 1, 2}


class Recorder(torch.nn.Module):
    """A fake velocity network that records what it is given."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, z, r, t, returns, keep):
        self.calls.append((z.clone(), keep.clone()))
        return torch.zeros_like(z)


def test_condition_is_really_dropped_in_training_and_the_given_step_is_clean():
    cfg = for_algo("coflow-c", cond_drop=0.25)
    net = Recorder()
    x0 = torch.randn(2000, 4, 3, 2)
    flow_loss(net, x0, torch.zeros(2000, 3), cfg, torch.Generator().manual_seed(0))
    (z_t, keep_t), (z_r, keep_r) = net.calls
    assert torch.equal(keep_t, keep_r)  # the same samples are unconditional in both passes
    assert set(keep_t.tolist()) == {0.0, 1.0}
    assert (keep_t == 0).float().mean().item() == pytest.approx(0.25, abs=0.03)
    assert torch.equal(z_t[:, 0], x0[:, 0]) and torch.equal(z_r[:, 0], x0[:, 0])  # in-painted, not noised
