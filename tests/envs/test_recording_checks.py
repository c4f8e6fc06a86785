"""A recording's manifest is checked against its shards before anything is trusted, and a writer
stopped while it writes leaves a recording that says so (issue 51, items 5 and 6)."""

import hashlib
import io
import json
import os
import signal
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

from envs import recording
from envs.io import signals_held
from envs.recording import Recording, RecordingError, RecordingWriter

AGENTS = ["a", "b"]


def _episode(rng, T):
    return {
        "actions": rng.uniform(-1, 1, (T, 2, 3)).astype(np.float32),
        "rewards": rng.normal(size=(T, 2)).astype(np.float32),
        "terminated": np.zeros(T, bool),
        "truncated": np.arange(T) == T - 1,
        "teleported": np.zeros(T, bool),
        "obs/privileged": rng.normal(size=(T + 1, 2, 8)).astype(np.float32),
        "state/qpos": rng.normal(size=(T + 1, 5)),
    }


def _write(out, lengths=(4, 6, 5), per_shard=2):
    rng = np.random.default_rng(0)
    meta = {"env": "x", "config": {}, "policy": {"kind": "random"}, "agents": AGENTS}
    w = RecordingWriter(out, meta, ["privileged"], per_shard)
    for T in lengths:
        w.add(_episode(rng, T), {"return": [0.0, 0.0]})
    w.close()
    return out


def _manifest(rec):
    return json.loads((rec / "manifest.json").read_text())


def _save_manifest(rec, m):
    (rec / "manifest.json").write_text(json.dumps(m))


def _rewrite_shard(rec, k, files: dict[str, bytes]):
    """Shard ``k`` replaced by these raw ``.npy`` members; the manifest's hash follows, so that only
    the checks of the contents can refuse it."""
    m = _manifest(rec)
    path = rec / m["shards"][k]["file"]
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name + ".npy", data)
    m["shards"][k]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    _save_manifest(rec, m)


def _npy(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _members(rec, k):
    with zipfile.ZipFile(rec / _manifest(rec)["shards"][k]["file"]) as zf:
        return {i.filename.removesuffix(".npy"): zf.read(i) for i in zf.infolist()}


def _lie_about_shape(npy: bytes, old: str, new: str) -> bytes:
    """A ``.npy`` whose header states shape ``new`` over the data of ``old`` (the header keeps its length)."""
    end = npy.index(b"\n") + 1
    header = npy[:end].decode("latin1").replace(old, new)
    pad = len(header) - end
    assert pad > 0 and header[-1 - pad : -1] == " " * pad, "not enough padding in the header"
    return (header[: -1 - pad] + "\n").encode("latin1") + npy[end:]


@pytest.mark.parametrize("name", ["../outside.npz", "ABSOLUTE", "sub/../../outside.npz", "link.npz"])
def test_shard_paths_must_stay_inside_the_recording(tmp_path, name):
    rec = _write(tmp_path / "r")
    outside = tmp_path / "outside.npz"
    outside.write_bytes((rec / "shard_00000.npz").read_bytes())  # a real shard, only in the wrong place
    (rec / "sub").mkdir()
    (rec / "link.npz").symlink_to(outside)
    m = _manifest(rec)
    m["shards"][0]["file"] = str(outside) if name == "ABSOLUTE" else name
    _save_manifest(rec, m)
    with pytest.raises(RecordingError, match=r"manifest.json: shards\[0\].*inside the recording"):
        Recording(rec)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m["episodes"][1].update(index=-1), r"episodes\[1\]: index must be one of 0..1"),
        (
            lambda m: m["episodes"][1].update(index=0),
            r"episodes\[1\]: episode 0 of shard shard_00000.npz is listed twice",
        ),
        (lambda m: m["episodes"][2].update(shard=7), r"episodes\[2\]: shard must be one of 0..1"),
        (lambda m: m["episodes"][2].update(shard=True), r"episodes\[2\]: shard must be one of"),
        (lambda m: m["episodes"].pop(), r"shard_00001.npz holds 1 episodes of 5 steps, but the episodes list 0"),
        (lambda m: m["episodes"][0].update(length=5), r"shard_00000.npz holds 2 episodes of 10 steps, but .* 11 steps"),
        (lambda m: m["episodes"][0].update(length=-4), r"episodes\[0\]: length must be an integer >= 0"),
        (lambda m: m["shards"][1].update(episodes=10**12), r"shard_00001.npz holds 1000000000000 episodes"),
        (lambda m: m["shards"].append(dict(m["shards"][0])), r"shards\[2\]: file 'shard_00000.npz' is listed twice"),
        (lambda m: m["shards"][0].update(sha256=None), r"shards\[0\]: sha256 must be 64 hexadecimal digits"),
        (lambda m: m.update(episodes={"0": 1}), r"'episodes' must be a list"),
    ],
)
def test_manifest_indices_and_sizes_must_agree(tmp_path, edit, message):
    rec = _write(tmp_path / "r")
    m = _manifest(rec)
    edit(m)
    _save_manifest(rec, m)
    with pytest.raises(RecordingError, match=message) as err:
        Recording(rec)
    assert "manifest.json" in str(err.value)


