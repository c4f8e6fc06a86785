"""The block-causal student: the teacher's network made causal over time, rolled out block by block.

A block is ``block`` latent frames of every agent, generated together. Within a block every token
sees the whole block; across blocks a token sees only earlier blocks, at most ``window`` frames in
all counting ``sink`` first frames that never leave (``attention.TimeMask``).

Training (``loss``) is Diffusion Forcing: every block gets its own flow time, so the student learns
to denoise a block whatever the state of the blocks before it; the first ``sink`` frames (the real
context at inference) are kept clean and not scored.

Inference (``CachedRollout``) per block: start from noise, take ``steps`` Euler steps, each
attending to the cached past (the block's own keys/values overwrite the same ring slots at every
step), then run the clean block once more to write its keys/values for good, and advance the ring.
Keys are stored rotated at absolute frame indices, so nothing is re-rotated when old frames leave.

Few-step distillation (``distill_loss``, the ``distill`` stage of ``train.py``): the student learns
to land in ``steps`` Euler steps where a frozen copy of itself lands in many, from the same noise,
given a past the student generated itself (its own rollout from the real context). That is ODE
distillation on its own rollouts (CausVid's ODE initialisation, with Self-Forcing's own-rollout
context), not DMD: DMD trains a second score network on the student's samples, which a 2-core CPU
cannot afford beside the student; the regression needs only forward passes of the frozen copy.

``rollout(mode=...)`` also runs the same sampler without a cache: ``"full"`` recomputes the whole
history every step (exactly what the cache computes: a cached key was computed once, from the
frames visible when it was written) and ``"window"`` recomputes only the frames the block can see
(constant cost; after the first eviction its deeper layers differ from the cache's, since evicted
frames no longer shape the kept ones). The benchmark times ``"window"`` against the cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch.nn import functional as F

from distill.world_model.attention import StreamCache, TimeMask
from distill.world_model.positions import assign_agents
from distill.world_model.teacher import Teacher, WorldModelConfig, WorldTransformer, flow_targets, sample_tau, shift_tau


@dataclass(frozen=True)
class StudentConfig:
    """Time structure and sampling of the causal student."""

    block: int = 2
    """Latent frames per block (generated together)."""
    window: int = 16
    """Frames a block sees, its own and the sinks included (gamma-World's student: 24)."""
    sink: int = 2
    """First frames kept in the window forever: by default the real context block."""
    steps: int = 4
    """Denoising steps per block."""

    def __post_init__(self) -> None:
        if self.block < 1 or self.steps < 1:
            raise ValueError(f"block and steps must be >= 1, got {self.block}, {self.steps}")
        if self.sink < 0 or self.sink % self.block:
            raise ValueError(f"sink ({self.sink}) must be a whole number of blocks of {self.block}")
        if self.window - self.sink < self.block:
            raise ValueError(f"window {self.window} minus sink {self.sink} must hold a block of {self.block}")

    @property
    def time(self) -> TimeMask:
        return TimeMask(self.block, self.window, self.sink)


class Student(torch.nn.Module):
    """A block-causal ``WorldTransformer`` with Diffusion-Forcing training and cached sampling."""

    def __init__(self, cfg: WorldModelConfig, scfg: StudentConfig) -> None:
        super().__init__()
        self.cfg, self.scfg = cfg, scfg
        self.net = WorldTransformer(cfg)

    @classmethod
    def from_teacher(cls, teacher: Teacher, scfg: StudentConfig) -> Student:
        """A student with the teacher's weights (the same network, made causal by its mask)."""
        student = cls(teacher.cfg, scfg)
        student.net.load_state_dict(teacher.net.state_dict())
        return student

    def loss(
        self, latents: torch.Tensor, actions: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Diffusion-Forcing loss on clips ``[B, T, A, C, h, w]`` with ``actions`` ``[B, T, A, act_dim]``:
        one flow time per block, the first ``sink`` frames (at least one block) clean and unscored."""
        B, T, A = latents.shape[:3]
        tau = self.block_taus(B, T, generator).to(latents.device)
        context = self.context_frames
        xt, target = flow_targets(latents, tau, generator)
        ids = assign_agents(B, A, self.cfg.positions.pool, generator, shuffle=True).to(latents.device)
        v = self.net(xt, tau, actions, ids, time=self.scfg.time)
        return F.mse_loss(v[:, context:], target[:, context:])

    @property
    def context_frames(self) -> int:
        """Frames given clean in training (the sinks, at least one block)."""
        return max(self.scfg.sink, self.scfg.block)

    def block_taus(self, batch: int, frames: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Diffusion Forcing's flow times ``[batch, frames]``: one independent draw per block,
        0 on the context frames."""
        blocks = -(-frames // self.scfg.block)
        tau = sample_tau((batch, blocks), self.cfg.shift, generator)
        tau = tau.repeat_interleave(self.scfg.block, 1)[:, :frames].contiguous()
        tau[:, : self.context_frames] = 0.0
        return tau

    def taus(self) -> list[float]:
        """Flow times of the few-step sampler, from 1 (noise) to 0."""
        return shift_tau(torch.linspace(1.0, 0.0, self.scfg.steps + 1), self.cfg.shift).tolist()

    @torch.no_grad()
    def rollout(
        self,
        context: torch.Tensor,
        actions: torch.Tensor,
        generator: torch.Generator | None = None,
        agent_ids: torch.Tensor | None = None,
        mode: Literal["cache", "full", "window"] = "cache",
    ) -> torch.Tensor:
        """Generate ``[B, T, A, C, h, w]`` from clean ``context`` latents ``[B, Tc, A, C, h, w]``
        (``Tc`` a whole number of blocks) and ``actions`` ``[B, T, A, act_dim]``, block by block.
        Every mode draws the same noise from ``generator``, so their outputs are comparable."""
        B, Tc, A = context.shape[:3]
        T = actions.shape[1]
        if agent_ids is None:
            agent_ids = assign_agents(B, A, self.cfg.positions.pool).to(context.device)
        if mode == "cache":
            run = CachedRollout(self, B, A, T, context.device)
            run.start(context, actions[:, :Tc], agent_ids)
            out = [context]
            for t in range(Tc, T, self.scfg.block):
                out.append(run.next_block(actions[:, t : t + self.scfg.block], generator))
            return torch.cat(out, 1)
        if mode not in ("full", "window"):
            raise ValueError(f"mode must be 'cache', 'full' or 'window', got {mode!r}")
        self._check_context(Tc)
        x = context
        for t in range(Tc, T, self.scfg.block):
            blk = min(self.scfg.block, T - t)
            keep = self._visible(t, t + blk - 1) if mode == "window" else torch.arange(t, device=context.device)
            x = torch.cat((x, self._denoise_recompute(x[:, keep], keep, actions, agent_ids, t, blk, generator)), 1)
        return x

    def _check_context(self, frames: int) -> None:
        if frames < 1 or frames % self.scfg.block:
            raise ValueError(f"context of {frames} frames: must be a whole number of blocks ({self.scfg.block} frames)")

    def _visible(self, first: int, last: int) -> torch.Tensor:
        """Frames before ``first`` that a block ending at ``last`` may see (sinks, then the newest)."""
        s = self.scfg
        past = torch.arange(first)
        return past[(past < s.sink) | (past > last - (s.window - s.sink))]

    def _denoise_recompute(
        self,
        past: torch.Tensor,
        past_frames: torch.Tensor,
        actions: torch.Tensor,
        agent_ids: torch.Tensor,
        first: int,
        blk: int,
        generator: torch.Generator | None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Denoise one block with no cache: every step runs the net over ``past`` (clean) and the
        block, starting from ``noise`` ``[B, blk, A, C, h, w]`` (default: drawn from ``generator``)."""
        B = past.shape[0]
        frames = torch.cat((past_frames, torch.arange(first, first + blk))).to(past.device)
        act = actions[:, frames]
        x = torch.randn((B, blk, *past.shape[2:]), generator=generator).to(past) if noise is None else noise
        taus = self.taus()
        for t0, t1 in zip(taus[:-1], taus[1:], strict=True):
            tau = torch.zeros(B, len(frames), device=past.device)
            tau[:, -blk:] = t0
            v = self.net(torch.cat((past, x), 1), tau, act, agent_ids, frames, self.scfg.time)[:, -blk:]
            x = x + (t1 - t0) * v
        return x


def distill_loss(
    student: Student,
    reference: Student,
    latents: torch.Tensor,
    actions: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Few-step distillation on clips ``[B, T, A, C, h, w]``: the student rolls out from the real
    context (no gradient), one of its generated blocks is picked at random, and from fresh noise the
    student denoises that block in its ``steps`` steps over its own past while ``reference`` (frozen,
    many steps) does the same from the same noise over the same past; the loss is their squared
    difference (the gradient flows through the student's steps only)."""
    B, T, A = latents.shape[:3]
    s = student.scfg
    c = student.context_frames
    if T - c < 1:
        raise ValueError(f"clips of {T} frames leave nothing to generate after {c} context frames")
    ids = assign_agents(B, A, student.cfg.positions.pool, generator, shuffle=True).to(latents.device)
    with torch.no_grad():
        own = student.rollout(latents[:, :c], actions, generator, ids, mode="cache")
    starts = list(range(c, T, s.block))
    first = starts[int(torch.randint(len(starts), (1,), generator=generator))]
    blk = min(s.block, T - first)
    keep = student._visible(first, first + blk - 1)
    past = own[:, keep.to(latents.device)]
    noise = torch.randn((B, blk, *latents.shape[2:]), generator=generator).to(latents)
    with torch.no_grad():
        target = reference._denoise_recompute(past, keep, actions, ids, first, blk, None, noise)
    pred = student._denoise_recompute(past, keep, actions, ids, first, blk, None, noise)
    return F.mse_loss(pred, target)


class CachedRollout:
    """Incremental block-by-block generation from a ``StreamCache`` (what a dream env steps)."""

    def __init__(self, student: Student, batch: int, agents: int, max_frames: int, device: torch.device | str) -> None:
        cfg, s = student.cfg, student.scfg
        self.student, self.net = student, student.net
        self.cache = StreamCache(
            cfg.attention,
            s.time,
            batch,
            agents,
            cfg.depth,
            cfg.heads,
            cfg.dim // cfg.heads,
            cfg.patches,
            max_frames,
            device,
        )
        self.frame = 0  # absolute index of the next frame
        self.agent_ids: torch.Tensor | None = None

    def _write(self, x: torch.Tensor, actions: torch.Tensor) -> None:
        """Run clean frames ``x`` ``[B, F, A, ...]`` once to store their keys/values, and advance."""
        assert self.agent_ids is not None
        F_ = x.shape[1]
        frames = torch.arange(self.frame, self.frame + F_, device=x.device)
        tau = torch.zeros(x.shape[0], F_, device=x.device)
        self.net.step(x, tau, actions, self.agent_ids, frames, self.cache)
        self.cache.advance(F_)
        self.frame += F_

    @torch.no_grad()
    def start(self, context: torch.Tensor, actions: torch.Tensor, agent_ids: torch.Tensor) -> None:
        """Forget any past and take real ``context`` latents ``[B, Tc, A, ...]`` (whole blocks)
        with their ``actions`` ``[B, Tc, A, act_dim]`` as the first frames."""
        self.student._check_context(context.shape[1])
        self.cache.reset()
        self.frame, self.agent_ids = 0, agent_ids
        for t in range(0, context.shape[1], self.student.scfg.block):
            self._write(context[:, t : t + self.student.scfg.block], actions[:, t : t + self.student.scfg.block])

    @torch.no_grad()
    def next_block(self, actions: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Generate the next block's latents ``[B, F, A, C, h, w]`` given its ``actions``
        ``[B, F, A, act_dim]`` (``F`` up to ``block``: a shorter last block is fine)."""
        if self.agent_ids is None:
            raise RuntimeError("call start(context, ...) before next_block")
        B, F_, A = actions.shape[:3]
        cfg = self.student.cfg
        frames = torch.arange(self.frame, self.frame + F_, device=actions.device)
        shape = (B, F_, A, cfg.latent_channels, cfg.latent_size, cfg.latent_size)
        x = torch.randn(shape, generator=generator).to(actions.device)
        taus = self.student.taus()
        for t0, t1 in zip(taus[:-1], taus[1:], strict=True):
            tau = torch.full((B, F_), t0, device=actions.device)
            x = x + (t1 - t0) * self.net.step(x, tau, actions, self.agent_ids, frames, self.cache)
        self._write(x, actions)
        return x
