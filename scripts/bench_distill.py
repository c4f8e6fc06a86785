"""Distillation throughput, and KV-cached against full-recompute inference of a causal
transformer student, side by side in one run.

1. DAgger throughput: student frames/s of ``Distiller`` on ``egopush-line`` (``depth_layers``
   64x64 cameras) from a shipped teacher: rendering, the teacher's labels, the student's own
   actions and the updates, all included; the collection alone beside it.
2. Inference per new frame, for a batch of streams (one per world), at the student's own window
   (``StudentConfig().window``) and at 64 and 256 frames, for each layer count: the transformer's
   ``step`` with a ``KVCache`` against the recompute that gives the same outputs, a full forward
   pass over the frames the newest output depends on (``layers x (window - 1) + 1`` of them: each
   layer's attention looks ``window`` frames back). The two outputs are checked equal at every
   timed frame (the run stops if they are not); ratio = recompute time / cached time.

The JSON is rewritten after every measurement, so a run cut short keeps what it measured.

    python scripts/bench_distill.py                  # writes runs/benchmarks/bench_distill.json
    python scripts/bench_distill.py --quick          # about a minute on 2 cores
    python scripts/bench_distill.py --device cuda:0 --backend warp --num-envs 1024   # on a GPU
"""

from __future__ import annotations

import dataclasses
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Literal

import torch
import tyro

from distill.dagger import DaggerConfig, Distiller
from distill.kv_cache import CausalTransformer
from distill.students import StudentConfig
from distill.teacher_env import make_distill_env
from envs.io import write_json

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """Distillation and KV-cache benchmark."""

    teacher: Path = ROOT / "checkpoints" / "egopush-line-teacher-global"
    """Teacher checkpoint for the throughput part."""
    num_envs: tuple[int, ...] = (64, 256)
    """Worlds of the throughput part."""
    iterations: int = 6
    """Timed DAgger iterations per world count (after one warm-up)."""
    memory: Literal["none", "gru", "transformer", "map"] = "none"
    """Student memory in the throughput part."""
    contexts: tuple[int, ...] = (StudentConfig().window, 64, 256)
    """Windows (frames) of the inference part: the student's own, 64 and 256."""
    streams: int = 64
    """Streams (worlds) stepped together in the inference part."""
    dim: int = 128
    """Transformer width (the student's default)."""
    layers: tuple[int, ...] = (1, StudentConfig().layers, 4)
    """Transformer blocks of the inference part: one, the student's default, four."""
    frames: int = 32
    """Timed frames per context."""
    backend: Literal["cpu", "warp"] = "cpu"
    """Physics backend."""
    device: str | None = None
    """Device (cameras, networks)."""
    quick: bool = False
    """One world count (64), 3 iterations; 1 and 2 layers, 8 frames per window."""
    json: Path = ROOT / "runs" / "benchmarks" / "bench_distill.json"
    """Where the figures go. By default ``runs/benchmarks/`` (ignored by git); the published figures in
    ``benchmarks/results/bench_distill.json`` are replaced only when that path is given here."""


def bench_dagger(cfg: BenchConfig, W: int) -> dict:
    env = make_distill_env(cfg.teacher, W, cfg.backend, cfg.device)
    with tempfile.TemporaryDirectory() as tmp:
        d = Distiller(env, cfg.teacher, StudentConfig(memory=cfg.memory), DaggerConfig(), 10**9, 0, tmp)
        d.collect()  # warm-up: the renderer's kernels, the buffer
        d.update()
        collect = update = 0.0
        for _ in range(cfg.iterations):
            t0 = time.perf_counter()
            d.collect()
            t1 = time.perf_counter()
            d.student.train()
            d.update()
            d.student.eval()
            collect += t1 - t0
            update += time.perf_counter() - t1
        frames = cfg.iterations * d.frames_per_iter
    env.close()
    row = {
        "worlds": W,
        "frames": frames,
        "frames_per_s": frames / (collect + update),
        "collect_frames_per_s": frames / collect,
        "update_s_per_iteration": update / cfg.iterations,
        "trained_frames_per_iteration": DaggerConfig().updates_per_iter * DaggerConfig().batch_frames,
    }
    print(
        f"DAgger egopush-line W={W:4d}: {row['frames_per_s']:,.0f} student frames/s in all "
        f"(collection alone {row['collect_frames_per_s']:,.0f} frames/s: render + teacher + student), "
        f"update {row['update_s_per_iteration']:.2f} s per iteration of {d.frames_per_iter} frames"
    )
    return row


