"""Named training presets: typed changes of an env's config, applied before the overrides."""

import pytest

import envs


def test_presets_change_the_config_and_overrides_go_on_top():
    base = envs.config_for("egopush-line")
    trained = envs.config_for("egopush-line", preset="train")
    assert (base.reward_scales.approach, trained.reward_scales.approach) == (0.0, 1.0)
    assert (trained.reward_scales.progress, trained.reward_scales.time) == (3.0, 0.001)
    ka = envs.config_for("egopush-line", preset="knock_anchor_memory", reward_scales={"knock": 0.5})
    assert (ka.reward_scales.knock, ka.reward_scales.anchor, ka.reward_scales.approach) == (0.5, 1.0, 1.0)
    assert ka.memory_seconds == 60.0 and base.memory_seconds == 0.0
    soccer = envs.config_for("soccer-2v2", preset="train")
    assert (soccer.reward_scales.goal, soccer.team_size) == (10.0, 2)


def test_an_unknown_preset_names_the_valid_ones():
    assert envs.presets("egopush-goal") == ["knock_anchor", "knock_anchor_memory", "train"]
    with pytest.raises(ValueError, match=r"unknown preset 'knock' for egopush-goal; its presets: \['knock_anchor'"):
        envs.make("egopush-goal", num_envs=1, preset="knock")
