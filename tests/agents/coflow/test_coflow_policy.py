"""CoFlow's data, sampling and policies: segments and returns-to-go from a recording, in-painting,
CoFlow-D's masking, and checkpoints that ``make_policy`` loads."""

from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch

import agents  # noqa: F401  (registers the coflow kind)
from agents.checkpoint import CheckpointError
from agents.coflow import CoFlowModel, CoFlowPolicy, SegmentDataset, for_algo, save_model
from agents.coflow.dataset import returns_to_go
from agents.coflow.sampler import sample_plan
from agents.policies import make_policy
from envs.recording import RecordingError, RecordingWriter

SMALL = dict(horizon=4, width=8, dim_mults=(1, 2), emb_dim=16, groups=4, cva_heads=4, id_hidden=16)


def write_recording(path, lengths=(3, 5), A=2, D=3):
    """Episodes whose observation of agent a at step t is [t, a, 10 e] and reward 1 per step."""
    w = RecordingWriter(path, {"env": "toy", "config": {}, "policy": {"kind": "random"}}, ["privileged"])
    for e, T in enumerate(lengths):
        obs = np.zeros((T + 1, A, D), dtype=np.float32)
        obs[..., 0] = np.arange(T + 1)[:, None]
        obs[..., 1] = np.arange(A)[None]
        obs[..., 2] = 10 * e
        ep = {
            "actions": np.full((T, A, 2), 0.5, dtype=np.float32),
            "rewards": np.ones((T, A), dtype=np.float32),
            "terminated": np.zeros(T, bool),
            "truncated": np.arange(T) == T - 1,
            "teleported": np.zeros(T, bool),
            "obs/privileged": obs,
        }
        w.add(ep, {"return": [float(T)] * A})
    w.close()
    return path


def test_returns_to_go_by_hand():
    rtg = returns_to_go(np.array([[1.0], [2.0], [3.0]]), 0.5)
    assert rtg[:, 0].tolist() == [1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3.0]


def test_segments_pad_past_the_end_and_mark_real_transitions(tmp_path):
    rec = write_recording(tmp_path / "rec")
    ds = SegmentDataset(rec, horizon=4, discount=1.0, return_scale=5.0)
    assert len(ds) == 3 + 5 and ds.agent_steps == (3 + 5) * 2
    assert ds.return_offset == 0.0
    auto = SegmentDataset(rec, horizon=4, discount=1.0)
    assert (auto.return_offset, auto.return_scale) == (1.0, 4.0)  # returns-to-go 1..5 onto [0, 1]
    assert auto.rtg[1, 0, 0] == 1.0 and auto.rtg[1, 4, 0] == 0.0
    b = ds.sample(256, torch.Generator().manual_seed(0))
    assert b.obs.shape == (256, 4, 2, 3) and b.actions.shape == (256, 4, 2, 2) and b.returns.shape == (256, 2)
    short = b.obs[:, 0, 0, 2] == 0  # episode 0 (T = 3)
    start = b.obs[:, 0, 0, 0]
    # Steps run on from the start and stop at T (the final observation repeated).
    T = torch.where(short, 3.0, 5.0)
    expected = torch.minimum(start[:, None] + torch.arange(4), T[:, None])
    assert torch.equal(b.obs[:, :, 0, 0], expected)
    assert torch.equal(b.valid, start[:, None] + torch.arange(4) < T[:, None])
    assert torch.equal(b.actions[..., 0] != 0, b.valid[:, :, None].expand(-1, -1, 2))
    torch.testing.assert_close(b.returns[:, 0], (T - start) / 5.0)  # undiscounted rewards of 1


def test_a_recording_that_does_not_fit_is_refused_by_name(tmp_path):
    rec = write_recording(tmp_path / "rec")
    with pytest.raises(RecordingError, match="no observation group 'proprio'"):
        SegmentDataset(rec, horizon=4, obs_group="proprio")
    with pytest.raises(RecordingError, match="of env 'toy', expected 'mpe-spread'"):
        SegmentDataset(rec, horizon=4, env="mpe-spread")
    with pytest.raises(ValueError, match="out of range"):
        SegmentDataset(rec, horizon=4, agents=(0, 2))
    assert SegmentDataset(rec, horizon=4, agents=(1,)).n_agents == 1


def small_model(algo="coflow-c", gates=0.5, **over):
    torch.manual_seed(0)
    model = CoFlowModel(for_algo(algo, **{**SMALL, **over}), obs_dim=3, act_dim=2, n_agents=3)
    with torch.no_grad():
        for g in model.unet.gates() if algo != "bc" else []:
            g.fill_(gates)  # coupled agents: what must be masked would leak
    return model.eval()


