"""The world-model trainer in several processes (torchrun), with Gloo on 2 CPU processes: the
ranks draw clips of their own and keep one network, rank 0 writes one checkpoint with every rank's
generators, a 2-process run resumed in 2 processes ends where an uninterrupted one does, and a
resume in one process is refused by name."""

import json
import os
from pathlib import Path

import pytest
import torch
from gloo import join, spawn
from safetensors.torch import load_file, save_file
from test_world_model_train import TINY, _recording

from agents import distributed
from distill.world_model.train import StageRun, TrainConfig, load_stage, train


def _worker(rank: int, port: int, rec: str, out: str) -> None:
    join(rank, port)
    cfg = TrainConfig(stage="tokenizer", recordings=(Path(rec),), steps=4, run_dir=Path(out) / "whole", **TINY)
    train(cfg)
    part = Path(out) / "part"
    train(TrainConfig(**{**cfg.__dict__, "steps": 2, "run_dir": part}))
    train(TrainConfig(**{**cfg.__dict__, "steps": 4, "run_dir": part, "resume": True}))
    # Three steps of the teacher stage by hand: each rank's network and the losses it logged.
    teacher = TrainConfig(**{**cfg.__dict__, "stage": "teacher", "init": Path(out) / "whole" / "checkpoint"})
    run = StageRun(teacher)
    distributed.broadcast_module_(run.net)
    losses = torch.tensor([run.loss()["loss/teacher"] for _ in range(3)])
    state = {f"net/{k}": v for k, v in run.net.state_dict().items()}
    state.update({"loss": losses, "rng": run.gen.get_state()})
    save_file({k: v.contiguous() for k, v in state.items()}, os.path.join(out, f"rank{rank}.safetensors"))
    distributed.close()


def test_two_ranks_keep_one_network_and_a_run_resumes_exactly(tmp_path):
    rec = _recording(tmp_path / "rec")
    spawn(_worker, str(rec), str(tmp_path))
    r0, r1 = (load_file(str(tmp_path / f"rank{k}.safetensors")) for k in (0, 1))
    assert not torch.equal(r0["rng"], r1["rng"])  # each rank's clips and noise: seed + rank
    for k, v in r0.items():  # one network, and the losses of every rank's batches
        if k != "rng":
            assert torch.equal(v, r1[k]), k
    whole, part = tmp_path / "whole", tmp_path / "part"
    assert json.loads((whole / "config.json").read_text())["world_size"] == 2
    assert json.loads((whole / "checkpoint" / "policy.json").read_text())["world_size"] == 2
    assert (whole / "checkpoint" / "train_state.rank1.safetensors").exists()
    assert [json.loads(x)["step"] for x in (part / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    a, _, _ = load_stage(whole / "checkpoint", "tokenizer")
    b, _, _ = load_stage(part / "checkpoint", "tokenizer")
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name
    # One process with rank 0's seed sees half the clips: another tokenizer.
    alone = train(TrainConfig(stage="tokenizer", recordings=(rec,), steps=4, run_dir=tmp_path / "alone", **TINY))
    c, _, _ = load_stage(alone / "checkpoint", "tokenizer")
    assert not all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values(), strict=True))
    resume = TrainConfig(stage="tokenizer", recordings=(rec,), steps=6, run_dir=part, resume=True, **TINY)
    with pytest.raises(ValueError, match=r"world_size: 2 -> 1 \(world_size: the processes torchrun"):
        train(resume)
    saved = json.loads((part / "config.json").read_text())
    del saved["world_size"]  # with the config's record gone, the checkpoint's own still refuses it
    (part / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="saved by world_size 2 processes, resumed by 1"):
        train(resume)
