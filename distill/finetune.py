"""RL fine-tuning of a vision student: PPO on the student's own observations, with a KL penalty
toward the teacher's action distribution (the recipe of the robot-soccer-from-vision work).

The actor is the student (camera + ``proprio``; reactive students, ``memory=none`` with one
frame, or GRU students, ``memory=gru``), the critic reads the privileged ``critic`` group
(asymmetric actor-critic: the critic is only needed in training), and the loss is PPO's clipped
surrogate, value loss and entropy bonus plus ``kl_coef * KL(teacher || student)`` on every
sampled state, which keeps the student near the behaviour it was distilled to while the task
reward improves it. With ``kl_target`` > 0 the coefficient adapts to keep that KL near the target
(the adaptive KL penalty of the robot-soccer work). The critic is warmed up for ``critic_warmup``
updates with the student frozen, since it starts from nothing.

A GRU student acts with its memory carried across rollouts; each rollout keeps the memory it
started from, and the update replays whole rollouts of a subset of the slots from that memory
(minibatches over slots, not steps), cutting it at episode starts as acting did, so the
log-probabilities of the first epoch equal those the rollout sampled with.

Fine-tuning runs in one process: under torchrun (several processes) it is refused by name
(``--finetune.frames``); fine-tune the distilled student in a single process with ``--init-from``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from agents.actor import GaussianActor
from agents.ppo.algorithm import Critic, gaussian_kl, surrogate_loss, value_loss
from agents.ppo.learner_env import Team
from agents.ppo.storage import gae
from agents.run_state import IterationLog, run_logged
from distill.students import Student
from envs.base import torch_threads


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """RL fine-tuning of the student (off unless ``frames`` > 0)."""

    frames: int = 0
    """Student frames of PPO fine-tuning after distillation (0: none)."""
    kl_coef: float = 0.1
    """Weight of KL(teacher || student) in the loss."""
    steps_per_env: int = 32
    """Rollout length per slot between updates."""
    epochs: int = 3
    """Passes over each rollout."""
    minibatches: int = 4
    """Minibatches per pass."""
    gamma: float = 0.99
    """Discount."""
    lam: float = 0.95
    """GAE lambda."""
    clip: float = 0.2
    """PPO ratio clip (and value clip)."""
    lr: float = 1e-4
    """Adam learning rate of student and critic."""
    entropy_coef: float = 0.0
    """Entropy bonus."""
    value_coef: float = 1.0
    """Value loss weight."""
    max_grad_norm: float = 1.0
    """Gradient clipping."""
    critic_warmup: int = 5
    """Updates that train only the critic before the student moves."""
    kl_target: float = 0.0
    """0: ``kl_coef`` stays fixed. > 0: after each update the coefficient is multiplied by 1.5 when
    the mean KL to the teacher was above 1.5 x the target and divided by 1.5 when below 1/1.5 x."""


class StudentPPO:
    """PPO fine-tuning of ``student`` in ``env`` (learner slots as in distillation)."""

    def __init__(
        self,
        env: Any,
        student: Student,
        teacher: GaussianActor,
        cfg: FinetuneConfig,
        seed: int,
        learners: list[int],
        opponent: Any = None,
        critic_group: str = "critic",
    ) -> None:
        if student.cfg.memory not in ("none", "gru") or student.cfg.frame_stack != 1:
            raise ValueError(
                "RL fine-tuning supports reactive students (memory 'none', frame_stack 1) and GRU students "
                f"(memory 'gru'), got memory {student.cfg.memory!r} with frame_stack {student.cfg.frame_stack}"
            )
        self.recurrent = student.cfg.memory == "gru"
        self.kl_coef = cfg.kl_coef
        self.env, self.student, self.teacher, self.cfg = env, student, teacher, cfg
        self.team, self.critic_group = Team(env, opponent, learners), critic_group
        self.K, self.N = self.team.K, self.team.num_slots
        dev = env.device
        with torch.random.fork_rng():
            torch.manual_seed(seed + 17)
            self.critic = Critic(env.observation_spaces[critic_group].shape[0], (256, 256)).to(dev)
        self.params = list(student.parameters()) + list(self.critic.parameters())
        self.optimizer = torch.optim.Adam(self.params, lr=cfg.lr)
        self.generator = torch.Generator().manual_seed(seed + 18)
        self.updates = 0
        self._obs: dict[str, torch.Tensor] | None = None
        self._state = student.init_state(self.N, dev) if self.recurrent else None  # GRU memory [1, N, hidden]
        self._first = torch.ones(self.N, dtype=torch.bool, device=dev)  # slots whose episode starts now

    def _slots(self, obs: dict[str, torch.Tensor], group: str) -> torch.Tensor:
        return self.team.slots(obs, group)

    def normal(self, mu: torch.Tensor) -> torch.distributions.Normal:
        return torch.distributions.Normal(mu, self.student.log_std.exp().expand_as(mu))

    def _dist(self, img: torch.Tensor, prop: torch.Tensor) -> torch.distributions.Normal:
        first = torch.ones(img.shape[0], 1, dtype=torch.bool, device=img.device)
        mu, _ = self.student(img[:, None], prop[:, None], first)
        return self.normal(mu[:, 0])

    def rollout(self) -> dict[str, Any]:
        """``steps_per_env`` steps of every slot, sampled from the student; GAE over them."""
        # One torch thread for the small per-step inference on the CPU (see Distiller.collect).
        with torch_threads(1) if self.env.device.type == "cpu" else contextlib.nullcontext():
            return self._rollout()

    @torch.no_grad()
    def _rollout(self) -> dict[str, Any]:
        env, cfg, dev, T = self.env, self.cfg, self.env.device, self.cfg.steps_per_env
        if self._obs is None:
            self._obs = env.reset()
        obs = self._obs
        keys = ("img", "proprio", "critic_obs", "teacher_mu", "actions", "log_probs", "values", "rewards")
        buf: dict[str, list[torch.Tensor]] = {k: [] for k in (*keys, "dones", "bootstrap", "first")}
        outcome: list[float] = []
        h0 = self._state[0].clone() if self._state is not None else None
        for _ in range(T):
            img = self.student.gather_image(functools.partial(self._slots, obs))
            prop = self._slots(obs, "proprio").float()
            c_obs = self._slots(obs, self.critic_group).float()
            self.critic.norm.update(c_obs)
            if self.recurrent:
                mu, self._state = self.student.step(img, prop, self._state, self._first)
                dist = self.normal(mu)
            else:
                dist = self._dist(img, prop)
            buf["first"].append(self._first)
            act = dist.mean + dist.stddev * torch.randn(dist.mean.shape, generator=self.generator).to(dev)
            t_mu = self.teacher(self._slots(obs, self.teacher.group).float())
            obs, reward, term, trunc, info = env.step(self.team.joint(obs, act))
            rep = lambda x: x.repeat_interleave(self.K).float()  # noqa: E731
            boot = torch.zeros(self.N, device=dev)
            if "final_obs" in info and bool(trunc.any()):
                boot = rep(trunc & ~term) * self.critic(self._slots(info["final_obs"], self.critic_group).float())
            for k, v in zip(
                keys,
                (img, prop, c_obs, t_mu, act, dist.log_prob(act).sum(-1), self.critic(c_obs), None),
                strict=True,
            ):
                if v is not None:
                    buf[k].append(v)
            buf["rewards"].append(reward[:, self.team.learners].reshape(-1).float())
            buf["dones"].append(rep(term | trunc))
            buf["bootstrap"].append(boot)
            done = term | trunc
            self._first = rep(done).bool()
            if "success" in info and done.any():
                outcome += info["success"][done].float().tolist()
            if "score" in info and done.any():
                sc = info["score"][done]
                outcome += (sc[:, 0] > sc[:, 1]).float().tolist()
        self._obs = obs
        data = {k: torch.stack(v) for k, v in buf.items()}
        last = self.critic(self._slots(obs, self.critic_group).float())
        data["advantages"], data["returns"] = gae(
            data["rewards"], data["values"], data["dones"], data["bootstrap"], last, cfg.gamma, cfg.lam
        )
        data["outcome"] = outcome
        if h0 is not None:
            data["h0"] = h0
        return data

    def minibatches(
        self, data: dict[str, Any]
    ) -> Iterator[tuple[dict[str, torch.Tensor], Callable[[], torch.distributions.Normal]]]:
        """One epoch of minibatches of ``data``, each with a function that gives the student's
        current action distribution on it: random steps of a reactive student; random slots,
        each with its whole rollout replayed from its stored memory, of a GRU student."""
        T, N = data["rewards"].shape
        cfg, dev = self.cfg, data["rewards"].device
        tensors = {k: v for k, v in data.items() if isinstance(v, torch.Tensor) and k != "h0"}
        if not self.recurrent:
            flat = {k: v.reshape(T * N, *v.shape[2:]) for k, v in tensors.items()}
            size = (T * N) // cfg.minibatches
            perm = torch.randperm(T * N, generator=self.generator).to(dev)
            for i in range(cfg.minibatches):
                mb = {k: v[perm[i * size : (i + 1) * size]] for k, v in flat.items()}
                yield mb, functools.partial(self._dist, mb["img"], mb["proprio"])
            return
        size = max(1, N // cfg.minibatches)
        perm = torch.randperm(N, generator=self.generator).to(dev)
        for i in range(min(cfg.minibatches, N)):
            cols = perm[i * size : (i + 1) * size]
            seq = {k: v[:, cols].transpose(0, 1) for k, v in tensors.items()}  # [B, T, ...]

            def dist(
                seq: dict[str, torch.Tensor] = seq, h0: torch.Tensor = data["h0"][cols]
            ) -> torch.distributions.Normal:
                mu, _ = self.student(seq["img"], seq["proprio"], seq["first"], h0)
                return self.normal(mu.flatten(0, 1))

            yield {k: v.flatten(0, 1) for k, v in seq.items()}, dist

    def update(self, data: dict[str, Any]) -> dict[str, float]:
        cfg = self.cfg
        warm = self.updates < cfg.critic_warmup
        t_std = self.teacher.log_std.exp().detach()
        sums = {"surrogate": 0.0, "value": 0.0, "kl_teacher": 0.0, "entropy": 0.0}
        n = 0
        for _ in range(cfg.epochs):
            for mb, student_dist in self.minibatches(data):
                v_loss = value_loss(self.critic(mb["critic_obs"]), mb["values"], mb["returns"], cfg.clip)
                if warm:
                    loss = cfg.value_coef * v_loss
                    surr = kl_t = ent = torch.zeros(())
                else:
                    dist = student_dist()
                    adv = mb["advantages"]
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                    surr = surrogate_loss(dist.log_prob(mb["actions"]).sum(-1), mb["log_probs"], adv, cfg.clip)
                    kl_t = gaussian_kl(mb["teacher_mu"], t_std.expand_as(dist.mean), dist.mean, dist.stddev).mean()
                    ent = dist.entropy().sum(-1).mean()
                    loss = surr + cfg.value_coef * v_loss + self.kl_coef * kl_t - cfg.entropy_coef * ent
                self.optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm)
                self.optimizer.step()
                for k, v in (("surrogate", surr), ("value", v_loss), ("kl_teacher", kl_t), ("entropy", ent)):
                    sums[k] += float(v.detach())
                n += 1
        self.updates += 1
        stats = {f"finetune/{k}": v / n for k, v in sums.items()}
        if cfg.kl_target > 0 and not warm:
            if stats["finetune/kl_teacher"] > 1.5 * cfg.kl_target:
                self.kl_coef *= 1.5
            elif stats["finetune/kl_teacher"] < cfg.kl_target / 1.5:
                self.kl_coef /= 1.5
        stats["finetune/kl_coef"] = self.kl_coef
        return stats


def refuse_several_processes(cfg: FinetuneConfig) -> None:
    """Fine-tuning is single-process: a ``ValueError`` naming ``--finetune.frames`` when ``cfg`` asks
    for it under torchrun (several processes: the process group's size, or ``WORLD_SIZE`` before it
    is joined)."""
    from agents import distributed

    n = distributed.world_size() if distributed.initialized() else int(os.environ.get("WORLD_SIZE", 1))
    if cfg.frames > 0 and n > 1:
        raise ValueError(
            f"--finetune.frames {cfg.frames}: RL fine-tuning runs in one process, not under torchrun "
            f"(world_size {n}); distil with torchrun, then fine-tune the student in one process "
            "(--init-from <run>/checkpoint --total-frames 0 --finetune.frames N)"
        )


def finetune_student(self: Any, cfg: FinetuneConfig, progress: bool = True) -> list[dict[str, float]]:
    """RL fine-tuning of a ``Distiller``'s (``self``) distilled student for ``cfg.frames`` frames,
    logged beside the distillation (x axis: frames collected in all). Ctrl-C saves the
    student as it is; fine-tuning itself does not resume. One process only (not under torchrun)."""
    refuse_several_processes(cfg)
    ppo = StudentPPO(self.env, self.student, self.teacher, cfg, self.seed, self.learners, self.opponent)
    per_iter = cfg.steps_per_env * self.slots
    iters = max(1, math.ceil(cfg.frames / per_iter))
    bar = tqdm(total=iters * per_iter, unit="frame", unit_scale=True, desc="PPO fine-tuning", disable=not progress)

    def body(log: IterationLog) -> None:
        for _ in range(iters):
            start = time.perf_counter()
            self.student.train()
            data = ppo.rollout()
            stats = ppo.update(data)
            self.student.eval()
            self.frames += per_iter
            self.iteration += 1
            if data["outcome"]:
                key = "episode/win_rate" if self.env.competitive else "episode/success_rate"
                stats[key] = sum(data["outcome"]) / len(data["outcome"])
                stats["episode/count"] = float(len(data["outcome"]))
            stats["finetune/reward"] = float(data["rewards"].mean())
            stats["perf/frames_per_s"] = per_iter / (time.perf_counter() - start)
            head = {"iteration": self.iteration, "frames": self.frames, "dagger/beta": 0.0}
            log(stats, head, self.frames, per_iter, ("episode/", "finetune/"))

    run_logged(self.run_dir, self.history, bar, body, self.save, save_every=self.save_every)
    return self.history
