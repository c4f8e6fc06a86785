"""scripts/make_dataset.py with a tiny budget: graded recordings CoFlow's loader reads."""

import json

from conftest import run_script

from agents.coflow import SegmentDataset


def test_graded_datasets_are_recordings_whose_returns_follow_their_quality(tmp_path):
    qualities = ("expert", "medium-replay", "random")
    tiny = ("--episodes", "4", "--num-envs", "4", "--out", str(tmp_path))
    run = run_script("make_dataset.py", "--qualities", *qualities, *tiny)
    summary = json.loads((tmp_path / "datasets.json").read_text())["mpe-spread"]
    assert tuple(summary) == qualities
    for quality in qualities:
        s = summary[quality]
        assert s["path"] == str(tmp_path / f"mpe-spread-{quality}")
        assert f"mpe-spread-{quality}: 4 episodes, 300 agent-steps, mean return {s['mean_return']:.2f}" in run.stdout
        ds = SegmentDataset(s["path"], horizon=8, env="mpe-spread")
        assert ds.agent_steps == s["agent_steps"] == 4 * 25 * 3
    # A quality made alone is the same recording, and the summary keeps the others.
    again = tmp_path / "again"
    run_script("make_dataset.py", "--qualities", "random", *tiny[:-1], str(again))
    assert json.loads((again / "datasets.json").read_text())["mpe-spread"]["random"] == {
        **summary["random"],
        "path": str(again / "mpe-spread-random"),
    }
    run_script("make_dataset.py", "--qualities", "expert", *tiny[:-1], str(again))
    assert (
        json.loads((again / "datasets.json").read_text())["mpe-spread"]["expert"]["mean_return"]
        == (summary["expert"]["mean_return"])
    )
    assert tuple(json.loads((again / "datasets.json").read_text())["mpe-spread"]) == ("random", "expert")
    # (medium-replay against random is too close to call on 4 episodes: it starts as random)
    assert summary["expert"]["mean_return"] > max(
        summary["medium-replay"]["mean_return"], summary["random"]["mean_return"]
    )


def test_medium_replay_share_falls_with_finished_episodes_not_steps():
    # Soccer's episodes end at a goal: counted in steps, the share stayed near 1 over a whole
    # recording; counted in finished episodes it reaches the medium share as the quota fills.
    import torch

    from agents.rollout import FallingEpsilon

    def zeros(obs):
        return torch.zeros(64, 2, 3)

    policy = FallingEpsilon(zeros, final=0.2, episodes=10, seed=0)
    obs = {"privileged": torch.zeros(64, 2, 5)}
    random_share = []
    for finished in (0, 5, 10, 30):
        while policy.finished < finished:
            policy.episode_done(torch.tensor([True, False]))
        share = sum(float((policy(obs) != 0).any(-1).float().mean()) for _ in range(50)) / 50
        random_share.append(share)
    assert abs(random_share[0] - 1.0) < 0.02
    assert abs(random_share[1] - 0.6) < 0.05
    assert abs(random_share[2] - 0.2) < 0.05 and abs(random_share[3] - 0.2) < 0.05
    # Steps alone do not move it.
    fresh = FallingEpsilon(zeros, final=0.2, episodes=10, seed=0)
    for _ in range(500):
        fresh(obs)
    assert fresh.epsilon == 1.0
