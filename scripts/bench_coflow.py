"""Joint actions per second of CoFlow at k = 1 against the 20-step flow-matching planner (MADiff-like):
the same network, width, batch and guidance; only the number of sampling steps differs.

A joint action is one world's actions for all its agents (one plan, then inverse dynamics). The
models are untrained: the cost of a plan does not depend on the weights. Results go to the JSON
file after every measurement, so an interrupted run keeps what it measured.

    python scripts/bench_coflow.py --quick --json benchmarks/results/bench_coflow_quick.json
    python scripts/bench_coflow.py --device cuda:0 --width 128 --batch 1024   # the paper's width, on a GPU
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from pathlib import Path

import torch
import tyro

from agents.coflow.config import for_algo
from agents.coflow.policy import CoFlowModel
from envs.io import write_json


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """CoFlow k = 1 against the 20-step planner."""

    quick: bool = False
    """A small, fast run (width 32, batch 32, 3 timed calls): a smoke figure for CPUs."""
    json: Path = Path("runs/benchmarks/bench_coflow.json")
    """Where the figures go, rewritten after every measurement. By default ``runs/benchmarks/`` (ignored
    by git); the published figures in ``benchmarks/results/bench_coflow_quick.json`` are replaced only
    when that path is given here."""
    width: int = 64
    """U-Net width of both models."""
    batch: int = 256
    """Worlds planned for at once (joint actions per call)."""
    n_agents: int = 3
    """Agents per world (mpe-spread: 3)."""
    obs_dim: int = 18
    """Observation size per agent (mpe-spread: 18)."""
    act_dim: int = 5
    """Action size per agent (mpe-spread: 5)."""
    horizon: int = 24
    """Planned steps (the paper's MPE horizon)."""
    guidance: float = 1.2
    """Classifier-free guidance weight (two passes per step, batched)."""
    calls: int = 5
    """Timed calls per model, after one warm-up."""
    device: str = "cpu"
    """``cpu`` or ``cuda:0``."""
    threads: int = 0
    """Torch CPU threads (0: torch's default)."""


def actions_per_s(model: CoFlowModel, obs: torch.Tensor, calls: int) -> float:
    """Joint actions per second of ``model.act`` on ``obs`` ``[W, A, D]`` (after one warm-up call)."""
    g = torch.Generator(device="cpu").manual_seed(0)
    model.act(obs, g)
    if obs.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        model.act(obs, g)
    if obs.is_cuda:
        torch.cuda.synchronize()
    return calls * obs.shape[0] / (time.perf_counter() - start)


def main(cfg: BenchConfig) -> dict:
    if cfg.quick:
        cfg = dataclasses.replace(cfg, width=32, batch=32, calls=3)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    dev = torch.device(cfg.device)
    result: dict = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(cfg).items()},
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "processor": platform.processor() or platform.machine(),
            "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
            "torch": torch.__version__,
        },
    }
    obs = torch.randn(cfg.batch, cfg.n_agents, cfg.obs_dim, device=dev)
    shared = {"horizon": cfg.horizon, "width": cfg.width, "guidance": cfg.guidance}
    for key, algo, extra in (("actions_per_s_k1", "coflow-c", {"steps": 1}), ("actions_per_s_flow", "flow", {})):
        mcfg = for_algo(algo, **shared, **extra)
        torch.manual_seed(0)
        model = CoFlowModel(mcfg, cfg.obs_dim, cfg.act_dim, cfg.n_agents).to(dev).eval()
        result[key] = actions_per_s(model, obs, cfg.calls)
        result[key.replace("actions_per_s", "sample_steps")] = mcfg.sample_steps
        result["parameters"] = sum(p.numel() for p in model.parameters())
        print(f"{algo} ({mcfg.sample_steps} steps): {result[key]:,.1f} joint actions/s")
        write_json(cfg.json, result)
    result["speedup"] = result["actions_per_s_k1"] / result["actions_per_s_flow"]
    write_json(cfg.json, result)
    print(f"speedup of k = 1 over the 20-step planner: {result['speedup']:.1f}x (written to {cfg.json})")
    return result


if __name__ == "__main__":
    main(tyro.cli(BenchConfig))
