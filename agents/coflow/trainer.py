"""The offline training loop of a CoFlow policy (or baseline): batches from a ``SegmentDataset``,
Adam, an exponential moving average of the weights (the policy that is saved), logging, and
checkpoints that resume exactly (``agents/run_state.py``'s run directory conventions).

Under torchrun (``agents/distributed.py``) every rank holds the whole dataset and draws its own
batches of ``batch_size`` segments (its generator seeded ``seed`` + its global rank); gradients are
averaged over the ranks every step, so the ranks keep one model and one average; rank 0 alone logs
and writes the checkpoint, with every rank's generators in it."""

from __future__ import annotations

import copy
import dataclasses
import json
import signal
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from agents import distributed
from agents.checkpoint import CheckpointError
from agents.coflow.checkpoint import load_model, save_model
from agents.coflow.config import CoFlowConfig
from agents.coflow.dataset import SegmentDataset
from agents.coflow.policy import CoFlowModel
from agents.run_state import (
    IterationLog,
    existing,
    fresh_dir,
    load_optimizer,
    load_state_file,
    optimizer_tensors,
    rank_state_name,
    run_logged,
    run_quietly,
    save_state_file,
    swap_in,
    write_metrics,
)
from envs.io import signals_held

CKPT = "checkpoint"


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """How long and how a CoFlow model is trained."""

    steps: int = 20_000
    """Optimiser steps in all."""
    batch_size: int = 32
    """Segments per step (under torchrun: per process)."""
    lr: float = 2e-4
    """Adam's learning rate."""
    ema: float = 0.995
    """Decay of the weights' moving average (the saved policy)."""
    ema_start: int = 2000
    """Until this step the average is a copy of the weights (early weights are not worth keeping)."""
    ema_every: int = 10
    """Steps between updates of the average."""
    log_every: int = 50
    """Steps per logged iteration (TensorBoard, ``metrics.jsonl``, the progress bar)."""
    save_every: int = 20
    """Iterations between checkpoints (0: only at the end and on Ctrl-C or SIGTERM)."""
    seed: int = 0
    """Seeds the initialisation, the batches, the noise and the times (under torchrun the batches,
    noise and times of each process: plus its global rank)."""

    def __post_init__(self) -> None:
        if min(self.steps, self.batch_size, self.log_every, self.ema_every) < 1:
            raise ValueError("steps, batch_size, log_every and ema_every must be >= 1")
        if not 0.0 <= self.ema < 1.0 or self.lr <= 0 or self.save_every < 0 or self.ema_start < 0:
            raise ValueError("need 0 <= ema < 1, lr > 0, save_every >= 0 and ema_start >= 0")


TRAIN_PRESETS: dict[str, dict[str, object]] = {
    "default": {},
    "cpu": {"steps": 2000, "lr": 1e-3, "ema_start": 500, "ema_every": 1},
}
"""Named training settings over ``TrainerConfig``'s defaults (``train_coflow.py --preset``). ``cpu``:
2,000 steps (of 32 segments) at a higher learning rate, the average kept from step 500 and updated every
step (with the default's every 10 steps from step 2,000 it would average nothing in so short a run)."""


