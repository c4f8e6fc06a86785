"""World-model clips from recordings: alignment of frames and actions, no clip across a kick-off,
and refusals of recordings the model cannot learn from."""

import numpy as np
import pytest

from distill.world_model.data import ClipDataset
from envs.recording import RecordingWriter


def _record(path, env: str = "soccer-1v1", groups=("privileged", "camera"), lengths=(6, 3), teleport_at=None):
    w = RecordingWriter(path, {"env": env, "config": {}, "policy": {"kind": "random"}}, list(groups), 8, False)
    for e, T in enumerate(lengths):
        # Frame t of agent a is filled with 10*e + t (+100 for agent 1); action t is [e, t, a].
        frames = np.zeros((T + 1, 2, 3, 4, 4), np.uint8)
        for t in range(T + 1):
            frames[t, 0], frames[t, 1] = 10 * e + t, 100 + 10 * e + t
        actions = np.array([[[e, t, a] for a in range(2)] for t in range(T)], np.float32)
        tele = np.zeros(T, bool)
        if teleport_at is not None and e == 0:
            tele[teleport_at] = True
        episode = {
            "actions": actions,
            "rewards": np.zeros((T, 2), np.float32),
            "terminated": np.zeros(T, bool),
            "truncated": np.zeros(T, bool),
            "teleported": tele,
            "obs/privileged": np.zeros((T + 1, 2, 5), np.float32),
        }
        if "camera" in groups:
            episode["obs/camera"] = frames
        w.add(episode, {"return": [0.0, 0.0]})
    w.close()
    return path


def test_clips_pair_each_frame_with_the_action_that_led_into_it(tmp_path) -> None:
    data = ClipDataset([_record(tmp_path / "r")], clip=3)
    # Episode 0: 7 frames -> starts 0..4; episode 1: 4 frames -> starts 0..1.
    assert len(data) == 5 + 2
    frames, actions = data[1]  # episode 0, frames 1..3
    assert frames.shape == (3, 2, 3, 4, 4) and actions.shape == (3, 2, 3)
    assert frames[:, 0, 0, 0, 0].tolist() == [1, 2, 3] and frames[:, 1, 0, 0, 0].tolist() == [101, 102, 103]
    assert actions[:, 1].tolist() == [[0, 0, 1], [0, 1, 1], [0, 2, 1]]  # frame t <- action t-1
    first_frames, first_actions = data[0]
    assert first_actions[0].abs().sum() == 0  # nothing led into an episode's first frame
    fb, ab = data.batch([0, 6])
    assert fb.shape == (2, 3, 2, 3, 4, 4) and ab[1, :, 0].tolist() == [[1, 0, 0], [1, 1, 0], [1, 2, 0]]


def test_no_clip_spans_a_teleport(tmp_path) -> None:
    data = ClipDataset([_record(tmp_path / "r", teleport_at=2)], clip=3)
    # Step 2 jumps from frame 2 to frame 3: clips of episode 0 may not hold both.
    starts = [s for e, s in data.index if e == 0]
    assert starts == [0, 3, 4]  # frames 0-2 (steps 0, 1) are fine; 1-3 and 2-4 hold step 2
    assert len(ClipDataset([_record(tmp_path / "r2")], clip=8)) == 0  # longer than every episode


def test_recordings_without_cameras_or_of_another_env_are_refused_by_name(tmp_path) -> None:
    with pytest.raises(ValueError, match="no 'camera' observations.*--cameras rgb"):
        ClipDataset([_record(tmp_path / "a", groups=("privileged",))], clip=2)
    with pytest.raises(ValueError, match="recording of 'egopush-line'.*soccer-1v1"):
        ClipDataset([_record(tmp_path / "b", env="egopush-line")], clip=2)
    assert len(ClipDataset([_record(tmp_path / "c", env="soccer-2v2")], clip=2, envs=("soccer-2v2",))) > 0
