"""World-model generation speed: the causal student on its KV cache, the same student recomputing
its window at every denoising step, and the teacher's full-context sampling, at 2 and 4 agents.

Frames/s counts generated time steps (each one frame of every agent's view: ``views/s`` is that
times the agents) of latent frames, the transformer's work only; the tokenizer's decoding, the
same for all three, is timed on its own (``decode_fps``). The weights are untrained (random
initialisation with the zero-initialised gates opened): speed does not depend on them, quality
does, so these runs say nothing about quality.

- student: ``CachedRollout.next_block``, 4 steps per block, then one clean pass per block;
- recompute: ``Student.rollout(mode="window")``, the same sampler without a cache: every step
  runs the network over the frames the block can see (sinks and the rolling window);
- teacher: ``Teacher.sample``, the whole horizon denoised jointly with bidirectional attention.

The student and the recompute start from a full window of context frames, so that every timed
block sees a full window (the steady state of a long rollout, where the issue sets its goal);
writing that context into the cache is not timed. The teacher starts from one block of context.

Then hub against dense attention at 2, 4 and 8 agents: one teacher forward pass over a 16-frame
clip, in milliseconds, beside its self-attention FLOPs.

    python scripts/bench_world_model.py --quick --json /tmp/bench_wm.json
    python scripts/bench_world_model.py --device cuda:0
"""

from __future__ import annotations

import dataclasses
import functools
import os
import platform
import time
from pathlib import Path
from typing import Literal

import torch
import tyro

from distill.world_model.attention import AttentionConfig, attention_flops
from distill.world_model.positions import PositionConfig
from distill.world_model.student import CachedRollout, Student, StudentConfig
from distill.world_model.teacher import Teacher, WorldModelConfig
from distill.world_model.tokenizer import Tokenizer, TokenizerConfig
from envs.io import write_json


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """World-model generation benchmark."""

    agents: tuple[int, ...] = (2, 4)
    """Agent counts to time."""
    worlds: int = 1
    """Rollouts generated together (1: one match, as a real-time figure means)."""
    horizon: int = 48
    """Latent frames generated after the context (past the student's window, so its ring rolls)."""
    teacher_steps: int = 50
    """Euler steps of the teacher's sampler (50: what video diffusion teachers are usually sampled
    with, and CausVid's teacher baseline). The student's speedup scales with it: per frame the
    teacher runs ``teacher_steps`` passes, the student ``steps + 1`` (the clean pass)."""
    attention: Literal["hub", "dense"] = "hub"
    """Cross-agent attention of the model timed."""
    hub_vs_dense_agents: tuple[int, ...] = (2, 4, 8)
    """Agent counts of the hub-against-dense comparison (a teacher forward pass; () skips it)."""
    rounds: int = 2
    """Timed rounds of the student and the recompute (best kept: the machine is shared)."""
    device: str = "cpu"
    """Torch device."""
    threads: int | None = None
    """Torch CPU threads (None: torch's default). On a machine shared with other jobs, 1 avoids
    threads waiting on each other (measured here: one cached rollout 14 s with 2, 0.8 s with 1)."""
    quick: bool = False
    """A 24-frame horizon and one round."""
    json: Path = Path("runs/benchmarks/bench_world_model.json")
    """Where the figures go, written as they come. By default ``runs/benchmarks/`` (ignored by git); the
    published figures in ``benchmarks/results/bench_world_model.json`` are replaced only when that path
    is given here."""


