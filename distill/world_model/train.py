"""Training runner of the world model's stages: tokenizer, teacher, student, and the student's
few-step distillation.

Each stage is one run directory (``runs/world-model-<stage>-s<seed>`` by default) with the
resolved config (``config.json``), TensorBoard logs, ``metrics.jsonl`` and ``checkpoint/``: a
checkpoint directory of ``agents.checkpoint`` (safetensors + JSON), holding the stage's network
(``model/...``), the tokenizer it works on (``tokenizer/...``, so every later stage is
self-contained), the optimiser state and the sampling generator's state. Checkpoints are swapped
in whole (``agents.run_state``); Ctrl-C or SIGTERM saves at the end of the step; ``resume``
continues a run as if it had never stopped.

Under torchrun (``agents/distributed.py``) every rank reads all the recordings and draws its own
clips and noise (its generator seeded ``seed`` + its global rank, ``batch`` clips each); gradients
are averaged over the ranks every step, so the ranks keep one network; rank 0 alone logs and writes
the checkpoint, with every rank's generators in it; a resume needs as many processes.

- ``tokenizer``: the autoencoder on single frames of the recordings (its latent scale is fitted
  on a fixed sample of frames at every save);
- ``teacher``: flow matching on latent clips, the first ``context`` frames given (``init``: a
  tokenizer checkpoint);
- ``student``: Diffusion Forcing, initialised from the teacher (``init``: a teacher checkpoint);
- ``distill``: the student distilled to ``distill_steps`` denoising steps on its own rollouts, a
  frozen copy of it taking ``reference_steps`` as the target (``student.distill_loss``; ``init``: a
  student checkpoint). It writes a student checkpoint (kind ``world_model_student``) that samples
  with ``distill_steps`` steps, which ``DreamEnv`` and ``rollout_world.py`` read as any student.
"""

from __future__ import annotations

import dataclasses
import json
import signal
from pathlib import Path
from typing import Any, Literal

import torch
from tqdm import tqdm

from agents import checkpoint as ckpt
from agents import distributed
from agents.run_state import (
    differing_settings,
    existing,
    fresh_dir,
    load_optimizer,
    load_state_file,
    optimizer_tensors,
    rank_state_name,
    resume_differences,
    run_logged,
    run_quietly,
    save_state_file,
    swap_in,
    write_metrics,
)
from distill.world_model.attention import AttentionConfig
from distill.world_model.data import ClipDataset
from distill.world_model.positions import PositionConfig
from distill.world_model.student import Student, StudentConfig, distill_loss
from distill.world_model.teacher import Teacher, WorldModelConfig
from distill.world_model.tokenizer import Tokenizer, TokenizerConfig, psnr_of_mse
from envs.io import signals_held

Stage = Literal["tokenizer", "teacher", "student", "distill"]
LATENT_BLOCK = 32
"""Steps of an episode the frozen tokenizer encodes together, once per run (``StageRun.clip_latents``)."""
PREVIOUS = {"teacher": "tokenizer", "student": "teacher", "distill": "student"}
"""The stage whose checkpoint each later stage starts from (``init``)."""


