"""scripts/make_dataset.py with a tiny budget: graded recordings CoFlow's loader reads."""

import importlib.util
import json
import sys
from pathlib import Path

from agents.coflow import SegmentDataset

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_dataset.py"


def test_graded_datasets_are_recordings_whose_returns_follow_their_quality(tmp_path):
    spec = importlib.util.spec_from_file_location("make_dataset", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_dataset"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    cfg = module.MakeDataset(qualities=("expert", "medium-replay", "random"), episodes=4, num_envs=4, out=tmp_path)
    summary = module.main(cfg)
    assert json.loads((tmp_path / "datasets.json").read_text())["mpe-spread"] == summary
    for quality in cfg.qualities:
        ds = SegmentDataset(tmp_path / f"mpe-spread-{quality}", horizon=8, env="mpe-spread")
        assert ds.agent_steps == summary[quality]["agent_steps"] == 4 * 25 * 3
    # (medium-replay against random is too close to call on 4 episodes: it starts as random)
    assert summary["expert"]["mean_return"] > max(
        summary["medium-replay"]["mean_return"], summary["random"]["mean_return"]
    )
