"""DAgger in several processes (torchrun), with Gloo on 2 CPU processes: the averaged gradient is the
combined batch's, the ranks keep one student while stepping worlds of their own, rank 0 writes one
checkpoint with every rank's worlds, and a resume in another number of processes (or an RL fine-tune
under torchrun) is refused by name."""

import dataclasses
import json
import os
from pathlib import Path

import pytest
import torch
from gloo import join, spawn
from safetensors.torch import load_file, save_file

from agents import distributed
from distill.dagger import DaggerConfig, Distiller
from distill.finetune import FinetuneConfig
from distill.students import StudentConfig
from distill.teacher_env import make_distill_env

ROOT = Path(__file__).resolve().parents[2]
GOAL_TEACHER = ROOT / "checkpoints" / "egopush-goal-teacher"
STUDENT = StudentConfig(embed=8, hidden=16)


def _distiller(run_dir: Path, seed: int, total_frames: int, **dagger) -> Distiller:
    env = make_distill_env(GOAL_TEACHER, num_envs=2, camera_resolution=(16, 16))
    cfg = DaggerConfig(steps_per_iter=4, buffer_steps=8, updates_per_iter=2, batch_frames=8, **dagger)
    return Distiller(env, GOAL_TEACHER, STUDENT, cfg, total_frames, seed, run_dir)


def _batch(d: Distiller, seqs: int = 8) -> dict[str, torch.Tensor]:
    """``seqs`` one-step windows of every field the buffer holds, as ``SequenceBuffer.sample`` gives them."""
    g = torch.Generator().manual_seed(1)
    out = {}
    for k, v in d.buffer.data.items():
        shape = (seqs, d.seq_len, *v.shape[2:])
        out[k] = torch.ones(shape, dtype=torch.bool) if v.dtype == torch.bool else torch.rand(shape, generator=g)
        out[k] = out[k].to(v.dtype)
    return out


def _gradient_worker(rank: int, port: int, out: str) -> None:
    join(rank, port)
    d = _distiller(Path(out) / "runs", 7 + rank, 64, aux_coef=0.5)
    for module in (d.student, d.aux_head):  # as learn() starts: rank 0's student everywhere
        distributed.broadcast_module_(module)
    half = {k: v[rank * 4 : (rank + 1) * 4] for k, v in _batch(d).items()}  # this rank's half
    d.backward(half)
    grads = {str(i): p.grad for i, p in enumerate(d._trained_parameters()) if p.grad is not None}
    save_file(grads, os.path.join(out, f"grad{rank}.safetensors"))
    d.env.close()
    distributed.close()


def test_averaged_gradient_equals_one_process_gradient_on_the_combined_batch(tmp_path):
    spawn(_gradient_worker, str(tmp_path))
    d = _distiller(tmp_path / "one", 7, 64, aux_coef=0.5)  # rank 0's seed: rank 0's student
    batch = _batch(d)
    d.backward(batch)
    params = d._trained_parameters()
    whole = {str(i): p.grad.clone() for i, p in enumerate(params) if p.grad is not None}
    assert any(p is q for p in params for q in d.aux_head.parameters())  # the head's gradients too
    d.backward({k: v[:4] for k, v in batch.items()})  # one rank's half alone: another gradient
    half = {str(i): p.grad.clone() for i, p in enumerate(params) if p.grad is not None}
    d.env.close()
    for rank in (0, 1):
        got = load_file(str(tmp_path / f"grad{rank}.safetensors"))
        assert got.keys() == whole.keys()
        for k, g in whole.items():
            torch.testing.assert_close(got[k], g, rtol=1e-4, atol=1e-6)
    assert not all(torch.allclose(half[k], g, atol=1e-4) for k, g in whole.items())