def kind_stage(stage: Stage) -> Stage:
    """The checkpoint kind a stage writes: a distilled student is a student."""
    return "student" if stage == "distill" else stage


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
    """The previous stage's checkpoint: a tokenizer's (teacher stage), a teacher's (student stage) or a
    student's (distill stage)."""
    run_dir: Path | None = None
    """Run directory (default ``runs/world-model-<stage>-s<seed>``)."""
    steps: int = 2000
    """Optimiser steps."""
    batch: int = 8
    """Clips per step (tokenizer: single-frame clips, all agents' views; under torchrun: per process)."""
    clip: int = 8
    """Latent frames per training clip (teacher and student stages). A student only learns what
    its window looks like after an eviction (sinks, a gap, the newest frames) from clips longer
    than its ``window``."""
    context: int = 2
    """Teacher: clean context frames at the start of every clip (the student's are its sinks)."""
    lr: float = 3e-4
    """Adam learning rate."""
    seed: int = 0
    """Seed of the weights and of the clips and noise drawn (under torchrun, the clips and noise of
    each process: plus its global rank)."""
    save_every: int = 200
    """Steps between checkpoints (0: only at the end and on Ctrl-C)."""
    resume: bool = False
    """Continue the run in ``run_dir`` from its checkpoint."""
    device: str = "cpu"
    """Torch device (under torchrun, ``cuda``: each process its machine's GPU ``LOCAL_RANK``)."""
    tokenizer: TokenizerConfig = dataclasses.field(default_factory=TokenizerConfig)
    """Tokenizer shape (tokenizer stage; later stages take the checkpoint's)."""
    model: WorldModelConfig = dataclasses.field(default_factory=WorldModelConfig)
    """Transformer shape (teacher stage; latent and action sizes are taken from the data; the
    student stage takes the teacher's)."""
    student: StudentConfig = dataclasses.field(default_factory=StudentConfig)
    """Time structure of the student (student stage)."""
    distill_steps: int = 2
    """Distill stage: the denoising steps per block the distilled student samples with."""
    reference_steps: int = 16
    """Distill stage: the steps of the frozen copy whose result the student learns to reach."""

    def __post_init__(self) -> None:
        if self.stage not in ("tokenizer", "teacher", "student", "distill"):
            raise ValueError(f"stage must be tokenizer, teacher, student or distill, got {self.stage!r}")
        for name in ("steps", "batch", "clip", "distill_steps", "reference_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.stage != "tokenizer" and self.init is None:
            raise ValueError(f"the {self.stage} stage needs init: a {PREVIOUS[self.stage]} checkpoint")
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
        elif cfg.stage == "student":
            self.tok, teacher, meta = load_stage(cfg.init, "teacher", cfg.device)
            self.model_cfg = model_config(meta["model"])
            self.net = Student.from_teacher(teacher, cfg.student).to(self.dev)
        else:  # distill: the student to few steps, a frozen copy of it with many steps the target
            self.tok, start, meta = load_stage(cfg.init, "student", cfg.device)
            self.model_cfg = model_config(meta["model"])
            base = StudentConfig(**meta["student"])
            self.student_cfg = dataclasses.replace(base, steps=cfg.distill_steps)
            self.net = Student(self.model_cfg, self.student_cfg).to(self.dev)
            self.net.load_state_dict(start.state_dict())
            self.reference = Student(self.model_cfg, dataclasses.replace(base, steps=cfg.reference_steps))
            self.reference.load_state_dict(start.state_dict())
            self.reference.to(self.dev).eval().requires_grad_(False)
        self.tok.requires_grad_(cfg.stage == "tokenizer")
        self.params = [p for p in self.net.parameters() if p.requires_grad]
        self.opt = torch.optim.Adam(self.params, lr=cfg.lr)
        self.world_size, self.rank = distributed.world_size(), distributed.rank()
        self.gen = torch.Generator().manual_seed(cfg.seed + self.rank)
        self.step, self.history = 0, []
        # Latents of the frozen tokenizer, encoded once per block of LATENT_BLOCK steps of an episode.
        self._latents: dict[tuple[int, int], torch.Tensor] = {}

    def clip_latents(self, indices: list[int]) -> torch.Tensor:
        """The frozen tokenizer's latents ``[B, T, A, C, h, w]`` of clips ``indices`` of the data.
        Each episode is encoded in fixed blocks of ``LATENT_BLOCK`` steps, each the first time a clip
        touches it, and kept: a frame is encoded once in a run, always in the same company (so the
        latents, and a resumed run, do not depend on which clips came first)."""
        T = self.data.clip
        out = []
        for i in indices:
            e, s = self.data.index[i]
            blocks = range(s // LATENT_BLOCK, (s + T - 1) // LATENT_BLOCK + 1)
            for b in blocks:
                if (e, b) not in self._latents:
                    frames = self.data.episodes[e][0][b * LATENT_BLOCK : (b + 1) * LATENT_BLOCK]
                    with torch.no_grad():
                        self._latents[(e, b)] = self.tok.encode(torch.from_numpy(frames).to(self.dev))
            joined = torch.cat([self._latents[(e, b)] for b in blocks])
            first = s - blocks[0] * LATENT_BLOCK
            out.append(joined[first : first + T])
        return torch.stack(out)

    def loss(self) -> dict[str, float]:
        """One optimiser step on a random batch; its stats."""
        idx = torch.randint(len(self.data), (self.cfg.batch,), generator=self.gen).tolist()
        self.net.train()
        if self.cfg.stage == "tokenizer":
            loss = self.tok.loss(self.data.batch(idx)[0].to(self.dev))
        else:
            latents = self.clip_latents(idx)
            actions = self.data.actions(idx).to(self.dev)
            if self.cfg.stage == "teacher":
                loss = self.net.loss(latents, actions, self.cfg.context, self.gen)
            elif self.cfg.stage == "student":
                loss = self.net.loss(latents, actions, self.gen)
            else:
                loss = distill_loss(self.net, self.reference, latents, actions, self.gen)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients_(self.params)  # (before clipping: the combined batch's gradient)
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
        self.opt.step()
        self.step += 1
        value = float(distributed.mean(loss.detach()))  # every rank's batch
        stats = {f"loss/{self.cfg.stage}": value}
        if self.cfg.stage == "tokenizer":
            stats["tokenizer/psnr_db"] = psnr_of_mse(value)
        return stats

    def own_state(self) -> dict[str, torch.Tensor]:
        """This rank's own part of the training state: its generators."""
        return {"rng": self.gen.get_state(), "rng/torch": torch.get_rng_state()}

    def save(self, run_dir: Path) -> Path:
        """Write ``run_dir/checkpoint`` atomically (the whole directory swapped in). Under torchrun
        every rank calls it; rank 0 writes, with rank k's generators in ``train_state.rank<k>.*``."""
        if self.cfg.stage == "tokenizer":  # the latent scale the later stages divide by (every rank: one)
            sample = self.data.batch(range(min(len(self.data), 64)))[0].to(self.dev)
            self.tok.fit_scale(sample)
        ranks = distributed.gather_to_main(self.own_state())
        if ranks is None:  # not rank 0: it writes; every rank returns once the checkpoint is in place
            distributed.barrier()
            return run_dir / "checkpoint"
        extra = {**optimizer_tensors(self.opt), **ranks[0]}
        meta = {
            "step": self.step,
            "envs": list(self.cfg.envs),
            "recordings": [str(r) for r in self.cfg.recordings],
            "history": self.history,
            **({"world_size": self.world_size} if self.world_size > 1 else {}),
        }
        tmp = fresh_dir(run_dir, "checkpoint")
        net = None if self.cfg.stage == "tokenizer" else self.net
        if self.cfg.stage == "distill":
            meta["distilled"] = {"from": str(self.cfg.init), "reference_steps": self.cfg.reference_steps}
        save_stage(tmp, kind_stage(self.cfg.stage), self.tok, net, self.model_cfg, self.student_cfg, extra, meta)
        for k, own in enumerate(ranks[1:], start=1):
            save_state_file(tmp / f"{rank_state_name(k)}.safetensors", own)
        final = swap_in(tmp, run_dir / "checkpoint")
        distributed.barrier()
        return final

    def restore(self, run_dir: Path) -> None:
        """Continue from ``run_dir/checkpoint``: weights, optimiser, generator, counters, history."""
        path = existing(run_dir / "checkpoint")
        tensors, meta = ckpt.load(path, kind=f"world_model_{kind_stage(self.cfg.stage)}")
        saved_world = meta.get("world_size", 1)
        if saved_world != self.world_size:
            raise ckpt.CheckpointError(
                f"{path}: saved by world_size {saved_world} processes, resumed by {self.world_size}"
            )
        ckpt.fill(self.tok, {k[10:]: v for k, v in tensors.items() if k.startswith("tokenizer/")}, path)
        if self.cfg.stage != "tokenizer":
            ckpt.fill(self.net, {k[6:]: v for k, v in tensors.items() if k.startswith("model/")}, path)
        load_optimizer(self.opt, tensors, self.dev)
        own = tensors if self.rank == 0 else load_state_file(path / f"{rank_state_name(self.rank)}.safetensors")
        self.gen.set_state(own["rng"])
        if "rng/torch" in own:  # (saved since runs can span processes)
            torch.set_rng_state(own["rng/torch"])
        self.step, self.history = meta["step"], meta["history"]


def _jsonable(cfg: TrainConfig) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def default_run_dir(cfg: TrainConfig) -> Path:
    """``cfg.run_dir``, or ``runs/world-model-<stage>-s<seed>``."""
    return cfg.run_dir or Path("runs") / f"world-model-{cfg.stage}-s{cfg.seed}"


def train(cfg: TrainConfig) -> Path:
    """Run one stage to ``cfg.steps`` (or resume it); returns the run directory. Under torchrun, as
    one rank of several (``agents/distributed.py``)."""
    return distributed.as_rank(cfg.device, lambda ranks: _train(cfg, ranks))


def _train(cfg: TrainConfig, ranks: distributed.Ranks) -> Path:
    main = ranks.rank == 0
    run_dir = default_run_dir(cfg)
    config_file = run_dir / "config.json"
    config = {**_jsonable(cfg), "world_size": ranks.world_size}  # processes (torchrun); a resume needs as many
    if cfg.resume:
        if not config_file.exists():
            raise ValueError(f"resume: no run to continue in {run_dir} (no config.json)")
        saved = {"world_size": 1, **json.loads(config_file.read_text())}  # older runs: one process
        if saved["stage"] != cfg.stage or saved["seed"] != cfg.seed:
            raise ValueError(f"resume: {run_dir} is a {saved['stage']} run of seed {saved['seed']}")
        differ = resume_differences(saved, config, ("resume", "steps", "run_dir", "save_every"))
        if differ:
            raise ValueError("resume: " + differing_settings(run_dir, differ))
    elif (run_dir / "checkpoint").exists():
        raise ValueError(f"{run_dir} already holds a run: resume it, or choose another run_dir")
    run = StageRun(dataclasses.replace(cfg, device=distributed.local_device(cfg.device, ranks) or "cpu"))
    distributed.broadcast_module_(run.net)  # (the same seed builds the same network: a safeguard)
    if cfg.resume:
        run.restore(run_dir)
        if main:
            write_metrics(run_dir, run.history)
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        config_file.write_text(json.dumps(config, indent=1))
    bar = tqdm(total=cfg.steps, initial=run.step, desc=f"world model: {cfg.stage}", unit="step", disable=not main)

    def body(log: Any) -> None:
        while run.step < cfg.steps:
            stats = run.loss()
            head = {"iteration": run.step, "step": run.step}
            if run.world_size == 1:
                log(stats, head, run.step, 1, ("loss", "tokenizer"))
                continue
            with signals_held():  # every rank stops at the end of the same step
                if distributed.any_rank(log.stop.signum is not None) and log.stop.signum is None:
                    log.stop.signum = signal.SIGTERM
                log(stats, head, run.step, 1, ("loss", "tokenizer"))

    if main:
        run_logged(
            run_dir, run.history, bar, body, lambda: run.save(run_dir), resumed=cfg.resume, save_every=cfg.save_every
        )
    else:
        bar.close()
        run_quietly(run_dir, run.history, body, lambda: run.save(run_dir), cfg.save_every)
    return run_dir
