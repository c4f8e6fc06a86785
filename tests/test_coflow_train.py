"""scripts/train_coflow.py with a tiny budget, as a user runs it: a run directory, a checkpoint
that plays in the dataset's env, and a resumed run that ends where an uninterrupted one does."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import envs
from agents.coflow.config import CoFlowConfig
from agents.coflow.trainer import TrainerConfig
from agents.policies import make_policy
from agents.rollout import record
from envs.config import to_dict
from envs.policies import RandomPolicy
from envs.recording import RecordingWriter

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_coflow.py"
TINY = CoFlowConfig(horizon=4, width=8, dim_mults=(1, 2), emb_dim=16, groups=4, cva_heads=4, id_hidden=16)


def load_script():
    spec = importlib.util.spec_from_file_location("train_coflow", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_coflow"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def spread_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "spread-random"
    env = envs.make("mpe-spread", num_envs=2)
    meta = {"env": "mpe-spread", "config": to_dict(env.cfg), "policy": {"kind": "random"}}
    record(
        env, RandomPolicy(env.act_dim), RecordingWriter(out, meta, ["privileged"]), 4, ["privileged"], progress=False
    )
    return out


def run(script, dataset, run_dir, steps, resume=False, algo="coflow-c"):
    train = TrainerConfig(steps=steps, batch_size=4, log_every=2, save_every=1, ema_start=2, ema_every=1)
    cfg = script.TrainCoFlow(dataset=dataset, algo=algo, model=TINY, train=train, run_dir=run_dir, resume=resume)
    threads = torch.get_num_threads()
    try:
        return script.main(cfg)
    finally:
        torch.set_num_threads(threads)  # the script sets the process's; the other tests keep theirs


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(spread_dataset, tmp_path):
    script = load_script()
    whole = run(script, spread_dataset, tmp_path / "whole", 6)
    assert {"config.json", "metrics.jsonl", "tb", "checkpoint"} <= {p.name for p in whole.iterdir()}
    part = run(script, spread_dataset, tmp_path / "part", 4)
    with pytest.raises(SystemExit, match="already holds a run"):
        run(script, spread_dataset, part, 6)
    run(script, spread_dataset, part, 6, resume=True)
    a = load_file(str(whole / "checkpoint" / "policy.safetensors"))
    b = load_file(str(part / "checkpoint" / "policy.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert len((part / "metrics.jsonl").read_text().splitlines()) == 3  # iterations at steps 2, 4, 6


def test_the_checkpoint_plays_in_the_datasets_env(spread_dataset, tmp_path):
    run_dir = run(load_script(), spread_dataset, tmp_path / "d", 2, algo="coflow-d")
    env = envs.make("mpe-spread", num_envs=2)
    policy = make_policy(run_dir / "checkpoint", env)
    obs, *_ = env.step(policy(env.reset(seed=0)))
    assert obs["privileged"].shape == (2, 3, 18)


def test_a_dataset_that_does_not_fit_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="--dataset: .*not an egoteach recording"):
        run(load_script(), tmp_path, tmp_path / "r", 2)
