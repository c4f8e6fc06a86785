"""The world-model trainer's three stages, tiny: each runs, saves a checkpoint the next stage
starts from, and a resumed run continues where it stopped."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from distill.world_model.attention import AttentionConfig
from distill.world_model.positions import PositionConfig
from distill.world_model.student import StudentConfig
from distill.world_model.teacher import WorldModelConfig
from distill.world_model.tokenizer import TokenizerConfig
from distill.world_model.train import StageRun, TrainConfig, load_stage, train
from envs.recording import RecordingWriter


def _recording(path, episodes: int = 2, T: int = 9, size: int = 16):
    w = RecordingWriter(path, {"env": "soccer-1v1", "config": {}, "policy": {"kind": "random"}}, ["camera"], 4, False)
    rng = np.random.default_rng(0)
    for _ in range(episodes):
        actions = rng.uniform(-1, 1, (T, 2, 3)).astype(np.float32)
        frames = np.zeros((T + 1, 2, 3, size, size), np.uint8)
        x = np.array([4.0, 10.0])
        for t in range(T + 1):  # each agent sees a square its first action component moves
            for a in range(2):
                c = int(x[a]) % (size - 4)
                frames[t, a, a, 4:8, c : c + 4] = 255
            if t < T:
                x += 2 * actions[t, :, 0]
        episode = {
            "actions": actions,
            "rewards": np.zeros((T, 2), np.float32),
            "terminated": np.zeros(T, bool),
            "truncated": np.zeros(T, bool),
            "teleported": np.zeros(T, bool),
            "obs/camera": frames,
        }
        w.add(episode, {"return": [0.0, 0.0]})
    w.close()
    return path


TINY = dict(
    batch=2,
    clip=6,
    save_every=2,
    tokenizer=TokenizerConfig(image_size=16, width=8, stages=2, latent_channels=4),
    model=WorldModelConfig(
        dim=32, depth=1, heads=2, positions=PositionConfig(bands=(4, 6, 2, 4)), attention=AttentionConfig(hubs=2)
    ),
    student=StudentConfig(block=2, window=6, sink=2, steps=2),
)


def test_three_stages_chain_and_a_resumed_run_continues(tmp_path) -> None:
    rec = _recording(tmp_path / "rec")
    tok_dir = train(TrainConfig(stage="tokenizer", recordings=(rec,), steps=3, run_dir=tmp_path / "tok", **TINY))
    meta = json.loads((tok_dir / "checkpoint" / "policy.json").read_text())
    assert meta["step"] == 3 and meta["kind"] == "world_model_tokenizer"
    # Resuming to 5 steps adds two rows, and the metrics file holds each step once.
    train(TrainConfig(stage="tokenizer", recordings=(rec,), steps=5, run_dir=tmp_path / "tok", resume=True, **TINY))
    rows = [json.loads(x) for x in (tok_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]
    # ... and ends where a run never stopped ends.
    straight = train(TrainConfig(stage="tokenizer", recordings=(rec,), steps=5, run_dir=tmp_path / "straight", **TINY))
    a, _, _ = load_stage(tok_dir / "checkpoint", "tokenizer")
    b, _, _ = load_stage(straight / "checkpoint", "tokenizer")
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name
    with pytest.raises(ValueError, match="already holds a run"):
        train(TrainConfig(stage="tokenizer", recordings=(rec,), steps=1, run_dir=tmp_path / "tok", **TINY))

    teacher = tmp_path / "teacher"
    cfg = TrainConfig(stage="teacher", recordings=(rec,), steps=2, run_dir=teacher, init=tok_dir / "checkpoint", **TINY)
    train(cfg)
    student = tmp_path / "student"
    init = teacher / "checkpoint"
    train(TrainConfig(stage="student", recordings=(rec,), steps=2, run_dir=student, init=init, **TINY))

    tok, model, meta = load_stage(student / "checkpoint", "student")
    assert meta["model"]["act_dim"] == 3 and meta["model"]["latent_size"] == 4
    frames = torch.randint(0, 255, (1, 2, 2, 3, 16, 16), dtype=torch.uint8)
    out = model.rollout(tok.encode(frames), torch.zeros(1, 6, 2, 3))
    assert tok.decode(out).shape == (1, 6, 2, 3, 16, 16)

    # The distill stage writes a student (what DreamEnv reads) that samples in its own few steps.
    distilled = tmp_path / "distilled"
    cfg = TrainConfig(
        stage="distill",
        recordings=(rec,),
        steps=2,
        run_dir=distilled,
        init=student / "checkpoint",
        distill_steps=1,
        **TINY,
    )
    train(cfg)
    _, fast, meta = load_stage(distilled / "checkpoint", "student")
    assert fast.scfg.steps == 1 and model.scfg.steps == 2 and meta["distilled"]["reference_steps"] == 16
    pairs = zip(fast.state_dict().values(), model.state_dict().values(), strict=True)
    assert not all(torch.equal(a, b) for a, b in pairs)
    train(dataclasses.replace(cfg, steps=3, resume=True))
    assert json.loads((distilled / "checkpoint" / "policy.json").read_text())["step"] == 3


def test_later_stages_need_the_previous_checkpoint() -> None:
    with pytest.raises(ValueError, match="needs init: a tokenizer checkpoint"):
        TrainConfig(stage="teacher")


def test_latents_are_encoded_once_per_block_and_equal_encoding_the_clip(tmp_path, monkeypatch) -> None:
    import distill.world_model.train as wm_train

    rec = _recording(tmp_path / "rec", T=11)
    tok_dir = train(TrainConfig(stage="tokenizer", recordings=(rec,), steps=1, run_dir=tmp_path / "tok", **TINY))
    monkeypatch.setattr(wm_train, "LATENT_BLOCK", 4)  # clips of 6 frames cross blocks
    run = StageRun(TrainConfig(stage="teacher", recordings=(rec,), init=tok_dir / "checkpoint", **TINY))
    calls = []
    encode = run.tok.encode
    monkeypatch.setattr(run.tok, "encode", lambda x: calls.append(x.shape[0]) or encode(x))
    idx = list(range(len(run.data)))
    got = run.clip_latents(idx)
    frames, actions = run.data.batch(idx)
    with torch.no_grad():
        want = encode(frames)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert torch.equal(run.data.actions(idx), actions)
    assert sum(calls) == 2 * 12  # each of the 12 frames of both episodes encoded once, in blocks of 4
    run.clip_latents(idx)
    assert sum(calls) == 24  # and never again
