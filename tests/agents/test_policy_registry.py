"""Policies of every kind resolve through one registry that each kind fills."""

import pytest
import torch

import envs
from agents import checkpoint
from agents.checkpoint import CheckpointError
from agents.policies import make_policy, register_policy_kind, registered_policy_kinds
from envs.egopush.scripted import ScriptedEgoPush
from envs.policies import RandomPolicy


def test_a_kind_registered_by_its_package_loads_through_make_policy(tmp_path):
    env = envs.make("egopush-goal", num_envs=2)
    checkpoint.save(tmp_path / "ck", {"w": torch.zeros(1)}, {"kind": "registry-test", "env": env.name})
    with pytest.raises(CheckpointError, match=r"'registry-test' checkpoint, and no loader is registered"):
        make_policy(tmp_path / "ck", env)
    marker = RandomPolicy(env.act_dim)
    register_policy_kind("registry-test", lambda path, e: marker)
    assert make_policy(tmp_path / "ck", env) is marker
    assert {"gaussian_mlp", "coflow", "registry-test"} <= set(registered_policy_kinds())
    import distill  # noqa: F401  (a layer above: it registers its own kind)

    assert "student" in registered_policy_kinds()
    with pytest.raises(ValueError, match="already registered"):
        register_policy_kind("registry-test", lambda path, e: None)


def test_fixed_names_resolve_to_the_tasks_own_players():
    env = envs.make("egopush-line", num_envs=1)
    assert isinstance(make_policy("scripted", env), ScriptedEgoPush)
    assert isinstance(make_policy("random", env), RandomPolicy)
    with pytest.raises(ValueError, match="does not exist"):
        make_policy("no-such-folder", env)
