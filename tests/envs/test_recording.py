"""Recorded rollouts: exact round trips, exact re-simulation, robustness, videos from them."""

import dataclasses
import hashlib
import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch

import envs
from agents.actor import GaussianActor
from agents.checkpoint import CheckpointError
from agents.policies import make_policy
from agents.rollout import TeamPolicy, record
from envs.config import to_dict
from envs.recording import Recording, RecordingError, RecordingWriter
from envs.resimulate import make_env, resimulate
from envs.video import SEPARATOR


def _meta(env, kind="scripted"):
    return {"env": env.name, "config": to_dict(env.cfg), "policy": {"kind": kind}, "seed": 0}


def _record_soccer(out, episodes=6, W=4, per_shard=4, **over):
    env = envs.make("soccer-1v1", num_envs=W, episode_seconds=3.0, on_goal="kickoff", **over)
    groups = ["privileged", "proprio"]
    writer = RecordingWriter(out, _meta(env), groups, episodes_per_shard=per_shard)
    policy = TeamPolicy(make_policy("scripted", env), make_policy("random", env), 1)
    n = record(env, policy, writer, episodes, groups, progress=False)
    return env, n


def test_writer_and_reader_round_trip_exactly(tmp_path):
    rng = np.random.default_rng(0)

    def episode(T):
        return {
            "actions": rng.uniform(-1, 1, (T, 2, 3)).astype(np.float32),
            "rewards": rng.normal(size=(T, 2)).astype(np.float32),
            "terminated": rng.random(T) < 0.1,
            "truncated": rng.random(T) < 0.1,
            "teleported": rng.random(T) < 0.1,
            "info/score": rng.integers(0, 5, (T, 2)),
            "obs/privileged": rng.normal(size=(T + 1, 2, 28)).astype(np.float32),
            "obs/camera": rng.integers(0, 255, (T + 1, 2, 3, 8, 8), dtype=np.uint8),
            "state/qpos": rng.normal(size=(T + 1, 13)),
            "fields/geom_pos": rng.normal(size=(21, 3)),
        }

    eps = [episode(T) for T in (5, 1, 9, 3, 7)]
    w = RecordingWriter(
        tmp_path / "r", {"env": "x", "config": {}, "policy": {"kind": "random"}}, ["privileged", "camera"], 2
    )
    for i, e in enumerate(eps):
        w.add(e, {"return": [float(i), 0.0]})
    w.close()
    rec = Recording(tmp_path / "r")
    assert len(rec) == 5 and rec.manifest["status"] == "complete" and len(rec.manifest["shards"]) == 3
    for i, e in enumerate(eps):
        got = rec.episode(i)
        assert set(got.data) == set(e)
        for k in e:
            assert got.data[k].dtype == e[k].dtype and np.array_equal(got.data[k], e[k]), k
        assert got.summary["return"] == [float(i), 0.0]


def test_recorded_rollouts_resimulate_exactly(tmp_path):
    env, n = _record_soccer(tmp_path / "soccer", episodes=6)
    rec = Recording(tmp_path / "soccer")
    assert n == 6 == len(rec)
    assert sum(e["length"] for e in rec.manifest["episodes"]) == sum(s["steps"] for s in rec.manifest["shards"])
    sim_env = make_env(rec)
    teleports = 0
    for ep in rec:
        assert np.isclose(ep.summary["return"][0], ep.data["rewards"][:, 0].sum(), atol=1e-5)
        teleports += int(ep.data["teleported"].sum())
        again = resimulate(sim_env, ep)
        for key, value in again.items():
            assert np.array_equal(value, ep.data[key]), (ep.index, key)  # bit for bit
    assert teleports > 0, "no goal was scored: the kick-off resync went untested"


def test_resimulation_detects_a_different_action(tmp_path):
    _record_soccer(tmp_path / "soccer", episodes=1, W=1)
    rec = Recording(tmp_path / "soccer")
    ep = rec.episode(0)
    ep.data["actions"][3, 0, 0] = -ep.data["actions"][3, 0, 0] + 0.5
    again = resimulate(make_env(rec), ep)
    assert not np.array_equal(again["state/qpos"], ep.data["state/qpos"])


def test_interrupted_recording_keeps_finished_shards(tmp_path):
    env = envs.make("egopush-goal", num_envs=2, episode_seconds=1.0)
    groups = ["privileged"]
    writer = RecordingWriter(tmp_path / "cut", _meta(env), groups, episodes_per_shard=2)
    base = make_policy("random", env)
    calls = {"n": 0}

    def policy(obs):
        calls["n"] += 1
        if calls["n"] == 20 * 3 + 5:  # 20 steps per episode: Ctrl-C during the 4th round
            raise KeyboardInterrupt
        return base(obs)

    with pytest.raises(KeyboardInterrupt):
        record(env, policy, writer, 20, groups, progress=False)
    rec = Recording(tmp_path / "cut")
    assert rec.manifest["status"] == "interrupted"
    assert len(rec) == 6  # 3 rounds x 2 worlds finished; the round in flight is lost
    for ep in rec:
        assert ep.length == 20 and ep.data["obs/privileged"].shape[0] == 21
    assert not list((tmp_path / "cut").glob("*.tmp*"))


