"""``record.py`` stopped by Ctrl-C twice or by SIGTERM keeps a readable recording marked
``interrupted`` and says how many episodes it kept (issue 51, item 6)."""

import json
import os
import signal

import numpy as np
import pytest

import envs
from agents import record as record_mod
from envs.recording import Recording


class Terminated(Exception):
    """Raised by the test's own SIGTERM handler: a SIGTERM that record.py left unhandled."""


def _short_episodes_and(monkeypatch, on_call):
    """10-step episodes, and ``on_call(n)`` before the policy's n-th call."""
    make = envs.make
    monkeypatch.setattr(record_mod.envs, "make", lambda *a, **kw: make(*a, **kw, episode_seconds=0.5))
    real = record_mod.make_policy
    calls = {"n": 0}

    def make_policy(spec, env, seed=0):
        policy = real(spec, env, seed=seed)

        def wrapped(obs):
            calls["n"] += 1
            on_call(calls["n"])
            return policy(obs)

        return wrapped

    monkeypatch.setattr(record_mod, "make_policy", make_policy)


def _cfg(tmp_path):
    # 2 worlds, 10 steps an episode, 3 episodes a shard: a shard after the 2nd round, one left queued.
    return record_mod.RecordConfig(
        env="egopush-goal", policy="random", episodes=8, num_envs=2, episodes_per_shard=3, out=tmp_path / "r"
    )


def test_second_ctrl_c_while_writing_keeps_the_shards_written_and_counts_them(tmp_path, monkeypatch, capsys):
    def on_call(n):
        if n == 25:  # the 3rd round: 4 episodes finished, 3 in a shard, 1 queued
            raise KeyboardInterrupt

    _short_episodes_and(monkeypatch, on_call)
    real = np.savez_compressed
    saves = {"n": 0}

    def savez(file, **arrays):
        saves["n"] += 1
        real(file, **arrays)
        if saves["n"] == 2:  # the queued episode's shard: Ctrl-C again while it is written
            raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", savez)
    with pytest.raises(SystemExit) as stop:
        record_mod.record_rollouts(_cfg(tmp_path))
    monkeypatch.undo()
    assert stop.value.code == 130
    rec = Recording(tmp_path / "r")
    assert rec.manifest["status"] == "interrupted" and len(rec) == 3
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["manifest.json", "shard_00000.npz"]
    assert "SIGINT: 3 finished episodes kept" in capsys.readouterr().out


def test_sigterm_stops_the_recording_as_ctrl_c_does(tmp_path, monkeypatch, capsys):
    def unhandled(signum, frame):
        raise Terminated

    def on_call(n):
        if n == 25:
            os.kill(os.getpid(), signal.SIGTERM)

    _short_episodes_and(monkeypatch, on_call)
    previous = signal.signal(signal.SIGTERM, unhandled)
    try:
        with pytest.raises(SystemExit) as stop:
            record_mod.record_rollouts(_cfg(tmp_path))
        assert signal.getsignal(signal.SIGTERM) is unhandled  # put back as it was
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stop.value.code == 128 + signal.SIGTERM
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and len(Recording(tmp_path / "r")) == 4
    assert "SIGTERM: 4 finished episodes kept" in capsys.readouterr().out
