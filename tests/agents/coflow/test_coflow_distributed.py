"""train_coflow.py in several processes (torchrun), with Gloo on 2 CPU processes: the ranks draw
batches of their own and keep one model, a 2-process run resumed in 2 processes ends where an
uninterrupted one does, and a resume in another number of processes is refused by name."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import run_script
from gloo import join, spawn
from safetensors.torch import load_file, save_file
from test_coflow_train import TINY, record_spread

from agents import distributed
from agents.coflow.config import CoFlowConfig
from agents.coflow.dataset import SegmentDataset
from agents.coflow.trainer import Trainer, TrainerConfig

ROOT = Path(__file__).resolve().parents[3]
MODEL = CoFlowConfig(horizon=4, width=8, dim_mults=(1, 2), emb_dim=16, groups=4, cva_heads=4, id_hidden=16)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return record_spread(tmp_path_factory.mktemp("data") / "spread-random")


def _trainer(dataset: Path, run_dir: Path, steps: int) -> Trainer:
    ds = SegmentDataset(dataset, MODEL.horizon, MODEL.discount, MODEL.return_scale)
    cfg = TrainerConfig(steps=steps, batch_size=4, log_every=2, save_every=1, ema_start=2, ema_every=1)
    return Trainer(ds, MODEL, cfg, run_dir)


def _worker(rank: int, port: int, dataset: str, out: str) -> None:
    join(rank, port)
    t = _trainer(Path(dataset), Path(out) / "run", 4)
    t.learn(progress=False)
    state = {f"model/{k}": v for k, v in t.model.state_dict().items()}
    state.update({f"ema/{k}": v for k, v in t.ema.state_dict().items()})
    state["loss"] = torch.tensor([h["loss/total"] for h in t.history])
    state["rng"] = t.generator.get_state()
    save_file({k: v.contiguous() for k, v in state.items()}, os.path.join(out, f"rank{rank}.safetensors"))
    distributed.close()


def test_two_ranks_draw_batches_of_their_own_and_keep_one_model(dataset, tmp_path):
    spawn(_worker, str(dataset), str(tmp_path))
    r0, r1 = (load_file(str(tmp_path / f"rank{k}.safetensors")) for k in (0, 1))
    assert not torch.equal(r0["rng"], r1["rng"])  # each rank's generator: seed + rank
    for k, v in r0.items():  # the model, its average and the logged losses (every rank's batches)
        if k != "rng":
            assert torch.equal(v, r1[k]), k
    # Rank 0 alone logged (one row per iteration) and wrote the checkpoint, rank 1's generators beside.
    run = tmp_path / "run"
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [2, 4]
    assert json.loads((run / "checkpoint" / "train_state.json").read_text())["world_size"] == 2
    own = load_file(str(run / "checkpoint" / "train_state.rank1.safetensors"))
    assert torch.equal(own["rng/trainer"], r1["rng"])
    # One process with rank 0's seed sees half the data: another model.
    alone = _trainer(dataset, tmp_path / "alone", 4)
    alone.learn(progress=False)
    assert not all(torch.equal(v, r0[f"model/{k}"]) for k, v in alone.model.state_dict().items())
    with pytest.raises(ValueError, match="saved by world_size 2 processes, resumed by 1"):
        _trainer(dataset, run, 6).load()


def _torchrun(dataset: Path, run_dir: Path, steps: int, *flags: str) -> subprocess.CompletedProcess:
    args = ("--dataset", str(dataset), "--run-dir", str(run_dir), "--train.steps", str(steps), *TINY, *flags)
    out = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
        + [str(ROOT / "scripts" / "train_coflow.py"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_a_torchrun_run_resumes_exactly_in_as_many_processes_and_is_refused_in_one(dataset, tmp_path):
    whole, part = tmp_path / "whole", tmp_path / "part"
    out = _torchrun(dataset, whole, 6)
    assert out.stdout.count("done: 6 steps") == 1  # rank 0 alone reports
    assert json.loads((whole / "config.json").read_text())["world_size"] == 2
    _torchrun(dataset, part, 4)
    _torchrun(dataset, part, 6, "--resume")
    a = load_file(str(whole / "checkpoint" / "policy.safetensors"))
    b = load_file(str(part / "checkpoint" / "policy.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    refused = run_script(
        "train_coflow.py", "--dataset", str(dataset), "--run-dir", str(part), "--train.steps", "8", *TINY, "--resume",
        check=False,
    )  # fmt: skip
    assert refused.returncode == 1 and "world_size: 2 -> 1 (world_size: the processes torchrun" in refused.stderr
