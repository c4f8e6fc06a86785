"""scripts/eval.py: env overrides over a checkpoint's config, and clear errors for bad ones."""

import pytest

from agents import evaluate as eval_script


def test_env_overrides_reach_the_env(tmp_path):
    import json

    # A value the env's own validation rejects: the override got as far as the env's config.
    with pytest.raises(ValueError, match="goal_width 5.0"):
        eval_script.evaluate(eval_script.EvalConfig(env="soccer-1v1", episodes=1, env_overrides='{"goal_width": 5.0}'))
    out = tmp_path / "r.json"
    short = eval_script.EvalConfig(
        env="soccer-1v1", episodes=4, num_envs=4, env_overrides='{"episode_seconds": 0.2, "nthread": 1}', json=out
    )
    eval_script.evaluate(short)
    assert json.loads(out.read_text())["env_overrides"] == {"episode_seconds": 0.2, "nthread": 1}


def test_env_overrides_win_over_the_checkpoints_config(tmp_path, monkeypatch):
    import envs

    ck = tmp_path / "ck"
    ck.mkdir()
    seen = {}

    def fake_env(path):
        return "egopush-line", {"observability": "fov", "memory_seconds": 60.0, "reward_scales": {"progress": 3.0}}

    def stop(name, **kwargs):
        seen.update(kwargs, name=name)
        raise KeyboardInterrupt  # no need to play: the env's arguments are what is checked

    monkeypatch.setattr(eval_script, "checkpoint_env", fake_env)
    monkeypatch.setattr(envs, "make", stop)
    with pytest.raises(KeyboardInterrupt):
        eval_script.evaluate(eval_script.EvalConfig(checkpoint=ck, env_overrides='{"memory_seconds": 5}'))
    assert seen["name"] == "egopush-line" and seen["observability"] == "fov"
    assert seen["memory_seconds"] == 5 and "reward_scales" not in seen  # the task's own rewards


@pytest.mark.parametrize("bad", ["{memory: 5}", "[1, 2]", '"fov"'])
def test_bad_env_overrides_fail_with_the_expected_form(bad):
    with pytest.raises(ValueError, match="--env-overrides must be a JSON object"):
        eval_script.evaluate(eval_script.EvalConfig(env="soccer-1v1", episodes=1, num_envs=1, env_overrides=bad))


def test_unknown_override_field_is_named():
    with pytest.raises(Exception, match="memory_secs"):
        eval_script.evaluate(eval_script.EvalConfig(env="egopush-line", episodes=1, env_overrides='{"memory_secs": 5}'))


def test_a_folder_that_is_not_a_checkpoint_is_named_without_a_traceback(tmp_path):
    empty = tmp_path / "not-a-checkpoint"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"--checkpoint: .*not-a-checkpoint is not a policy checkpoint"):
        eval_script.evaluate(eval_script.EvalConfig(checkpoint=empty, episodes=1, num_envs=1))
    with pytest.raises(ValueError, match=r"--policy: .*not-a-checkpoint is not a policy checkpoint"):
        eval_script.evaluate(eval_script.EvalConfig(env="soccer-1v1", policy=str(empty), episodes=1, num_envs=1))
    with pytest.raises(ValueError, match=r"--opponent: .*not-a-checkpoint is not a policy checkpoint"):
        eval_script.evaluate(eval_script.EvalConfig(env="soccer-1v1", opponent=str(empty), episodes=1, num_envs=1))