def test_lengths_edited_in_manifest_and_shard_alike_are_refused_on_read(tmp_path):
    rec = _write(tmp_path / "r")
    # The manifest stays consistent with itself (lengths 3 + 7 = 10 steps): only the shard can tell.
    m = _manifest(rec)
    m["episodes"][0]["length"], m["episodes"][1]["length"] = 3, 7
    _save_manifest(rec, m)
    r = Recording(rec)
    with pytest.raises(RecordingError, match=r"shard_00000.npz: ep_len \[4, 6\] differs .* \[3, 7\]"):
        r.episode(0)
    # A shard whose ep_len was edited (and rehashed) disagrees with the manifest.
    rec2 = _write(tmp_path / "r2")
    files = _members(rec2, 0)
    files["ep_len"] = _npy(np.array([6, 4]))
    _rewrite_shard(rec2, 0, files)
    with pytest.raises(RecordingError, match=r"shard_00000.npz: ep_len \[6, 4\] differs"):
        Recording(rec2).episode(1)


def test_an_absurd_array_size_is_refused_before_it_is_allocated(tmp_path):
    rec = _write(tmp_path / "r")
    files = _members(rec, 0)
    # 12 rows of 2 x 8 float32 stored; the header claims 12 rows of 2 x 8M float32: 768 MiB.
    files["obs/privileged"] = _lie_about_shape(files["obs/privileged"], "(12, 2, 8)", "(12, 2, 8388608)")
    _rewrite_shard(rec, 0, files)
    r = Recording(rec)
    tracemalloc.start()
    try:
        with pytest.raises(RecordingError) as err:
            r.episode(0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20, f"{peak:,} bytes were allocated before the shard was refused"
    assert "shard_00000.npz: array 'obs/privileged' of shape (12, 2, 8388608) needs" in str(err.value)


def test_shapes_that_disagree_with_the_manifest_are_refused(tmp_path, monkeypatch):
    rec = _write(tmp_path / "r")
    files = _members(rec, 0)
    bad = dict(files, actions=_npy(np.zeros((9, 2, 3), np.float32)))  # 10 steps in the manifest
    _rewrite_shard(rec, 0, bad)
    with pytest.raises(RecordingError, match=r"'actions' has shape \(9, 2, 3\).* T \(steps\) = 10 rows"):
        Recording(rec).episode(0)
    bad = dict(files, **{"obs/privileged": _npy(np.zeros((12, 3, 8), np.float32))})  # 2 agents
    _rewrite_shard(rec, 0, bad)
    with pytest.raises(RecordingError, match=r"'obs/privileged' has shape \(12, 3, 8\), expected 2 agents"):
        Recording(rec).episode(0)
    bad = {k: v for k, v in files.items() if k != "teleported"}
    _rewrite_shard(rec, 0, bad)
    with pytest.raises(RecordingError, match=r"shard_00000.npz lacks the array\(s\) \['teleported'\]"):
        Recording(rec).episode(0)
    _rewrite_shard(rec, 0, files)
    with pytest.raises(RecordingError, match="over max_shard_bytes 1,000"):
        Recording(rec, max_shard_bytes=1000).episode(0)
    monkeypatch.setattr(recording, "MAX_ROW_BYTES", 32)
    with pytest.raises(RecordingError, match=r"'obs/privileged' of shape \(12, 2, 8\) has 64 bytes a row"):
        Recording(rec).episode(0)
    monkeypatch.undo()
    assert Recording(rec).episode(1).length == 6  # the untouched shard reads


def test_a_second_interrupt_while_the_last_shard_is_written_leaves_an_interrupted_recording(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    meta = {"env": "x", "config": {}, "policy": {"kind": "random"}, "agents": AGENTS}
    w = RecordingWriter(tmp_path / "r", meta, ["privileged"], 2)
    for T in (4, 6, 5):
        w.add(_episode(rng, T), {"return": [0.0, 0.0]})
    real = np.savez_compressed

    def cut_short(file, **arrays):  # half a shard on disk, then the second Ctrl-C
        real(file, **arrays)
        with open(file, "r+b") as f:
            f.truncate(100)
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", cut_short)
    with pytest.raises(KeyboardInterrupt):
        w.close(interrupted=True)
    monkeypatch.undo()
    m = _manifest(tmp_path / "r")
    assert m["status"] == "interrupted"
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["manifest.json", "shard_00000.npz"]
    assert w.num_episodes == 2 == len(Recording(tmp_path / "r"))


def test_a_signal_during_the_shard_rename_waits_for_the_manifest(tmp_path):
    # Ctrl-C as an interactive shell delivers it (a shell that starts pytest in the background
    # ignores SIGINT, and signals_held rightly leaves an ignored signal ignored).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        reached = False
        with pytest.raises(KeyboardInterrupt), signals_held():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            reached = True
        assert reached
    finally:
        signal.signal(signal.SIGINT, previous)
