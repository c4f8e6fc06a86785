"""scripts/train_coflow.py with a tiny budget, as a user runs it: a run directory, a checkpoint
that plays in the dataset's env, and a resumed run that ends where an uninterrupted one does."""

import json
import re

import pytest
import torch
from conftest import run_script
from safetensors.torch import load_file

import envs
from agents.policies import make_policy
from agents.rollout import record
from envs.config import to_dict
from envs.policies import RandomPolicy
from envs.recording import RecordingWriter

TINY = (
    *("--model.horizon", "4", "--model.width", "8", "--model.dim-mults", "1", "2", "--model.emb-dim", "16"),
    *("--model.groups", "4", "--model.cva-heads", "4", "--model.id-hidden", "16"),
    *("--train.batch-size", "4", "--train.log-every", "2", "--train.save-every", "1"),
    *("--train.ema-start", "2", "--train.ema-every", "1"),
)


def record_spread(out):
    """Four episodes of random play in mpe-spread, recorded into ``out``."""
    env = envs.make("mpe-spread", num_envs=2)
    meta = {"env": "mpe-spread", "config": to_dict(env.cfg), "policy": {"kind": "random"}}
    record(
        env, RandomPolicy(env.act_dim), RecordingWriter(out, meta, ["privileged"]), 4, ["privileged"], progress=False
    )
    return out


@pytest.fixture(scope="module")
def spread_dataset(tmp_path_factory):
    return record_spread(tmp_path_factory.mktemp("data") / "spread-random")


def train(dataset, run_dir, steps, *flags, check=True):
    """train_coflow.py on ``dataset`` for ``steps`` steps with the tiny model, into ``run_dir``."""
    args = ("--dataset", str(dataset), "--run-dir", str(run_dir), "--train.steps", str(steps), *TINY, *flags)
    return run_script("train_coflow.py", *args, check=check)


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(spread_dataset, tmp_path):
    whole, part = tmp_path / "whole", tmp_path / "part"
    train(spread_dataset, whole, 6)
    assert {"config.json", "metrics.jsonl", "tb", "checkpoint"} <= {p.name for p in whole.iterdir()}
    train(spread_dataset, part, 4)
    refused = train(spread_dataset, part, 6, check=False)
    assert refused.returncode == 1 and "already holds a run" in refused.stderr
    train(spread_dataset, part, 6, "--resume")
    a = load_file(str(whole / "checkpoint" / "policy.safetensors"))
    b = load_file(str(part / "checkpoint" / "policy.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert len((part / "metrics.jsonl").read_text().splitlines()) == 3  # iterations at steps 2, 4, 6


def test_the_checkpoint_plays_in_the_datasets_env(spread_dataset, tmp_path):
    train(spread_dataset, tmp_path / "d", 2, "--algo", "coflow-d")
    env = envs.make("mpe-spread", num_envs=2)
    policy = make_policy(tmp_path / "d" / "checkpoint", env)
    obs, *_ = env.step(policy(env.reset(seed=0)))
    assert obs["privileged"].shape == (2, 3, 18)


def test_a_dataset_that_does_not_fit_is_refused(tmp_path):
    refused = train(tmp_path, tmp_path / "r", 2, check=False)
    assert refused.returncode == 1
    assert re.search("--dataset: .*not an egoteach recording", refused.stderr)
    assert not (tmp_path / "r").exists()


def test_the_cpu_preset_sets_the_defaults_and_flags_given_still_win(spread_dataset, tmp_path):
    flags = ("--train.batch-size", "4", "--train.log-every", "2", "--model.width", "8", "--model.groups", "4")
    run_script("train_coflow.py", "--dataset", str(spread_dataset), "--run-dir", str(tmp_path / "c"),
               "--preset", "cpu", "--train.steps", "2", *flags)  # fmt: skip
    cfg = json.loads((tmp_path / "c" / "config.json").read_text())
    assert cfg["preset"] == "cpu"
    assert (cfg["model"]["horizon"], cfg["model"]["dim_mults"], cfg["model"]["id_hidden"]) == (8, [1, 2], 128)
    assert (cfg["train"]["lr"], cfg["train"]["ema_start"], cfg["train"]["ema_every"]) == (1e-3, 500, 1)
    assert (cfg["model"]["width"], cfg["train"]["steps"], cfg["train"]["batch_size"]) == (8, 2, 4)  # the flags'
    refused = run_script("train_coflow.py", "--dataset", str(spread_dataset), "--preset", "gpu", check=False)
    assert refused.returncode == 2 and "invalid choice: 'gpu'" in refused.stderr
