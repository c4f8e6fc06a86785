"""The offline training loop of a CoFlow policy (or baseline): batches from a ``SegmentDataset``,
Adam, an exponential moving average of the weights (the policy that is saved), logging, and
checkpoints that resume exactly (``agents/run_state.py``'s run directory conventions)."""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

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
    run_logged,
    save_state_file,
    swap_in,
    write_metrics,
)

CKPT = "checkpoint"


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """How long and how a CoFlow model is trained."""

    steps: int = 20_000
    """Optimiser steps in all."""
    batch_size: int = 32
    """Segments per step."""
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
    """Seeds the initialisation, the batches, the noise and the times."""

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
        self.ema = copy.deepcopy(self.model).eval()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.generator = torch.Generator().manual_seed(cfg.seed)
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
            self.optimizer.step()
            self.step += 1
            self._update_ema()
            for k, v in {"loss/total": loss.item(), **stats}.items():
                sums[k] = sums.get(k, 0.0) + v
        out = {k: v / n for k, v in sums.items()}
        for i, g in enumerate(self.model.unet.gates() if hasattr(self.model, "unet") else []):
            out[f"cva/gate{i}"] = g.item()
        out["perf/steps_per_s"] = n / max(time.time() - start, 1e-9)
        return out

    def learn(self, progress: bool = True) -> list[dict[str, float]]:
        """Train to ``cfg.steps`` (from where a resumed run stopped); returns the logged history."""
        bar = tqdm(total=self.cfg.steps, initial=self.step, desc=f"{self.model.cfg.algo}", disable=not progress)

        def body(log: IterationLog) -> None:
            while self.step < self.cfg.steps:
                before = self.step
                stats = self._iteration()
                self.iteration += 1
                log(stats, {"iteration": self.iteration, "step": self.step}, self.step, self.step - before, ("loss",))

        run_logged(self.run_dir, self.history, bar, body, self.save, self.iteration or None, self.cfg.save_every)
        return self.history

    def save(self) -> Path:
        """Write ``run_dir/checkpoint`` atomically: the averaged policy and the training state."""
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
        tensors["rng/trainer"] = self.generator.get_state()
        save_state_file(tmp / "train_state.safetensors", tensors)
        meta = {"step": self.step, "iteration": self.iteration, "history": self.history}
        (tmp / "train_state.json").write_text(json.dumps(meta))
        return swap_in(tmp, self.run_dir / CKPT)

    def load(self) -> None:
        """Continue from ``run_dir/checkpoint`` (or ``checkpoint.old`` if a save was cut short)."""
        path = existing(self.run_dir / CKPT)
        ema, _ = load_model(path)
        self.ema.load_state_dict(ema.state_dict())
        tensors = load_state_file(path / "train_state.safetensors")
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model/")})
        load_optimizer(self.optimizer, tensors, "cpu")
        self.generator.set_state(tensors["rng/trainer"])
        state = json.loads((path / "train_state.json").read_text())
        self.step, self.iteration, self.history = state["step"], state["iteration"], state["history"]
        write_metrics(self.run_dir, self.history)
