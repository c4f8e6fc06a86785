"""The world model's transformer and its causal student: equivariance over agents, the
block-causal mask, hubs as the only channel between agents, and the cache against a recompute."""

import pytest
import torch

from distill.world_model.attention import AttentionConfig
from distill.world_model.positions import PositionConfig
from distill.world_model.student import Student, StudentConfig, distill_loss
from distill.world_model.teacher import Teacher, WorldModelConfig


def _cfg(kind: str = "hub", hubs: int = 2, agents_kind: str = "simplex") -> WorldModelConfig:
    return WorldModelConfig(
        act_dim=3,
        latent_channels=4,
        latent_size=4,
        patch=2,
        dim=32,
        depth=2,
        heads=2,
        positions=PositionConfig(kind=agents_kind, pool=4, bands=(4, 6, 2, 4)),
        attention=AttentionConfig(kind=kind, hubs=hubs),
    )


def _scramble(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights everywhere: the zero-initialised gates would make every test pass trivially."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return module.eval()


def _clip(B: int = 2, T: int = 6, A: int = 3, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x, tau = torch.randn(B, T, A, 4, 4, 4, generator=g), torch.rand(B, T, generator=g)
    return x, tau, torch.randn(B, T, A, 3, generator=g)


@pytest.mark.parametrize(("kind", "agents_kind"), [("hub", "simplex"), ("dense", "simplex"), ("hub", "slot")])
def test_swapping_two_agents_with_their_actions_and_ids_swaps_the_outputs(kind: str, agents_kind: str) -> None:
    net = _scramble(Teacher(_cfg(kind, agents_kind=agents_kind)).net)
    x, tau, act = _clip()
    ids = torch.tensor([[2, 0, 3], [1, 3, 0]])
    perm = [2, 1, 0]
    with torch.no_grad():
        out = net(x, tau, act, ids)
        swapped = net(x[:, :, perm], tau, act[:, :, perm], ids[:, perm])
    assert torch.allclose(swapped, out[:, :, perm], atol=1e-5)
    assert not torch.allclose(out[:, :, 0], out[:, :, 2], atol=1e-3)  # (the agents do differ)
    # Swapping the agents' data but not their identities is another input: outputs are not a swap.
    with torch.no_grad():
        data_only = net(x[:, :, perm], tau, act[:, :, perm], ids)
    assert not torch.allclose(data_only, out[:, :, perm], atol=1e-3)


@pytest.mark.parametrize("kind", ["hub", "dense"])
def test_a_later_block_cannot_change_an_earlier_one(kind: str) -> None:
    student = Student(_cfg(kind), StudentConfig(block=2, window=6, sink=2))
    net = _scramble(student.net)
    x, tau, act = _clip(T=6)
    ids = torch.tensor([[0, 1, 2]] * 2)
    later = x.clone()
    later[:, 4:] += torch.randn_like(later[:, 4:])  # the third block changes
    act2 = act.clone()
    act2[:, 4:] += 1.0
    with torch.no_grad():
        a = net(x, tau, act, ids, time=student.scfg.time)
        b = net(later, tau, act2, ids, time=student.scfg.time)
        full_a, full_b = net(x, tau, act, ids), net(later, tau, act2, ids)
    assert torch.allclose(a[:, :4], b[:, :4], atol=1e-6)
    assert not torch.allclose(a[:, 4:], b[:, 4:], atol=1e-3)
    assert not torch.allclose(full_a[:, :4], full_b[:, :4], atol=1e-3)  # the teacher's view is bidirectional


def test_an_agent_hears_others_only_through_the_hubs() -> None:
    x, tau, act = _clip()
    ids = torch.tensor([[0, 1, 2]] * 2)
    other = x.clone()
    other[:, :, 2] = torch.randn_like(other[:, :, 2])  # agent 2's frames change
    changed = {}
    for hubs in (0, 2):
        net = _scramble(Teacher(_cfg("hub", hubs=hubs)).net)
        with torch.no_grad():
            changed[hubs] = (net(x, tau, act, ids) - net(other, tau, act, ids))[:, :, :2].abs().max().item()
    assert changed[0] < 1e-6  # no hubs: agents 0 and 1 are blind to agent 2
    assert changed[2] > 1e-3  # with hubs they hear it (through the hubs: no other path exists)


def _student(kind: str, window: int = 6, sink: int = 2) -> Student:
    teacher = Teacher(_cfg(kind))
    _scramble(teacher)
    return Student.from_teacher(teacher, StudentConfig(block=2, window=window, sink=sink, steps=2)).eval()


@pytest.mark.parametrize(("kind", "sink"), [("hub", 2), ("dense", 2), ("hub", 0)])
def test_cached_rollout_equals_a_full_recompute_across_evictions(kind: str, sink: int) -> None:
    student = _student(kind, window=6, sink=sink)
    x, _, act = _clip(B=2, T=12)
    runs = {}
    for mode in ("cache", "full", "window"):
        runs[mode] = student.rollout(x[:, :2], act, torch.Generator().manual_seed(5), mode=mode)
    assert runs["cache"].shape == (2, 12, 3, 4, 4, 4)
    # 12 frames through a window of 6: the oldest non-sink frames are evicted from frame 6 on.
    assert torch.allclose(runs["cache"], runs["full"], atol=1e-4), (runs["cache"] - runs["full"]).abs().max()
    # Recomputing only the window agrees until the first eviction, not after (deeper layers differ).
    assert torch.allclose(runs["cache"][:, :6], runs["window"][:, :6], atol=1e-4)
    assert not torch.allclose(runs["cache"][:, 8:], runs["window"][:, 8:], atol=1e-3)


def test_the_student_starts_as_the_teacher_and_differs_only_by_its_mask() -> None:
    student = _student("hub")
    teacher = Teacher(student.cfg)
    teacher.net.load_state_dict(student.net.state_dict())
    x, tau, act = _clip()
    ids = torch.tensor([[0, 1, 2]] * 2)
    with torch.no_grad():
        assert torch.equal(student.net(x, tau, act, ids), teacher.net(x, tau, act, ids))


def test_diffusion_forcing_draws_one_flow_time_per_block_and_keeps_the_context_clean() -> None:
    student = Student(_cfg("hub"), StudentConfig(block=2, window=6, sink=2))
    tau = student.block_taus(64, 7, torch.Generator().manual_seed(0))
    assert (tau[:, :2] == 0).all()
    assert torch.equal(tau[:, 2], tau[:, 3]) and torch.equal(tau[:, 4], tau[:, 5])
    assert (tau[:, 3] != tau[:, 4]).all() and (tau[:, 5] != tau[:, 6]).all()  # independent per block
    assert (tau[:, 2:] > 0).all() and (tau <= 1).all()
    x, _, act = _clip(B=2, T=7)
    loss = student.loss(x, act, torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and student.net.out.weight.grad.abs().sum() > 0


def test_more_agents_than_the_pool_is_refused_naming_the_limit() -> None:
    student = _student("hub")
    x, _, act = torch.randn(1, 2, 5, 4, 4, 4), None, torch.randn(1, 6, 5, 3)
    with pytest.raises(ValueError, match="at most 4"):
        student.rollout(x, act)


def test_context_must_be_whole_blocks() -> None:
    student = _student("hub")
    with pytest.raises(ValueError, match="whole number"):
        student.rollout(torch.randn(1, 3, 2, 4, 4, 4), torch.randn(1, 6, 2, 3))


def test_few_step_distillation_brings_two_steps_to_where_sixteen_land() -> None:
    base = _scramble(Student(_cfg(), StudentConfig(block=2, window=6, sink=2, steps=2)))
    reference = Student(base.cfg, StudentConfig(block=2, window=6, sink=2, steps=16))
    reference.load_state_dict(base.state_dict())
    reference.requires_grad_(False)
    frozen = {k: v.clone() for k, v in reference.state_dict().items()}
    student = Student(base.cfg, base.scfg)
    student.load_state_dict(base.state_dict())
    latents, actions = torch.randn(4, 6, 2, 4, 4, 4), torch.rand(4, 6, 2, 3) * 2 - 1

    def gap() -> float:  # held-out noise: the same draws before and after
        with torch.no_grad():
            draws = [torch.Generator().manual_seed(100 + k) for k in range(4)]
            return sum(float(distill_loss(student, reference, latents, actions, g)) for g in draws) / 4

    before = gap()
    assert before > 0.1  # two Euler steps of a curved field land elsewhere than sixteen
    opt = torch.optim.Adam(student.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(40):  # on other clips and noise than the held-out ones
        loss = distill_loss(
            student, reference, torch.randn(4, 6, 2, 4, 4, 4, generator=g), torch.rand(4, 6, 2, 3) * 2 - 1, g
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert gap() < 0.3 * before
    assert all(torch.equal(v, frozen[k]) for k, v in reference.state_dict().items())  # the target stays put
