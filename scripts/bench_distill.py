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

3. With ``--student CHECKPOINT`` (a ``transformer`` student), part 2 again on the trained student's
   own transformer, at its own window and layer count, over the frames it really sees: the student
   plays ``streams`` worlds of its env (against the scripted player in soccer), its transformer's
   inputs and episode starts are recorded, and the cache and the recompute step through them.

The JSON is rewritten after every measurement, so a run cut short keeps what it measured.

    python scripts/bench_distill.py                  # writes runs/benchmarks/bench_distill.json
    python scripts/bench_distill.py --quick          # about a minute on 2 cores
    python scripts/bench_distill.py --device cuda:0 --backend warp --num-envs 1024   # on a GPU
    python scripts/bench_distill.py --student checkpoints/soccer-1v1-student-transformer --num-envs --layers
        # the trained student's transformer alone (empty --num-envs and --layers skip parts 1 and 2)
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
    student: Path | None = None
    """A ``transformer`` student checkpoint: also time its own transformer on the frames it sees."""
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
    """The random-weight transformer of the student's width, on random frames."""
    dev = torch.device(cfg.device or "cpu")
    torch.manual_seed(0)
    model = CausalTransformer(cfg.dim, layers, heads=4, window=window).to(dev).eval()
    span = layers * (window - 1) + 1
    history = torch.randn(cfg.streams, span - 1 + 3 * cfg.frames, cfg.dim, device=dev)
    return time_cache(model, history, None, cfg.frames)


@torch.no_grad()
def time_cache(model: CausalTransformer, history: torch.Tensor, first: torch.Tensor | None, frames: int) -> dict:
    """Step ``model`` through ``history`` ``[B, T, dim]`` (episode starts ``first`` ``[B, T]``, None:
    one episode) with a ``KVCache`` and by full recompute over the frames the newest output depends
    on; check the outputs equal and return the times per new frame."""
    dev = history.device
    layers, window = len(model.blocks), model.window
    B, span = history.shape[0], layers * (window - 1) + 1  # frames the newest output depends on
    rounds = 3
    if history.shape[1] < span - 1 + rounds * frames:
        raise ValueError(f"{history.shape[1]} frames: the run needs {span - 1 + rounds * frames}")
    if first is None:
        first = torch.zeros(history.shape[:2], dtype=torch.bool, device=dev)
        first[:, 0] = True
    cache = model.new_cache(B, dev)
    for t in range(span - 1):  # fill: the cache's state from then on is the steady one
        model.step(history[:, t], cache, first[:, t])

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    # Alternate the two, three rounds on successive frames, and keep each one's best: the
    # machine is shared and noisy. RoPE sees only position differences, so the recompute may
    # start its positions anywhere; an episode start inside its span cuts the past as in the cache.
    t_cache = t_full = float("inf")
    gap = 0.0
    for r in range(rounds):
        steps = range(span - 1 + r * frames, span - 1 + (r + 1) * frames)
        sync()
        t0 = time.perf_counter()
        cached = [model.step(history[:, t], cache, first[:, t]) for t in steps]
        sync()
        t_cache = min(t_cache, (time.perf_counter() - t0) / frames)
        t0 = time.perf_counter()
        full = [model(history[:, t + 1 - span : t + 1], first[:, t + 1 - span : t + 1])[:, -1] for t in steps]
        sync()
        t_full = min(t_full, (time.perf_counter() - t0) / frames)
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
        "episode_starts_inside": int(first[:, 1:].sum()),
    }
    print(
        f"inference, {layers} layer(s), window {window:4d}, {B} streams: KV cache {row['cached_ms_per_frame']:.2f} "
        f"ms/frame, recompute over {span} frames {row['recompute_ms_per_frame']:.2f} ms/frame: "
        f"{row['speedup']:.1f}x (outputs equal, max |diff| {gap:.1e})",
        flush=True,
    )
    return row


@torch.no_grad()
def bench_student(cfg: BenchConfig) -> dict:
    """``cfg.student``'s transformer, cached against recompute, on the inputs it gets while playing."""
    import envs
    from agents.evaluate import _policy
    from agents.policies import checkpoint_env, episode_done
    from agents.rollout import TeamPolicy
    from distill.students import load_student_policy

    name, config = checkpoint_env(cfg.student)
    over = {k: v for k, v in config.items() if k != "reward_scales"}
    env = envs.make(name, num_envs=cfg.streams, backend=cfg.backend, device=cfg.device, **over)
    policy = load_student_policy(cfg.student, env)
    memory = policy.student.memory
    if policy.student.cfg.memory != "transformer":
        env.close()
        raise SystemExit(f"--student: {cfg.student} has memory {policy.student.cfg.memory!r}, not 'transformer'")
    model = memory.transformer
    span = len(model.blocks) * (model.window - 1) + 1
    inputs: list[torch.Tensor] = []
    starts: list[torch.Tensor] = []
    step = memory.step

    def recorded(f: torch.Tensor, state: object, first: torch.Tensor) -> tuple[torch.Tensor, object]:
        inputs.append(memory.inp(f))
        starts.append(first.clone())
        return step(f, state, first)

    memory.step = recorded  # this instance only
    acting = policy
    if env.competitive:
        acting = TeamPolicy(policy, _policy("scripted", env, 1, "--opponent"), env.num_agents // 2)
    obs = env.reset(seed=0)
    for _ in range(span - 1 + 3 * cfg.frames):
        obs, _, term, trunc, _ = env.step(acting(obs))
        episode_done(acting, term | trunc)
    env.close()
    row = time_cache(model, torch.stack(inputs, 1), torch.stack(starts, 1), cfg.frames)
    return {**row, "student": str(cfg.student), "env": name}


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
    if cfg.student is not None:
        result["student_kv_cache"] = bench_student(cfg)
        write_json(cfg.json, result)
    result["complete"] = True
    write_json(cfg.json, result)
    print(f"wrote {cfg.json}")
    return result


if __name__ == "__main__":
    main(tyro.cli(BenchConfig))