@pytest.mark.parametrize("steps,guidance", [(1, 1.0), (3, 1.2)])
def test_the_inpainted_current_observation_comes_out_exactly_as_given(steps, guidance):
    net = small_model().unet
    given = torch.randn(4, 3, 3) * 7
    mask = torch.tensor([[True, True, True], [True, False, True], [False, False, True], [True, True, True]])
    plan = sample_plan(net, given, mask, 4, torch.ones(4, 3), steps, guidance, True, torch.Generator().manual_seed(0))
    assert plan.shape == (4, 4, 3, 3)
    assert torch.equal(plan[:, 0][mask], given[mask])
    assert not torch.isclose(plan[:, 0][~mask], given[~mask]).any()  # generated, not copied


def act_with(model, obs, seed=0):
    return CoFlowPolicy(model, seed=seed)({"privileged": obs})


def test_coflow_d_each_agent_ignores_the_others_observations():
    model = small_model("coflow-d")
    obs = torch.randn(2, 3, 3)
    other = obs.clone()
    other[0, 2] += 5.0  # agent 2 of world 0 sees something else
    a, b = act_with(model, obs), act_with(model, other)
    assert a.shape == (2, 3, 2)
    torch.testing.assert_close(a[0, :2], b[0, :2], rtol=0, atol=1e-6)  # agents 0 and 1 cannot know
    torch.testing.assert_close(a[1], b[1], rtol=0, atol=1e-6)  # nor can world 1
    assert (a[0, 2] - b[0, 2]).abs().max() > 1e-4  # agent 2 acts on what it sees


def test_coflow_c_conditions_every_agent_on_every_observation():
    model = small_model("coflow-c")
    obs = torch.randn(2, 3, 3)
    other = obs.clone()
    other[0, 2] += 5.0
    a, b = act_with(model, obs), act_with(model, other)
    assert (a[0, 0] - b[0, 0]).abs().max() > 1e-5  # joint conditioning through CVA
    torch.testing.assert_close(a[1], b[1], rtol=0, atol=1e-6)  # worlds stay apart


def test_delta_std_is_the_spread_of_changes_within_episodes_by_hand(tmp_path):
    ds = SegmentDataset(write_recording(tmp_path / "rec"), horizon=4)
    # Feature 0 is the step t: changes h = 1..3 from every start, within an episode of T steps.
    changes = [h for T in (3, 5) for h in range(1, 4) for _ in range(T + 1 - h) for _a in range(2)]
    expected = np.std(np.array(changes) / ds.obs_std[0])
    got = ds.delta_std()
    np.testing.assert_allclose(got[0], expected, rtol=1e-5)
    assert got[1] == got[2] == np.float32(1e-3)  # constant within an episode: floored, not 0


def test_a_residual_plan_is_the_change_from_the_current_observation():
    model = small_model("coflow-c", residual=True)
    model.delta_std.copy_(torch.tensor([0.5, 2.0, 4.0]))
    x = torch.randn(5, 4, 3, 3)
    plan = model.to_plan(x)
    assert torch.equal(plan[:, 0], x[:, 0])  # the current observation itself (in-painted)
    torch.testing.assert_close(plan[:, 2], (x[:, 2] - x[:, 0]) / model.delta_std)
    torch.testing.assert_close(model._next(plan), x[:, 1])  # and back: the next observation
    assert torch.equal(small_model("coflow-c")._next(x), x[:, 1])  # the plain plan holds it as it is


def fake_env(name="mpe-spread", obs_dim=3, act_dim=2):
    space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
    return SimpleNamespace(name=name, observation_spaces={"privileged": space}, act_dim=act_dim, device="cpu")


@pytest.mark.parametrize("algo,residual", [("coflow-c", False), ("coflow-d", False), ("bc", False), ("flow", False),
                                           ("coflow-c", True)])  # fmt: skip
def test_a_checkpoint_round_trips_through_make_policy(tmp_path, algo, residual):
    model = small_model(algo, flow_steps=3, residual=residual)
    model.set_normaliser(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 2.0, 4.0]))
    if residual:
        model.delta_std.copy_(torch.tensor([0.5, 2.0, 4.0]))  # saved and loaded with the rest
    save_model(tmp_path / "ck", model, "mpe-spread", {"n_agents": 3}, return_scale=7.0, dataset="x")
    policy = make_policy(tmp_path / "ck", fake_env())
    obs = torch.randn(2, 3, 3)
    torch.testing.assert_close(policy({"privileged": obs}), act_with(model, obs), rtol=0, atol=0)
    with pytest.raises(CheckpointError, match="trained on 'mpe-spread', not 'soccer-2v2'"):
        make_policy(tmp_path / "ck", fake_env("soccer-2v2"))
    with pytest.raises(CheckpointError, match="size 3"):
        make_policy(tmp_path / "ck", fake_env(obs_dim=4))
