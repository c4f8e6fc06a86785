"""Config values are checked for type and range when the env is made, naming the field; no value a
user typed reaches the MJCF as text; ``num_envs`` must be a whole number of worlds."""

import dataclasses
import json
from pathlib import Path

import pytest

import envs
from envs.egopush import EgoPushConfig
from envs.egopush import scene as egopush_scene
from envs.soccer import SoccerConfig
from envs.soccer import scene as soccer_scene

# (env, field, bad value, what the error must say)
SOCCER_BAD = [
    ("timestep", 0.0, r"timestep must be a number > 0"),
    ("timestep", -0.01, r"timestep must be a number > 0"),
    ("timestep", "0.01", r"timestep must be a number, got '0.01'"),
    ("episode_seconds", -5.0, r"episode_seconds must be a number > 0"),
    ("max_speed", float("nan"), r"max_speed must be a finite number"),
    ("max_speed", -1.0, r"max_speed must be a number >= 0"),
    ("max_turn", float("inf"), r"max_turn must be a finite number"),
    ("nthread", -1, r"nthread must be an integer >= 0"),
    ("nthread", 1.5, r"nthread must be an integer, got 1.5"),
    ("n_substeps", 0, r"n_substeps must be an integer >= 1"),
    ("n_substeps", True, r"n_substeps must be an integer, got True"),
    ("team_size", "2", r"team_size must be an integer"),
    ("team_size", 1.0, r"team_size must be an integer"),
    ("goal_width", None, r"goal_width must be a number, got None"),
    ("pitch_length", (4.0, 5.0, 6.0), r"pitch_length must be a pair"),
    ("pitch_length", (float("nan"), 6.0), r"pitch_length\[0\] must be a finite number"),
    ("camera_resolution", (64,), r"camera_resolution must be a pair"),
    ("camera_resolution", (64.0, 64), r"camera_resolution\[0\] must be an integer"),
    ("camera_resolution", (64, 0), r"camera_resolution\[1\] must be an integer >= 1"),
    ("camera_fovy", "80", r"camera_fovy must be a number"),
    ("on_goal", 1, r"on_goal must be one of \('terminate', 'kickoff'\)"),
    ("observability", "GLOBAL", r"observability must be one of \('global', 'fov'\)"),
    ("cameras", "rgb", r"cameras must be a tuple of names"),
    ("cameras", ("rgb", 3), r"cameras must be among"),
    ("reward_scales", {"goal": float("nan")}, r"reward_scales.goal must be a finite number"),
    ("reward_scales", {"goal": "1"}, r"reward_scales.goal must be a number"),
]

EGOPUSH_BAD = [
    ("timestep", 0, r"timestep must be a number > 0"),
    ("episode_seconds", -1.0, r"episode_seconds must be a number > 0"),
    ("max_speed", float("nan"), r"max_speed must be a finite number"),
    ("position_tolerance", -0.1, r"position_tolerance must be a number >= 0"),
    ("yaw_tolerance", -0.3, r"yaw_tolerance must be a number >= 0"),
    ("yaw_tolerance", "0.3", r"yaw_tolerance must be a number"),
    ("reach_distance", float("inf"), r"reach_distance must be a finite number"),
    ("stage_seconds", 0.0, r"stage_seconds must be a number > 0"),
    ("camera_range", -3.0, r"camera_range must be a number >= 0"),
    ("gate_fraction", float("nan"), r"gate_fraction must be a finite number"),
    ("memory_seconds", -1.0, r"memory_seconds must be a number >= 0"),
    ("nthread", -2, r"nthread must be an integer >= 0"),
    ("n_boxes", 3.0, r"n_boxes \(task 'line'\) must be an integer"),
    ("n_boxes", 9, r"n_boxes \(task 'line'\) must be an integer 2 to 4"),
    ("arena_half", "2", r"arena_half must be a number"),
    ("task", ["line"], r"task must be one of \('goal', 'line', 'cross'\)"),
    ("anchor_marker", "yes", r"anchor_marker must be true or false"),
    ("room_keypoints", 1, r"room_keypoints must be true or false"),
    ("camera_resolution", (32, 32.5), r"camera_resolution\[1\] must be an integer"),
    ("reward_scales", {"knock": float("-inf")}, r"reward_scales.knock must be a finite number"),
]


@pytest.mark.parametrize(("field", "value", "message"), SOCCER_BAD)
def test_a_bad_soccer_value_is_refused_naming_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        envs.make("soccer-1v1", num_envs=1, **{field: value})


@pytest.mark.parametrize(("field", "value", "message"), EGOPUSH_BAD)
def test_a_bad_egopush_value_is_refused_naming_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        envs.make("egopush-line", num_envs=1, **{field: value})


@pytest.mark.parametrize("num_envs", ["8", 1.5, 0, -3, True, None])
def test_num_envs_must_be_a_positive_integer(num_envs):
    with pytest.raises(ValueError, match="num_envs must be an integer"):
        envs.make("soccer-1v1", num_envs=num_envs)


def test_defaults_presets_and_shipped_configs_stay_valid():
    for name in envs.registered():
        for preset in [None, *envs.presets(name)]:
            envs.config_for(name, preset)
    checked = 0
    for path in sorted((Path(__file__).parents[2] / "checkpoints").glob("*/policy.json")):
        meta = json.loads(path.read_text())
        cfg = _find(meta, "env_config")
        envs.config_for(meta["env"], **cfg)  # lists become tuples, as when a checkpoint is loaded
        checked += 1
    assert checked >= 10
    # Numbers of the other kind where that is exact, and numpy scalars, stay accepted.
    import numpy as np

    SoccerConfig(timestep=np.float32(0.01), max_speed=2, team_size=np.int64(2), camera_resolution=[32, 48])
    EgoPushConfig(episode_seconds=1, yaw_tolerance=0.3, anchor_marker=np.bool_(True))
    envs.make("soccer-1v1", num_envs=np.int64(2), max_speed=0)  # a standing team: odd, but well defined


def _find(tree, key):
    if isinstance(tree, dict):
        if key in tree:
            return tree[key]
        for value in tree.values():
            found = _find(value, key)
            if found is not None:
                return found
    return None


def test_checks_run_on_every_copy_of_a_config():
    with pytest.raises(ValueError, match="timestep"):
        dataclasses.replace(SoccerConfig(), timestep=float("nan"))
    with pytest.raises(ValueError, match="reward_scales.progress"):
        dataclasses.replace(EgoPushConfig().reward_scales, progress=float("nan"))


CRAFTED = '0.01"/><include file="/etc/hostname"/><option timestep="0.01'


def test_no_string_reaches_the_mjcf():
    """A crafted string in a numeric field once made MuJoCo open a file outside the project."""
    with pytest.raises(ValueError, match="timestep must be a number"):
        envs.make("soccer-1v1", num_envs=1, timestep=CRAFTED)
    with pytest.raises(ValueError, match="timestep must be a number"):
        envs.make("egopush-goal", num_envs=1, timestep=CRAFTED)
    # The scene builders refuse it themselves, whoever calls them.
    with pytest.raises(ValueError, match="timestep must be a number"):
        soccer_scene.build_xml(1, 3.0, 2.0, 0.6, CRAFTED, 1.5, 4.0)
    with pytest.raises(ValueError, match="max_speed must be a number"):
        egopush_scene.build_xml(3, 2.0, 0.01, CRAFTED, 2.0)
    with pytest.raises(ValueError, match="anchor_marker must be true or false"):
        egopush_scene.build_xml(3, 2.0, 0.01, 0.5, 2.0, CRAFTED)
