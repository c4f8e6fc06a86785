"""scripts/eval_coflow.py with a tiny budget: one row per (k, alpha) setting, k reaching the sampler."""

import importlib.util
import json
import sys
from pathlib import Path

import torch

import envs
from agents.coflow import CoFlowModel, for_algo, save_model
from envs.config import to_dict

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "eval_coflow.py"
TINY = dict(horizon=4, width=8, dim_mults=(1, 2), emb_dim=16, groups=4, cva_heads=4, id_hidden=16)


def test_a_grid_of_k_and_alpha_is_evaluated_in_the_checkpoints_env(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("eval_coflow", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["eval_coflow"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    env = envs.make("mpe-spread", num_envs=1)
    model = CoFlowModel(for_algo("coflow-c", **TINY), 18, 5, 3)
    save_model(tmp_path / "ck", model, "mpe-spread", to_dict(env.cfg), 1.0)
    seen = []
    sample = module.CoFlowPolicy.__init__

    def spy(self, model, *args, **kwargs):
        seen.append(model.cfg.sample_steps)
        sample(self, model, *args, **kwargs)

    monkeypatch.setattr(module.CoFlowPolicy, "__init__", spy)
    threads = torch.get_num_threads()
    try:
        cfg = module.EvalCoFlow(
            checkpoint=tmp_path / "ck", steps=(1, 2), alpha=(0.0, 1.0), episodes=2, num_envs=2, json=tmp_path / "r.json"
        )
        module.main(cfg)
    finally:
        torch.set_num_threads(threads)  # the script sets the process's; the other tests keep theirs
    rows = json.loads((tmp_path / "r.json").read_text())
    assert [(r["steps"], r["alpha"]) for r in rows] == [(1, 0.0), (1, 1.0), (2, 0.0), (2, 1.0)]
    assert seen == [1, 1, 2, 2] and all(r["episodes"] == 2 for r in rows)
