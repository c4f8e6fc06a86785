"""Training runner of the world model's three stages: tokenizer, teacher, student.

Each stage is one run directory (``runs/world-model-<stage>-s<seed>`` by default) with the
resolved config (``config.json``), TensorBoard logs, ``metrics.jsonl`` and ``checkpoint/``: a
checkpoint directory of ``agents.checkpoint`` (safetensors + JSON), holding the stage's network
(``model/...``), the tokenizer it works on (``tokenizer/...``, so every later stage is
self-contained), the optimiser state and the sampling generator's state. Checkpoints are swapped
in whole (``agents.run_state``); Ctrl-C or SIGTERM saves at the end of the step; ``resume``
continues a run as if it had never stopped.

- ``tokenizer``: the autoencoder on single frames of the recordings (its latent scale is fitted
  on a fixed sample of frames at every save);
- ``teacher``: flow matching on latent clips, the first ``context`` frames given (``init``: a
  tokenizer checkpoint);
- ``student``: Diffusion Forcing, initialised from the teacher (``init``: a teacher checkpoint).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Literal

import torch
from tqdm import tqdm

from agents import checkpoint as ckpt
from agents.run_state import (
    existing,
    fresh_dir,
    load_optimizer,
    optimizer_tensors,
    resume_differences,
    run_logged,
    swap_in,
    write_metrics,
)
from distill.world_model.attention import AttentionConfig
from distill.world_model.data import ClipDataset
from distill.world_model.positions import PositionConfig
from distill.world_model.student import Student, StudentConfig
from distill.world_model.teacher import Teacher, WorldModelConfig
from distill.world_model.tokenizer import Tokenizer, TokenizerConfig, psnr_of_mse

Stage = Literal["tokenizer", "teacher", "student"]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One stage of world-model training."""

    stage: Stage = "tokenizer"
    """Which network to train."""
    recordings: tuple[Path, ...] = ()
    """Recording directories (``scripts/record.py --cameras rgb``)."""
    envs: tuple[str, ...] = ("soccer-1v1",)
    """Env names the recordings must be of."""
    init: Path | None = None
    """The previous stage's checkpoint: a tokenizer's (teacher stage) or a teacher's (student stage)."""
    run_dir: Path | None = None
    """Run directory (default ``runs/world-model-<stage>-s<seed>``)."""
    steps: int = 2000
    """Optimiser steps."""
    batch: int = 8
    """Clips per step (tokenizer: single-frame clips, all agents' views)."""
    clip: int = 8
    """Latent frames per training clip (teacher and student stages). A student only learns what
    its window looks like after an eviction (sinks, a gap, the newest frames) from clips longer
    than its ``window``."""
    context: int = 2
    """Teacher: clean context frames at the start of every clip (the student's are its sinks)."""
    lr: float = 3e-4
    """Adam learning rate."""
    seed: int = 0
    """Seed of the weights and of the clips and noise drawn."""
    save_every: int = 200
    """Steps between checkpoints (0: only at the end and on Ctrl-C)."""
    resume: bool = False
    """Continue the run in ``run_dir`` from its checkpoint."""
    device: str = "cpu"
    """Torch device."""
    tokenizer: TokenizerConfig = dataclasses.field(default_factory=TokenizerConfig)
    """Tokenizer shape (tokenizer stage; later stages take the checkpoint's)."""
    model: WorldModelConfig = dataclasses.field(default_factory=WorldModelConfig)
    """Transformer shape (teacher stage; latent and action sizes are taken from the data; the
    student stage takes the teacher's)."""
    student: StudentConfig = dataclasses.field(default_factory=StudentConfig)
    """Time structure of the student (student stage)."""

    def __post_init__(self) -> None:
        if self.stage not in ("tokenizer", "teacher", "student"):
            raise ValueError(f"stage must be tokenizer, teacher or student, got {self.stage!r}")
        for name in ("steps", "batch", "clip"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.stage != "tokenizer" and self.init is None:
            previous = "tokenizer" if self.stage == "teacher" else "teacher"
            raise ValueError(f"the {self.stage} stage needs init: a {previous} checkpoint")
        if self.stage == "teacher" and not 0 < self.context < self.clip:
            raise ValueError(f"context ({self.context}) must be in [1, clip={self.clip})")


def model_config(d: dict[str, Any]) -> WorldModelConfig:
    """A ``WorldModelConfig`` from its JSON form (``dataclasses.asdict``)."""
    pos = {**d["positions"], "bands": tuple(d["positions"]["bands"])}
    return WorldModelConfig(**{**d, "positions": PositionConfig(**pos), "attention": AttentionConfig(**d["attention"])})


def load_stage(path: Path, stage: Stage, device: str = "cpu") -> tuple[Tokenizer, torch.nn.Module | None, dict]:
    """The tokenizer and the stage's network (None for a tokenizer checkpoint) of a checkpoint."""
    tensors, meta = ckpt.load(path, kind=f"world_model_{stage}")
    tok = Tokenizer(TokenizerConfig(**meta["tokenizer"]))
    ckpt.fill(tok, {k[10:]: v for k, v in tensors.items() if k.startswith("tokenizer/")}, path)
    net: torch.nn.Module | None = None
    if stage == "teacher":
        net = Teacher(model_config(meta["model"]))
    elif stage == "student":
        net = Student(model_config(meta["model"]), StudentConfig(**meta["student"]))
    if net is not None:
        ckpt.fill(net, {k[6:]: v for k, v in tensors.items() if k.startswith("model/")}, path)
        net.to(device)
    return tok.to(device), net, meta


def save_stage(
    path: Path,
    stage: Stage,
    tok: Tokenizer,
    net: torch.nn.Module | None,
    model: WorldModelConfig,
    student: StudentConfig,
    extra_tensors: dict[str, torch.Tensor] | None = None,
    extra_meta: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint of ``stage`` (what ``load_stage`` reads): the tokenizer's weights, the
    stage's network's (none for the tokenizer stage), every config, and anything extra."""
    tensors = {f"tokenizer/{k}": v for k, v in tok.state_dict().items()}
    if net is not None:
        tensors.update({f"model/{k}": v for k, v in net.state_dict().items()})
    tensors.update(extra_tensors or {})
    meta = {
        "kind": f"world_model_{stage}",
        "stage": stage,
        "tokenizer": dataclasses.asdict(tok.cfg),
        "model": dataclasses.asdict(model),
        "student": dataclasses.asdict(student),
        **(extra_meta or {}),
    }
    return ckpt.save(path, tensors, meta)


class StageRun:
    """The state of one stage's training: networks, data, optimiser, generator, counters."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg, self.dev = cfg, torch.device(cfg.device)
        torch.manual_seed(cfg.seed)
        clip = 1 if cfg.stage == "tokenizer" else cfg.clip
        self.data = ClipDataset(cfg.recordings, clip, envs=cfg.envs)
        if not len(self.data):
            raise ValueError(f"no clip of {clip} frames in {[str(r) for r in cfg.recordings]}")
        frames, actions = self.data[0]
        self.model_cfg, self.student_cfg = cfg.model, cfg.student
        if cfg.stage == "tokenizer":
            self.tok = Tokenizer(cfg.tokenizer).to(self.dev)
            self.net: torch.nn.Module = self.tok
        elif cfg.stage == "teacher":
            self.tok, _, _ = load_stage(cfg.init, "tokenizer", cfg.device)
            tc = self.tok.cfg
            self.model_cfg = dataclasses.replace(
                cfg.model, act_dim=actions.shape[-1], latent_channels=tc.latent_channels, latent_size=tc.latent_size
            )
            self.net = Teacher(self.model_cfg).to(self.dev)
        else:
            self.tok, teacher, meta = load_stage(cfg.init, "teacher", cfg.device)
            self.model_cfg = model_config(meta["model"])
            self.net = Student.from_teacher(teacher, cfg.student).to(self.dev)
        self.tok.requires_grad_(cfg.stage == "tokenizer")
        params = [p for p in self.net.parameters() if p.requires_grad]
        self.opt = torch.optim.Adam(params, lr=cfg.lr)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.step, self.history = 0, []

    def loss(self) -> dict[str, float]:
        """One optimiser step on a random batch; its stats."""
        idx = torch.randint(len(self.data), (self.cfg.batch,), generator=self.gen).tolist()
        frames, actions = self.data.batch(idx)
        frames, actions = frames.to(self.dev), actions.to(self.dev)
        self.net.train()
        if self.cfg.stage == "tokenizer":
            loss = self.tok.loss(frames)
        else:
            with torch.no_grad():
                latents = self.tok.encode(frames)
            if self.cfg.stage == "teacher":
                loss = self.net.loss(latents, actions, self.cfg.context, self.gen)
            else:
                loss = self.net.loss(latents, actions, self.gen)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
        self.opt.step()
        self.step += 1
        stats = {f"loss/{self.cfg.stage}": loss.item()}
        if self.cfg.stage == "tokenizer":
            stats["tokenizer/psnr_db"] = psnr_of_mse(loss.item())
        return stats

    def save(self, run_dir: Path) -> Path:
        """Write ``run_dir/checkpoint`` atomically (the whole directory swapped in)."""
        if self.cfg.stage == "tokenizer":  # the latent scale the later stages divide by
            sample = self.data.batch(range(min(len(self.data), 64)))[0].to(self.dev)
            self.tok.fit_scale(sample)
        extra = {**optimizer_tensors(self.opt), "rng": self.gen.get_state()}
        meta = {
            "step": self.step,
            "envs": list(self.cfg.envs),
            "recordings": [str(r) for r in self.cfg.recordings],
            "history": self.history,
        }
        tmp = fresh_dir(run_dir, "checkpoint")
        net = None if self.cfg.stage == "tokenizer" else self.net
        save_stage(tmp, self.cfg.stage, self.tok, net, self.model_cfg, self.student_cfg, extra, meta)
        return swap_in(tmp, run_dir / "checkpoint")

    def restore(self, run_dir: Path) -> None:
        """Continue from ``run_dir/checkpoint``: weights, optimiser, generator, counters, history."""
        path = existing(run_dir / "checkpoint")
        tensors, meta = ckpt.load(path, kind=f"world_model_{self.cfg.stage}")
        ckpt.fill(self.tok, {k[10:]: v for k, v in tensors.items() if k.startswith("tokenizer/")}, path)
        if self.cfg.stage != "tokenizer":
            ckpt.fill(self.net, {k[6:]: v for k, v in tensors.items() if k.startswith("model/")}, path)
        load_optimizer(self.opt, tensors, self.dev)
        self.gen.set_state(tensors["rng"])
        self.step, self.history = meta["step"], meta["history"]


def _jsonable(cfg: TrainConfig) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def default_run_dir(cfg: TrainConfig) -> Path:
    """``cfg.run_dir``, or ``runs/world-model-<stage>-s<seed>``."""
    return cfg.run_dir or Path("runs") / f"world-model-{cfg.stage}-s{cfg.seed}"


def train(cfg: TrainConfig) -> Path:
    """Run one stage to ``cfg.steps`` (or resume it); returns the run directory."""
    run_dir = default_run_dir(cfg)
    config_file = run_dir / "config.json"
    if cfg.resume:
        if not config_file.exists():
            raise ValueError(f"resume: no run to continue in {run_dir} (no config.json)")
        saved = json.loads(config_file.read_text())
        if saved["stage"] != cfg.stage or saved["seed"] != cfg.seed:
            raise ValueError(f"resume: {run_dir} is a {saved['stage']} run of seed {saved['seed']}")
        differ = resume_differences(saved, _jsonable(cfg), ("resume", "steps", "run_dir", "save_every"))
        if differ:
            raise ValueError(f"resume: {run_dir} was trained with other settings; differing: " + "; ".join(differ))
    elif (run_dir / "checkpoint").exists():
        raise ValueError(f"{run_dir} already holds a run: resume it, or choose another run_dir")
    run = StageRun(cfg)
    if cfg.resume:
        run.restore(run_dir)
        write_metrics(run_dir, run.history)
    run_dir.mkdir(parents=True, exist_ok=True)
    config_file.write_text(json.dumps(_jsonable(cfg), indent=1))
    bar = tqdm(total=cfg.steps, initial=run.step, desc=f"world model: {cfg.stage}", unit="step")

    def body(log: Any) -> None:
        while run.step < cfg.steps:
            stats = run.loss()
            log(stats, {"iteration": run.step, "step": run.step}, run.step, 1, ("loss", "tokenizer"))

    run_logged(
        run_dir,
        run.history,
        bar,
        body,
        lambda: run.save(run_dir),
        resumed=cfg.resume,
        save_every=cfg.save_every,
    )
    return run_dir
