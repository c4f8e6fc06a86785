"""A checkpoint's metadata is checked before anything is built from it (issue 51, item 4)."""

import json

import pytest
import torch

from agents.actor import GaussianActor
from agents.checkpoint import CheckpointError


@pytest.fixture
def teacher(tmp_path):
    torch.manual_seed(0)
    GaussianActor(10, 2, (8, 8)).save(tmp_path / "t", "egopush-goal", {"task": "goal"})
    return tmp_path / "t"


def _edit(path, **fields):
    meta = json.loads((path / "policy.json").read_text())
    meta.update(fields)
    (path / "policy.json").write_text(json.dumps(meta))


def test_a_huge_network_in_the_metadata_is_refused_before_it_is_allocated(teacher):
    _edit(teacher, hidden=[60_000, 60_000])  # 14 GB of float32, in a file of a few KB
    with pytest.raises(CheckpointError, match=r"describes 3,600,\d+,\d+ parameters"):
        GaussianActor.load(teacher)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"hidden": "256"}, "metadata 'hidden' is '256', expected a list of at most 16 integers"),
        ({"obs_dim": True}, "metadata 'obs_dim' is 'True', expected an integer in"),
        ({"obs_group": ["privileged"]}, "metadata 'obs_group' .* expected a string"),
    ],
)
def test_wrong_types_name_the_field(teacher, fields, message):
    _edit(teacher, **fields)
    with pytest.raises(CheckpointError, match=message):
        GaussianActor.load(teacher)


def test_a_missing_field_a_list_or_deep_nesting_is_a_clear_error(teacher):
    meta = json.loads((teacher / "policy.json").read_text())
    del meta["act_dim"]
    (teacher / "policy.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="its metadata has no 'act_dim'"):
        GaussianActor.load(teacher)
    (teacher / "policy.json").write_text("[1, 2, 3]")
    with pytest.raises(CheckpointError, match="holds a JSON list, expected an object"):
        GaussianActor.load(teacher)
    (teacher / "policy.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CheckpointError, match="nests too deeply"):
        GaussianActor.load(teacher)