class Trainer:
    """Trains a ``CoFlowModel`` on ``dataset``; ``run_dir`` holds its logs and ``checkpoint/`` (the
    averaged policy, loadable by ``make_policy``, with the training state beside it)."""

    def __init__(
        self,
        dataset: SegmentDataset,
        model_cfg: CoFlowConfig,
        cfg: TrainerConfig,
        run_dir: Path,
        env_config: dict[str, Any] | None = None,
    ) -> None:
        self.dataset, self.cfg, self.run_dir = dataset, cfg, Path(run_dir)
        self.env_config = dataset.config if env_config is None else env_config
        with torch.random.fork_rng():
            torch.manual_seed(cfg.seed)
            self.model = CoFlowModel(model_cfg, dataset.obs_dim, dataset.act_dim, dataset.n_agents)
        self.model.set_normaliser(torch.from_numpy(dataset.obs_mean), torch.from_numpy(dataset.obs_std))
        if model_cfg.residual:
            self.model.delta_std.copy_(torch.from_numpy(dataset.delta_std()))
        self.ema = copy.deepcopy(self.model).eval()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.world_size, self.rank = distributed.world_size(), distributed.rank()
        self.generator = torch.Generator().manual_seed(cfg.seed + self.rank)
        self.step, self.iteration = 0, 0
        self.history: list[dict[str, float]] = []

    def _update_ema(self) -> None:
        if self.step % self.cfg.ema_every:
            return
        decay = 0.0 if self.step < self.cfg.ema_start else self.cfg.ema
        with torch.no_grad():
            for e, p in zip(self.ema.parameters(), self.model.parameters(), strict=True):
                e.lerp_(p, 1.0 - decay)

    def _iteration(self) -> dict[str, float]:
        sums: dict[str, float] = {}
        n = min(self.cfg.log_every, self.cfg.steps - self.step)
        start = time.time()
        self.model.train()
        for _ in range(n):
            loss, stats = self.model.loss(self.dataset.sample(self.cfg.batch_size, self.generator), self.generator)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            distributed.average_gradients_(list(self.model.parameters()))
            self.optimizer.step()
            self.step += 1
            self._update_ema()
            for k, v in {"loss/total": loss.item(), **stats}.items():
                sums[k] = sums.get(k, 0.0) + v
        out = {k: v / n for k, v in sums.items()}
        if self.world_size > 1:  # the losses of every rank's batches
            out = {k: s / c for k, (s, c) in distributed.sum_stats({k: (v, 1.0) for k, v in out.items()}).items()}
        for i, g in enumerate(self.model.unet.gates() if hasattr(self.model, "unet") else []):
            out[f"cva/gate{i}"] = g.item()
        out["perf/steps_per_s"] = n / max(time.time() - start, 1e-9)
        return out

    def learn(self, progress: bool = True) -> list[dict[str, float]]:
        """Train to ``cfg.steps`` (from where a resumed run stopped); returns the logged history. Under
        torchrun every rank starts from rank 0's model, and a stop asked of any rank stops them all at
        the end of the same iteration."""
        for module in (self.model, self.ema):
            distributed.broadcast_module_(module)
        main = self.rank == 0
        bar = tqdm(
            total=self.cfg.steps, initial=self.step, desc=f"{self.model.cfg.algo}", disable=not (progress and main)
        )

        def body(log: IterationLog) -> None:
            while self.step < self.cfg.steps:
                before = self.step
                stats = self._iteration()
                self.iteration += 1
                head = {"iteration": self.iteration, "step": self.step}
                if self.world_size == 1:
                    log(stats, head, self.step, self.step - before, ("loss",))
                    continue
                with signals_held():  # every rank stops at the end of the same iteration
                    if distributed.any_rank(log.stop.signum is not None) and log.stop.signum is None:
                        log.stop.signum = signal.SIGTERM
                    log(stats, head, self.step, self.step - before, ("loss",))

        if main:
            run_logged(self.run_dir, self.history, bar, body, self.save, self.iteration or None, self.cfg.save_every)
        else:
            bar.close()
            run_quietly(self.run_dir, self.history, body, self.save, self.cfg.save_every)
        return self.history

    def _own_state(self) -> dict[str, torch.Tensor]:
        """This rank's own part of the training state: its generators."""
        return {"rng/trainer": self.generator.get_state(), "rng/torch": torch.get_rng_state()}

    def save(self) -> Path:
        """Write ``run_dir/checkpoint`` atomically: the averaged policy and the training state. Under
        torchrun every rank calls it; rank 0 writes every rank's generators (rank k's in
        ``train_state.rank<k>.safetensors``)."""
        ranks = distributed.gather_to_main(self._own_state())
        if ranks is None:  # not rank 0: it writes; every rank returns once the checkpoint is in place
            distributed.barrier()
            return self.run_dir / CKPT
        tmp = fresh_dir(self.run_dir, CKPT)
        ds = self.dataset
        save_model(
            tmp,
            self.ema,
            ds.env,
            self.env_config,
            ds.return_scale,
            ds.return_offset,
            dataset=str(ds.path),
            agents=list(ds.agent_ids),
            step=self.step,
            seed=self.cfg.seed,
        )
        tensors = {f"model/{k}": v for k, v in self.model.state_dict().items()}
        tensors.update(optimizer_tensors(self.optimizer))
        tensors.update(ranks[0])
        save_state_file(tmp / "train_state.safetensors", tensors)
        meta = {"step": self.step, "iteration": self.iteration, "history": self.history}
        if self.world_size > 1:
            meta["world_size"] = self.world_size
        (tmp / "train_state.json").write_text(json.dumps(meta))
        for k, own in enumerate(ranks[1:], start=1):
            save_state_file(tmp / f"{rank_state_name(k)}.safetensors", own)
        final = swap_in(tmp, self.run_dir / CKPT)
        distributed.barrier()
        return final

    def load(self) -> None:
        """Continue from ``run_dir/checkpoint`` (or ``checkpoint.old`` if a save was cut short)."""
        path = existing(self.run_dir / CKPT)
        state = json.loads((path / "train_state.json").read_text())
        saved_world = state.get("world_size", 1)
        if saved_world != self.world_size:
            raise CheckpointError(f"{path}: saved by world_size {saved_world} processes, resumed by {self.world_size}")
        ema, _ = load_model(path)
        self.ema.load_state_dict(ema.state_dict())
        tensors = load_state_file(path / "train_state.safetensors")
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model/")})
        load_optimizer(self.optimizer, tensors, "cpu")
        own = tensors if self.rank == 0 else load_state_file(path / f"{rank_state_name(self.rank)}.safetensors")
        self.generator.set_state(own["rng/trainer"])
        if "rng/torch" in own:  # (saved since runs can span processes)
            torch.set_rng_state(own["rng/torch"])
        self.step, self.iteration, self.history = state["step"], state["iteration"], state["history"]
        if self.rank == 0:
            write_metrics(self.run_dir, self.history)
