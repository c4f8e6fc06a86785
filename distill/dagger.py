"""DAgger distillation of a privileged teacher into an egocentric vision student.

Each iteration the student drives the batched worlds (with probability ``beta`` per world and
step the teacher drives instead; ``beta`` decays linearly to 0), the teacher labels every
visited state from its own privileged observation, and the labelled steps go into a ring buffer
of recent on-policy data that the student is then trained on:

- ``mse`` (default): squared error between the student's and the teacher's action means;
- ``kl``: KL(teacher || student) of the two Gaussian action distributions;
- relational alignment (EgoPush, ``align_coef``): the student's per-role image embeddings and
  the teacher's per-role embeddings should have the same pairwise cosine-similarity matrix.
  The teacher is an MLP over a flat keypoint vector, so its embedding of a role is that role's
  contribution to the first hidden layer, ``W1[:, cols(role)] @ norm(obs)[cols(role)]``;
- privileged prediction (``aux_coef``, off by default): a linear head on the student's features
  (after its memory) predicts the teacher's normalised observation, a denser signal than the
  action alone for learning where the things the teacher reads are. The head is used in training
  only; it is not part of the saved student (its weights go with the training state). A student
  with ``head=teacher`` acts through that prediction (its own estimator, fed to a frozen copy of
  the teacher's network), and ``aux_coef`` weights the estimator's loss.

Everything is tensors on the env's device. ``Distiller`` is the runner: run directory,
TensorBoard, ``metrics.jsonl``, progress bar, checkpoints (Ctrl-C saves) and ``resume``. Under
torchrun every rank steps and renders its own worlds into its own buffer, the gradients are averaged
over the ranks every update, and rank 0 logs and writes the checkpoint (``agents/distributed.py``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import signal
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from agents import distributed
from agents.checkpoint import CheckpointError
from agents.policies import make_policy
from agents.ppo.learner_env import Team
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
from distill import warm_start
from distill.buffer import SequenceBuffer
from distill.dagger_config import DaggerConfig
from distill.finetune import FinetuneConfig
from distill.losses import action_loss, alignment_loss, random_shift, teacher_role_embeddings
from distill.students import Student, StudentConfig
from distill.teacher_env import load_teacher, segmentation_classes, student_geometry
from envs.base import torch_threads
from envs.config import to_dict
from envs.io import signals_held

CKPT = "checkpoint"


class Distiller:
    """DAgger from ``teacher`` (a checkpoint directory) into a new ``Student`` on ``env``.

    Args:
        env: a batched env made with ``student_env_overrides`` of the teacher (so that it renders
            the student's camera and gives the teacher's observation group).
        teacher_path: the teacher checkpoint.
        student_cfg, cfg: the student network and DAgger settings.
        total_frames: learner frames (worlds x learning agents x steps, every rank's together under
            torchrun) to collect.
        seed: seeds the student, the sampling and the mixing (under torchrun, this rank's: the base
            seed + its global rank; rank 0's student is broadcast at the start).
        run_dir: logs and ``checkpoint/``.
        opponent: the other team's policy in competitive envs (``scripted``, ``random`` or a path).
        save_every: iterations between checkpoints, so that a crash loses at most that many (0: save
            only at the end and on Ctrl-C or SIGTERM).
        init_from: a student checkpoint (of this env, with ``student_cfg``) whose weights the student
            starts from, to go on distilling a trained student (a fresh optimiser, buffer and beta).
        init_encoder_from: a student checkpoint (of this env and image) whose image encoder and proprio
            normaliser the student starts from; its memory and head start afresh.
    """

    def __init__(
        self,
        env: Any,
        teacher_path: str | Path | None,
        student_cfg: StudentConfig,
        cfg: DaggerConfig,
        total_frames: int,
        seed: int,
        run_dir: str | Path,
        opponent: str = "scripted",
        save_every: int = 0,
        init_from: str | Path | None = None,
        init_encoder_from: str | Path | None = None,
    ) -> None:
        self.env, self.cfg, self.seed, self.run_dir = env, cfg, seed, Path(run_dir)
        self.save_every = save_every
        self.teacher_path = str(teacher_path)
        self.teacher, self.teacher_meta = load_teacher(teacher_path, getattr(env, "name", None))
        self.teacher = self.teacher.to(env.device)
        if self.teacher.group not in env.observation_spaces:
            raise ValueError(f"the env gives no {self.teacher.group!r} group for the teacher")
        self.image_group = next((g for g in ("depth_layers", "camera") if g in env.observation_spaces), None)
        if self.image_group is None:
            raise ValueError("the env renders no student camera: make it with student_env_overrides(teacher meta)")
        team = Team(env, make_policy(opponent, env, seed=seed + 1) if env.competitive else None)
        self.team, self.learners, self.opponent = team, team.learners, team.opponent
        self.K, self.slots = team.K, team.num_slots
        img_shape = env.observation_spaces[self.image_group].shape
        prop_dim = env.observation_spaces["proprio"].shape[0]
        seg_classes = segmentation_classes(env, student_cfg)
        geometry = student_geometry(env, student_cfg)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            teacher_dims = (self.teacher.obs_dim, self.teacher.hidden) if student_cfg.head == "teacher" else None
            self.student = Student(
                self.image_group, img_shape, prop_dim, env.act_dim, student_cfg, geometry, seg_classes, teacher_dims
            )
            self.student = self.student.to(env.device)
        with torch.no_grad():
            self.student.log_std.copy_(self.teacher.log_std)
        self.init_from = None if init_from is None else str(init_from)
        if init_from is not None:
            warm_start.whole_student(self.student, Path(init_from), student_cfg, self.env.name)
        self.init_encoder_from = None if init_encoder_from is None else str(init_encoder_from)
        if init_encoder_from is not None:
            warm_start.encoder_only(self.student, Path(init_encoder_from), self.env.name)
        if student_cfg.head == "teacher":  # (after init_from: the head is always this run's teacher)
            if cfg.aux_coef <= 0:
                raise ValueError(
                    "head 'teacher' learns to estimate the teacher's observation: set aux_coef > 0 "
                    "(--dagger.aux-coef 1.0)"
                )
            self.student.load_teacher_head(self.teacher)
        if cfg.teacher_head_lr > 0:
            if student_cfg.head != "teacher":
                raise ValueError(
                    f"teacher_head_lr trains a head 'teacher' student's copy of the teacher; head {student_cfg.head!r}"
                )
            self.student.teacher_head.requires_grad_(True)
        self.align = cfg.align_coef if cfg.align_coef is not None else (0.1 if self.student.roles else 0.0)
        if self.align > 0 and not self.student.roles:
            raise ValueError("relational alignment needs role layers (depth_layers); set align_coef 0")
        self.aux_head: torch.nn.Linear | None = None
        if cfg.aux_coef > 0 and student_cfg.head != "teacher":  # a teacher head's estimate is its own
            with torch.random.fork_rng():
                torch.manual_seed(seed + 3)
                self.aux_head = torch.nn.Linear(self.student.feat_dim, self.teacher.obs_dim).to(env.device)
        tuned = list(self.student.teacher_head.parameters()) if cfg.teacher_head_lr > 0 else []
        rest = [p for p in self._trained_parameters() if all(p is not q for q in tuned)]
        groups = [{"params": rest, "scale": 1.0}] + ([{"params": tuned, "scale": cfg.teacher_head_lr}] if tuned else [])
        self.optimizer = torch.optim.Adam(groups, lr=cfg.lr)
        self.generator = torch.Generator().manual_seed(seed)
        self.seq_len = self.student.memory.train_seq_len(cfg.seq_len)
        if cfg.buffer_steps < max(self.seq_len, cfg.steps_per_iter):
            raise ValueError(
                f"buffer_steps {cfg.buffer_steps} must hold seq_len ({self.seq_len}) "
                f"and steps_per_iter ({cfg.steps_per_iter})"
            )
        # What the memory needs back in training (a GRU's start state only with ``stored_state``).
        self._stored = {k: v for k, v in self.student.memory.stored().items() if cfg.stored_state or k != "hidden"}
        self.buffer = self._make_buffer(img_shape, seg_classes, prop_dim)
        self.world_size = distributed.world_size()
        # Every rank's frames: the frame counter, beta and the learning rate schedule are the same on every rank.
        self.frames_per_iter = cfg.steps_per_iter * self.slots * self.world_size
        # No DAgger at all (total_frames 0) only for a trained student (init_from), e.g. to fine-tune it by RL.
        self.total_iters = max(0 if init_from is not None else 1, math.ceil(total_frames / self.frames_per_iter))
        self.iteration = 0
        self.frames = 0
        self.history: list[dict[str, float]] = []
        self._obs: dict[str, torch.Tensor] | None = None
        self._state: Any = None
        self._first = torch.ones(self.slots, dtype=torch.bool, device=env.device)

    def _make_buffer(self, img_shape: tuple[int, ...], seg_classes: int, prop_dim: int) -> SequenceBuffer:
        """The buffer of everything a training step reads: images, proprio, the teacher's observation
        and action, episode starts, and each memory kind's stored inputs (GRU state, map, estimate)."""
        img_dtype = torch.uint8 if self.image_group == "camera" else torch.float16
        shapes = {
            "img": ((img_shape[0] + (1 if seg_classes else 0), *img_shape[1:]), img_dtype),
            "proprio": ((prop_dim,), torch.float32),
            "teacher_obs": ((self.teacher.obs_dim,), torch.float32),
            "teacher_mu": ((self.env.act_dim,), torch.float32),
            "first": ((), torch.bool),
            **self._stored,
        }
        return SequenceBuffer(self.cfg.buffer_steps, self.slots, shapes, self.env.device)

    def _trained_parameters(self) -> list[torch.nn.Parameter]:
        aux = list(self.aux_head.parameters()) if self.aux_head is not None else []
        return [p for p in self.student.parameters() if p.requires_grad] + aux

    def lr(self) -> float:
        """The learning rate of the next update, from the fraction of the run's frames collected
        before it (``total_frames`` as given now: a ``--resume`` with more frames stretches it)."""
        cfg = self.cfg
        done = min(1.0, self.iteration / max(1, self.total_iters - 1))
        if cfg.lr_schedule == "linear":
            return cfg.lr + (cfg.lr_final - cfg.lr) * done
        if cfg.lr_schedule == "cosine":
            return cfg.lr_final + (cfg.lr - cfg.lr_final) * 0.5 * (1 + math.cos(math.pi * done))
        return cfg.lr

    def beta(self) -> float:
        if self.cfg.beta_frames <= 0:
            return 0.0
        return max(0.0, self.cfg.beta * (1 - self.frames / self.cfg.beta_frames))

    # -- collection -----------------------------------------------------------------------------
    @torch.no_grad()
    def collect(self) -> dict[str, float]:
        # Small per-step inference: one torch thread. Two threads spinning in OpenMP beside the
        # renderer's threads (or anything else on a 2-core machine) made it ~15x slower.
        with torch_threads(1) if self.env.device.type == "cpu" else contextlib.nullcontext():
            return self._collect()

    def _collect(self) -> dict[str, float]:
        env, dev = self.env, self.env.device
        if self._obs is None:
            self._obs = env.reset(seed=self.seed)
            self._state = self.student.init_state(self.slots, dev)
            if self.cfg.stagger_starts:  # each world's first episode cut short at a random step
                clock = torch.randint(env.max_episode_steps, (env.num_envs,), generator=self.generator)
                env.episode_length.copy_(clock.to(env.episode_length.device))
        obs, beta = self._obs, self.beta()
        outcome: dict[str, list[float]] = {}
        gap = 0.0
        for _ in range(self.cfg.steps_per_iter):
            img = self.student.gather_image(functools.partial(self.team.slots, obs))
            prop = self.team.slots(obs, "proprio").float()
            t_obs = self.team.slots(obs, self.teacher.group).float()
            t_mu = self.teacher(t_obs)
            distributed.update_normaliser(self.student.proprio_norm, prop)  # every rank's batch: one normaliser
            before = self._state
            s_mu, self._state = self.student.step(img, prop, self._state, self._first)
            stored = self.student.memory.stored_values(before, self._state)
            extra = {k: v for k, v in stored.items() if k in self._stored}
            gap += float(((s_mu - t_mu) ** 2).sum(-1).mean())
            self.buffer.add(img=img, proprio=prop, teacher_obs=t_obs, teacher_mu=t_mu, first=self._first, **extra)
            teacher_drives = torch.rand(env.num_envs, generator=self.generator).to(dev) < beta
            act = torch.where(teacher_drives.repeat_interleave(self.K)[:, None], t_mu, s_mu)
            obs, _, term, trunc, info = env.step(self.team.joint(obs, act))
            done = term | trunc
            self._first = done.repeat_interleave(self.K)
            if done.any():
                if "success" in info:
                    outcome.setdefault("success_rate", []).extend(info["success"][done].float().tolist())
                if "score" in info:
                    sc = info["score"][done]
                    outcome.setdefault("win_rate", []).extend((sc[:, 0] > sc[:, 1]).float().tolist())
        self._obs = obs
        # (sum, count) of each statistic, summed over the ranks: every rank's steps and episodes count.
        sums = {"dagger/action_gap": (gap, float(self.cfg.steps_per_iter))}
        for k, v in outcome.items():
            sums[f"episode/{k}"] = (sum(v), float(len(v)))
        sums = distributed.sum_stats(sums)
        stats = {"dagger/beta": beta, **{k: s / c for k, (s, c) in sums.items()}}
        ended = [c for k, (_, c) in sums.items() if k.startswith("episode/")]
        if ended:  # the worlds whose episode ended (every outcome counts them all)
            stats["episode/count"] = ended[0]
        return stats

    # -- updates --------------------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        img = batch["img"]
        if self.cfg.augment_shift > 0:
            img = random_shift(img, self.cfg.augment_shift, self.generator).to(img.dtype)
        inputs = self.student.memory.training_inputs({k: batch[k] for k in self._stored})
        feats, roles_s = self.student.features(img, batch["proprio"], batch["first"], inputs)
        mu_s = self.student.action_mean(feats)
        t_log_std = self.teacher.log_std.detach().expand_as(mu_s)
        act = action_loss(self.cfg.loss, mu_s, self.student.log_std.expand_as(mu_s), batch["teacher_mu"], t_log_std)
        total, terms = act, {f"loss/{self.cfg.loss}": float(act.detach())}
        if self.align > 0 and roles_s is not None:
            with torch.no_grad():
                roles_t = teacher_role_embeddings(self.teacher, batch["teacher_obs"].flatten(0, 1), self.student.roles)
            al = alignment_loss(roles_s.flatten(0, 1), roles_t)
            total = total + self.align * al
            terms["loss/align"] = float(al.detach())
        if self.aux_head is not None or self.student.teacher_dims is not None:
            with torch.no_grad():
                target = self.teacher.norm(batch["teacher_obs"].float()).clamp(-5, 5)
            est = self.aux_head(feats) if self.aux_head is not None else self.student.estimate(feats)
            aux = ((est - target) ** 2).mean()
            total = total + self.cfg.aux_coef * aux
            terms["loss/aux"] = float(aux.detach())
        return total, terms

    def backward(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """The loss of ``batch`` and its gradients in the trained parameters (under torchrun, averaged
        over the ranks: each rank's own minibatch, so the gradient of all of them together)."""
        total, terms = self.loss(batch)
        self.optimizer.zero_grad()
        total.backward()
        distributed.average_gradients_(self._trained_parameters())
        return terms

    def update(self) -> dict[str, float]:
        sums: dict[str, float] = {}
        length = min(self.seq_len, self.buffer.size)  # (shorter windows until the buffer holds seq_len steps)
        seqs = max(1, self.cfg.batch_frames // length)
        lr = self.lr()
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group["scale"]
        for _ in range(self.cfg.updates_per_iter):
            terms = self.backward(self.buffer.sample(seqs, length, self.generator))
            torch.nn.utils.clip_grad_norm_(self._trained_parameters(), self.cfg.max_grad_norm)
            self.optimizer.step()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v / self.cfg.updates_per_iter
        if self.world_size > 1:  # the losses of every rank's minibatches
            sums = {k: s / c for k, (s, c) in distributed.sum_stats({k: (v, 1.0) for k, v in sums.items()}).items()}
        sums["dagger/lr"] = lr
        return sums

    def finetune(self, cfg: FinetuneConfig, progress: bool = True) -> list[dict[str, float]]:
        """RL fine-tuning of the distilled student for ``cfg.frames`` frames (``distill.finetune``)."""
        from distill.finetune import finetune_student

        return finetune_student(self, cfg, progress)

    def learn(self, progress: bool = True) -> list[dict[str, float]]:
        """Distil until ``total_frames``; Ctrl-C or SIGTERM saves a checkpoint at the end of the
        iteration and raises ``KeyboardInterrupt``. Under torchrun every rank starts from rank 0's
        student (and privileged-prediction head), and a stop asked of any rank stops them all at the
        end of the same iteration."""
        for module in (self.student, self.aux_head):
            if module is not None:
                distributed.broadcast_module_(module)
        main = distributed.is_main()
        bar = tqdm(
            total=self.total_iters * self.frames_per_iter,
            initial=self.frames,
            unit="frame",
            unit_scale=True,
            desc=f"DAgger {self.env.name}",
            disable=not (progress and main),
        )

        def body(log: IterationLog) -> None:
            while self.iteration < self.total_iters:
                start = time.perf_counter()
                self.student.eval()
                stats = self.collect()
                collect = time.perf_counter() - start
                self.student.train()
                stats.update(self.update())
                self.student.eval()
                elapsed = time.perf_counter() - start
                self.iteration += 1
                self.frames += self.frames_per_iter
                stats["perf/collect_frames_per_s"] = self.frames_per_iter / collect
                stats["perf/frames_per_s"] = self.frames_per_iter / elapsed
                head = {"iteration": self.iteration, "frames": self.frames}
                if self.world_size == 1:
                    log(stats, head, self.frames, self.frames_per_iter, ("episode/", "loss/"))
                    continue
                # Every rank stops at the end of the same iteration: a stop asked of one before this
                # point stops all now; one asked after it waits for the next iteration's end.
                with signals_held():
                    if distributed.any_rank(log.stop.signum is not None) and log.stop.signum is None:
                        log.stop.signum = signal.SIGTERM
                    log(stats, head, self.frames, self.frames_per_iter, ("episode/", "loss/"))

        if main:
            run_logged(self.run_dir, self.history, bar, body, self.save, self.iteration or None, self.save_every)
        else:
            bar.close()
            run_quietly(self.run_dir, self.history, body, self.save, self.save_every)
        return self.history

    # -- checkpoints ----------------------------------------------------------------------------
    def save(self) -> Path:
        """Write ``run_dir/checkpoint`` atomically: the student (a policy ``eval.py`` loads) and the
        training state for ``resume`` (optimiser, generators, env snapshot; not the buffer). Under
        torchrun every rank calls it: each sends its own state (generators, worlds) to rank 0, which
        writes them all (rank k's in ``train_state.rank<k>.*``) into the directory it swaps in."""
        ranks = distributed.gather_to_main(self._own_state())
        if ranks is None:  # not rank 0: it writes; every rank returns once the checkpoint is in place
            distributed.barrier()
            return self.run_dir / CKPT
        tmp = fresh_dir(self.run_dir, CKPT)
        self.student.save(
            tmp,
            self.env.name,
            to_dict(self.env.cfg),
            teacher=self.teacher_path,
            teacher_observability=self.teacher_meta["env_config"].get("observability"),
            iteration=self.iteration,
            frames=self.frames,
            seed=self.seed,
            **({"init_from": self.init_from} if self.init_from else {}),
            **({"init_encoder_from": self.init_encoder_from} if self.init_encoder_from else {}),
        )
        tensors = optimizer_tensors(self.optimizer)
        if self.aux_head is not None:
            tensors.update({f"aux/{k}": v for k, v in self.aux_head.state_dict().items()})
        tensors.update(ranks[0])
        save_state_file(tmp / "train_state.safetensors", tensors)
        meta = {"iteration": self.iteration, "frames": self.frames, "seed": self.seed, "history": self.history}
        if self.world_size > 1:
            meta["world_size"] = self.world_size
        (tmp / "train_state.json").write_text(json.dumps(meta))
        for k, own in enumerate(ranks[1:], start=1):
            save_state_file(tmp / f"{rank_state_name(k)}.safetensors", own)
            (tmp / f"{rank_state_name(k)}.json").write_text(json.dumps({"rank": k, "seed": self.seed + k}))
        final = swap_in(tmp, self.run_dir / CKPT)
        distributed.barrier()
        return final

    def _own_state(self) -> dict[str, torch.Tensor]:
        """This rank's own part of the training state: its generators and its worlds' snapshot
        (tensors on the CPU)."""
        tensors = {"rng/runner": self.generator.get_state(), "rng/torch": torch.get_rng_state()}
        tensors.update({f"env/{k}": v for k, v in self.env.snapshot().items()})
        return {k: v.detach().cpu() for k, v in tensors.items()}

    def load(self) -> None:
        """Continue from ``run_dir/checkpoint`` (or ``checkpoint.old`` if a save was cut short).
        The buffer starts empty and the worlds restart from the saved state; under torchrun every
        rank reads the shared state and its own (``train_state.rank<k>.*``)."""
        path = existing(self.run_dir / CKPT)
        state = json.loads((path / "train_state.json").read_text())
        saved_world = state.get("world_size", 1)
        if saved_world != self.world_size:
            raise CheckpointError(f"{path}: saved by world_size {saved_world} processes, resumed by {self.world_size}")
        student, _ = Student.load(path)
        self.student.load_state_dict(student.state_dict())
        tensors = load_state_file(path / "train_state.safetensors")
        own = tensors
        rank = distributed.rank()
        if rank > 0:
            own = load_state_file(path / f"{rank_state_name(rank)}.safetensors")
        if self.aux_head is not None:
            aux = {k[4:]: v for k, v in tensors.items() if k.startswith("aux/")}
            if not aux:
                raise CheckpointError(f"{path} holds no privileged-prediction head, but aux_coef > 0")
            self.aux_head.load_state_dict(aux)
        load_optimizer(self.optimizer, tensors, self.env.device)
        self.generator.set_state(own["rng/runner"])
        torch.set_rng_state(own["rng/torch"])
        self.env.restore({k[4:]: v for k, v in own.items() if k.startswith("env/")})
        self._obs = self.env.observe()
        self._state = self.student.init_state(self.slots, self.env.device)
        self._first = torch.ones(self.slots, dtype=torch.bool, device=self.env.device)
        self.iteration, self.frames, self.history = state["iteration"], state["frames"], state["history"]
        if distributed.is_main():
            write_metrics(self.run_dir, self.history)