def test_corrupted_or_truncated_shard_names_the_file(tmp_path):
    _record_soccer(tmp_path / "r", episodes=4, per_shard=2)
    shard = tmp_path / "r" / "shard_00001.npz"
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    rec = Recording(tmp_path / "r")
    rec.episode(0)  # the intact shard still reads
    with pytest.raises(RecordingError, match="shard_00001.npz"):
        rec.episode(2)
    # Even unverified, a truncated shard fails with its name rather than bad data.
    with pytest.raises(RecordingError, match="shard_00001.npz"):
        Recording(tmp_path / "r", verify=False).episode(2)


def test_reader_refuses_pickled_objects_and_foreign_manifests(tmp_path):
    _record_soccer(tmp_path / "r", episodes=2, per_shard=2)
    shard = tmp_path / "r" / "shard_00000.npz"
    with np.load(shard) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["actions"] = np.array([{"evil": "code"}] * len(arrays["actions"]), dtype=object)
    np.savez(shard, **arrays)  # an object array: only loadable by unpickling
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    manifest["shards"][0]["sha256"] = hashlib.sha256(shard.read_bytes()).hexdigest()
    (tmp_path / "r" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RecordingError, match="shard_00000.npz"):
        Recording(tmp_path / "r").episode(0)
    manifest["format"] = "something-else"
    (tmp_path / "r" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RecordingError, match="format"):
        Recording(tmp_path / "r")
    with pytest.raises(RecordingError, match="not found"):
        Recording(tmp_path / "nothing-here")


def test_replay_video_from_recording_has_every_frame(tmp_path):
    from agents import replay

    _record_soccer(tmp_path / "r", episodes=2, W=2)
    rec = Recording(tmp_path / "r")
    T = rec.episode(1).length
    _, gif = replay.replay(
        replay.ReplayConfig(recording=tmp_path / "r", episode=1, out=tmp_path / "v.gif", width=160, ego_size=40)
    )
    frames = iio.imread(gif, index=None)
    assert frames.shape == (T + 1, 120 + SEPARATOR + 40, 160, 3)
    _, mp4 = replay.replay(
        replay.ReplayConfig(recording=tmp_path / "r", episode=1, out=tmp_path / "v.mp4", width=320, ego_size=48)
    )
    frames = iio.imread(mp4)
    assert frames.shape[0] == T + 1 and frames.shape[1:3] == (240 + SEPARATOR + 48 + 14, 320)  # padded to 16s
    assert not list(tmp_path.glob("*.partial.*"))


def test_checkpoint_policies_record_and_refuse_the_wrong_env(tmp_path):
    env = envs.make("egopush-goal", num_envs=2, episode_seconds=0.5)
    obs_dim = env.observation_spaces["privileged"].shape[0]
    torch.manual_seed(0)
    actor = GaussianActor(obs_dim, env.act_dim, (32, 32))
    actor.save(tmp_path / "ckpt", env.name, to_dict(env.cfg))
    policy = make_policy(str(tmp_path / "ckpt"), env)
    obs = env.reset(seed=0)
    torch.testing.assert_close(policy(obs), actor(obs))  # the loaded weights are the saved ones
    writer = RecordingWriter(tmp_path / "rec", _meta(env, "checkpoint"), ["privileged"], 2)
    assert record(env, policy, writer, 2, ["privileged"], progress=False) == 2
    with pytest.raises(CheckpointError, match="egopush-goal"):
        make_policy(str(tmp_path / "ckpt"), envs.make("egopush-line", num_envs=1))
    (tmp_path / "ckpt" / "policy.safetensors").write_bytes(b"not weights")
    with pytest.raises(CheckpointError, match="does not match"):
        make_policy(str(tmp_path / "ckpt"), env)


def test_record_and_replay_scripts_smoke(tmp_path):
    from agents import record, replay

    out = record.record_rollouts(
        record.RecordConfig(
            env="egopush-goal",
            policy="scripted",
            episodes=2,
            num_envs=2,
            cameras=("depth_layers",),
            out=tmp_path / "push",
            action_noise=0.2,
            epsilon=0.1,
            label="medium",
        )
    )
    rec = Recording(out)
    ep = rec.episode(0)
    assert ep.data["obs/depth_layers"].shape[1:] == (1, 3, 64, 64) and ep.data["obs/depth_layers"].max() > 0
    assert rec.manifest["label"] == "medium" and rec.manifest["policy"] == {"kind": "scripted"}
    small = record.RecordConfig(
        env="egopush-goal", episodes=1, num_envs=1, cameras=("depth_layers",), out=tmp_path / "small",
        env_overrides='{"camera_resolution": [16, 16]}',
    )  # fmt: skip
    assert Recording(record.record_rollouts(small)).episode(0).data["obs/depth_layers"].shape[1:] == (1, 3, 16, 16)
    for bad in ("[1, 2]", "{camera"):
        with pytest.raises(ValueError, match="--env-overrides"):
            record.record_rollouts(dataclasses.replace(small, env_overrides=bad, out=tmp_path / "bad"))
    cfg = replay.ReplayConfig(env="egopush-goal", policy="scripted", seconds=0.5, out=tmp_path / "live.gif", width=160)
    frames = iio.imread(replay.replay(cfg)[1], index=None)
    assert frames.shape[0] == 11  # 0.5 s at 20 Hz: the start and 10 steps, the last one ending it