def _open_gates(module: torch.nn.Module, seed: int = 0) -> None:
    """Untrained but not trivial: the zero-initialised adaLN gates and output layers would make
    every block an identity (same cost, but a reader should not wonder)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)


def _timed(fn, device: torch.device) -> float:  # noqa: ANN001 - a zero-argument callable
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


@torch.no_grad()
def bench(cfg: BenchConfig, agents: int, model: WorldModelConfig, scfg: StudentConfig) -> dict:
    dev = torch.device(cfg.device)
    torch.manual_seed(0)
    teacher = Teacher(model).to(dev).eval()
    _open_gates(teacher)
    student = Student.from_teacher(teacher, scfg).to(dev).eval()
    # The student starts from a full window of context (its steady state, "at its own window"),
    # the cache's writing of that context untimed; the teacher from one block, as given frames.
    B, Tc, Tt = cfg.worlds, scfg.window - scfg.block, scfg.block
    lat = (model.latent_channels, model.latent_size, model.latent_size)
    context = torch.randn(B, Tc, agents, *lat, device=dev)
    actions = torch.randn(B, Tc + cfg.horizon, agents, model.act_dim, device=dev)
    ids = torch.arange(agents, device=dev).expand(B, agents)

    def cached() -> float:
        run = CachedRollout(student, B, agents, Tc + cfg.horizon, dev)
        run.start(context, actions[:, :Tc], ids)
        gen = torch.Generator().manual_seed(0)
        return _timed(
            lambda: [
                run.next_block(actions[:, t : t + scfg.block], gen) for t in range(Tc, actions.shape[1], scfg.block)
            ],
            dev,
        )

    def window() -> float:
        return _timed(lambda: student.rollout(context, actions, torch.Generator().manual_seed(0), mode="window"), dev)

    cached(), window()  # warm-up
    t_cache = min(cached() for _ in range(cfg.rounds))
    t_window = min(window() for _ in range(cfg.rounds))
    teacher_actions = actions[:, Tc - Tt :]
    t_teacher = _timed(lambda: teacher.sample(context[:, -Tt:], teacher_actions, cfg.teacher_steps), dev)
    tok = Tokenizer(TokenizerConfig(latent_channels=model.latent_channels)).to(dev).eval()
    gen = torch.randn(B, cfg.horizon, agents, *lat, device=dev)
    tok.decode(gen[:, :1])  # warm-up
    t_decode = _timed(lambda: tok.decode(gen), dev)
    fps = {k: B * cfg.horizon / t for k, t in (("student", t_cache), ("recompute", t_window), ("teacher", t_teacher))}
    row = {
        "agents": agents,
        "student_fps": fps["student"],
        "recompute_fps": fps["recompute"],
        "teacher_fps": fps["teacher"],
        "speedup_vs_teacher": fps["student"] / fps["teacher"],
        "kv_speedup": fps["student"] / fps["recompute"],
        "student_views_per_s": fps["student"] * agents,
        "decode_fps": B * cfg.horizon / t_decode,
        "frames_generated": B * cfg.horizon,
        "student_context_frames": Tc,
        "teacher_context_frames": Tt,
    }
    print(
        f"{agents} agents ({cfg.attention}): student {row['student_fps']:.1f} frames/s with its KV cache, "
        f"{row['recompute_fps']:.1f} recomputing its window ({row['kv_speedup']:.1f}x), "
        f"teacher {row['teacher_fps']:.2f} frames/s at {cfg.teacher_steps} steps "
        f"(student {row['speedup_vs_teacher']:.1f}x); tokenizer decode {row['decode_fps']:.0f} frames/s"
    )
    return row


@torch.no_grad()
def hub_vs_dense(cfg: BenchConfig, agents: int, frames: int = 16) -> dict:
    """One teacher forward pass over a ``frames``-frame clip, hub against dense attention: its
    milliseconds (best of ``rounds``) and its self-attention FLOPs (all layers)."""
    dev = torch.device(cfg.device)
    # A pool of 8 vertices needs 7 rotary pairs in the agent band.
    pos = PositionConfig(pool=8, bands=(6, 14, 6, 6))
    row: dict = {"agents": agents, "frames": frames}
    for kind in ("hub", "dense"):
        model = WorldModelConfig(positions=pos, attention=AttentionConfig(kind=kind))
        torch.manual_seed(0)
        net = Teacher(model).net.to(dev).eval()
        _open_gates(net)
        x = torch.randn(1, frames, agents, model.latent_channels, model.latent_size, model.latent_size, device=dev)
        tau, act = torch.rand(1, frames, device=dev), torch.randn(1, frames, agents, model.act_dim, device=dev)
        ids = torch.arange(agents, device=dev)[None]
        forward = functools.partial(net, x, tau, act, ids)
        forward()  # warm-up
        ms = 1e3 * min(_timed(forward, dev) for _ in range(max(cfg.rounds, 2)))
        hubs = model.attention.hub_tokens
        flops = model.depth * attention_flops(kind, agents, frames, model.patches, hubs, model.dim)
        row[f"{kind}_ms"], row[f"{kind}_attention_gflop"] = ms, flops / 1e9
    print(
        f"teacher forward, {agents} agents x {frames} frames: hub {row['hub_ms']:.0f} ms "
        f"({row['hub_attention_gflop']:.2f} GFLOP attention), dense {row['dense_ms']:.0f} ms "
        f"({row['dense_attention_gflop']:.2f} GFLOP)"
    )
    return row


def main(cfg: BenchConfig) -> dict:
    if cfg.quick:
        cfg = dataclasses.replace(cfg, horizon=24, rounds=1)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    model = WorldModelConfig(attention=AttentionConfig(kind=cfg.attention))
    scfg = StudentConfig()
    result: dict = {
        "untrained_weights": True,
        "frames_are": "generated time steps of latent frames (every agent's view), transformer only",
        "machine": {"cpus": os.cpu_count(), "threads": torch.get_num_threads(), "processor": platform.machine()},
        "device": cfg.device,
        "model": dataclasses.asdict(model),
        "student": dataclasses.asdict(scfg),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(cfg).items()},
        "rows": [],
    }
    for agents in cfg.agents:
        result["rows"].append(bench(cfg, agents, model, scfg))
        write_json(cfg.json, result)  # as it goes: a cut-short run keeps what it measured
    result["hub_vs_dense"] = []
    for agents in cfg.hub_vs_dense_agents:
        result["hub_vs_dense"].append(hub_vs_dense(cfg, agents))
        write_json(cfg.json, result)
    print(f"wrote {cfg.json}")
    return result


if __name__ == "__main__":
    main(tyro.cli(BenchConfig))