@torch.no_grad()
def bench_cache(cfg: BenchConfig, layers: int, window: int) -> dict:
    dev = torch.device(cfg.device or "cpu")
    torch.manual_seed(0)
    model = CausalTransformer(cfg.dim, layers, heads=4, window=window).to(dev).eval()
    B, span = cfg.streams, layers * (window - 1) + 1  # frames the newest output depends on
    rounds = 3
    history = torch.randn(B, span - 1 + rounds * cfg.frames, cfg.dim, device=dev)
    cache = model.new_cache(B, dev)
    for t in range(span - 1):  # fill: the cache's state from then on is the steady one
        model.step(history[:, t], cache)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    # Alternate the two, three rounds on successive frames, and keep each one's best: the
    # machine is shared and noisy. RoPE sees only position differences, so the recompute may
    # start its positions anywhere.
    t_cache = t_full = float("inf")
    gap = 0.0
    for r in range(rounds):
        frames = range(span - 1 + r * cfg.frames, span - 1 + (r + 1) * cfg.frames)
        sync()
        t0 = time.perf_counter()
        cached = [model.step(history[:, t], cache) for t in frames]
        sync()
        t_cache = min(t_cache, (time.perf_counter() - t0) / cfg.frames)
        t0 = time.perf_counter()
        full = [model(history[:, t + 1 - span : t + 1])[:, -1] for t in frames]
        sync()
        t_full = min(t_full, (time.perf_counter() - t0) / cfg.frames)
        gap = max(gap, float((torch.stack(cached) - torch.stack(full)).abs().max()))
    if not gap < 1e-4:
        raise SystemExit(f"KV cache and recompute differ by {gap:.2e} at {layers} layers, window {window}")
    row = {
        "layers": layers,
        "window": window,
        "context": window,
        "recompute_frames": span,
        "streams": B,
        "cached_ms_per_frame": 1e3 * t_cache,
        "recompute_ms_per_frame": 1e3 * t_full,
        "speedup": t_full / t_cache,
        "max_abs_difference": gap,
        "equal": True,
    }
    print(
        f"inference, {layers} layer(s), window {window:4d}, {B} streams: KV cache {row['cached_ms_per_frame']:.2f} "
        f"ms/frame, recompute over {span} frames {row['recompute_ms_per_frame']:.2f} ms/frame: "
        f"{row['speedup']:.1f}x (outputs equal, max |diff| {gap:.1e})",
        flush=True,
    )
    return row


def main(cfg: BenchConfig) -> dict:
    if cfg.quick:
        cfg = dataclasses.replace(cfg, num_envs=(64,), iterations=3, frames=8, layers=(1, StudentConfig().layers))
    result: dict = {
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "torch_threads": torch.get_num_threads(),
        "backend": cfg.backend,
        "device": cfg.device or "cpu",
        "dagger": [],
        "kv_cache": [],
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(cfg).items()},
        "complete": False,
    }
    for W in cfg.num_envs:
        result["dagger"].append(bench_dagger(cfg, W))
        result["torch_threads"] = torch.get_num_threads()  # as the envs chose (envs/threads.py)
        write_json(cfg.json, result)
    for layers in cfg.layers:
        for window in dict.fromkeys(cfg.contexts):
            result["kv_cache"].append(bench_cache(cfg, layers, window))
            write_json(cfg.json, result)
    result["complete"] = True
    write_json(cfg.json, result)
    print(f"wrote {cfg.json}")
    return result


if __name__ == "__main__":
    main(tyro.cli(BenchConfig))
