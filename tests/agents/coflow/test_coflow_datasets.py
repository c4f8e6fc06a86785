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
    # (medium-replay against random is too close to call on 4 episodes: it starts as random)
    assert summary["expert"]["mean_return"] > max(
        summary["medium-replay"]["mean_return"], summary["random"]["mean_return"]
    )