def _train_worker(rank: int, port: int, out: str) -> None:
    join(rank, port)
    total = 2 * 2 * 4 * 3  # 3 iterations of 2 ranks x 2 worlds x 4 steps
    d = _distiller(Path(out) / "run", 7 + rank, total, aux_coef=0.5, lr_schedule="cosine")
    history = d.learn(progress=False)
    assert d.iteration == 3 and d.frames == total and [h["frames"] for h in history] == [16, 32, 48]
    weights = {f"student/{k}": v for k, v in d.student.state_dict().items()}
    weights.update({f"aux/{k}": v for k, v in d.aux_head.state_dict().items()})
    lr = torch.tensor([h["dagger/lr"] for h in history])
    tensors = {**weights, "obs": d._obs[d.teacher.group], "lr": lr}
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out, f"rank{rank}.safetensors"))
    d.env.close()
    distributed.close()


def test_two_ranks_keep_one_student_while_their_worlds_differ(tmp_path):
    spawn(_train_worker, str(tmp_path))
    r0, r1 = (load_file(str(tmp_path / f"rank{k}.safetensors")) for k in (0, 1))
    assert not torch.equal(r0["obs"], r1["obs"])  # each rank steps worlds of its own (seed + rank)
    for k, v in r0.items():  # the student (its proprio normaliser included) and the aux head
        if k != "obs":
            assert torch.equal(v, r1[k]), k
    assert r0["lr"][0] > r0["lr"][-1]  # the schedule ran over every rank's frames, the same on both
    # Rank 0 alone logged and wrote the checkpoint, with rank 1's worlds beside its own.
    run = tmp_path / "run"
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3
    ckpt = run / "checkpoint"
    assert json.loads((ckpt / "train_state.json").read_text())["world_size"] == 2
    own = load_file(str(ckpt / "train_state.rank1.safetensors"))
    shared = load_file(str(ckpt / "train_state.safetensors"))
    assert {k for k in own if k.startswith("env/")} == {k for k in shared if k.startswith("env/")}
    assert not all(torch.equal(own[k], shared[k]) for k in own if k.startswith("env/"))
    # A process of its own refuses that checkpoint by name.
    d = _distiller(run, 7, 2 * 2 * 4 * 3, aux_coef=0.5, lr_schedule="cosine")
    try:
        with pytest.raises(ValueError, match="saved by world_size 2 processes, resumed by 1"):
            d.load()
    finally:
        d.env.close()


def _config(run_dir: Path, **kw):
    from distill.train import DistillConfig

    dagger = DaggerConfig(steps_per_iter=4, buffer_steps=8, updates_per_iter=1, batch_frames=8)
    return DistillConfig(
        teacher=GOAL_TEACHER,
        num_envs=2,
        total_frames=32,
        resolution=(16, 16),
        run_dir=run_dir,
        eval_episodes=0,
        student=STUDENT,
        dagger=dagger,
        **kw,
    )


def _script_worker(rank: int, port: int, out: str) -> None:
    from distill.train import distill

    join(rank, port)
    with pytest.raises(ValueError, match="--finetune.frames 64: RL fine-tuning runs in one process"):
        distill(_config(Path(out) / "ft", finetune=FinetuneConfig(frames=64)))
    distill(_config(Path(out) / "run"))
    distributed.close()


def test_a_two_rank_run_records_its_world_size_and_a_resume_in_one_process_is_refused(tmp_path):
    from distill.train import distill

    spawn(_script_worker, str(tmp_path))
    run = tmp_path / "run"
    assert json.loads((run / "config.json").read_text())["distill"]["world_size"] == 2
    assert [json.loads(line)["frames"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [16, 32]
    resume = dataclasses.replace(_config(run), resume=True, total_frames=64)
    with pytest.raises(ValueError, match=r"differing: world_size: 2 -> 1 \(world_size: the processes torchrun"):
        distill(resume)
    # With the config's record gone, the checkpoint's own record still refuses it.
    saved = json.loads((run / "config.json").read_text())
    del saved["distill"]["world_size"]
    (run / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="saved by world_size 2 processes, resumed by 1"):
        distill(resume)
