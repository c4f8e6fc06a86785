"""Recording and reading throughput on the CPU, side by side in one run.

record   env-steps/s written to a recording by ``agents.rollout.record`` (scripted policy,
         batched worlds), without cameras and with the students' camera, beside the same
         env stepping with the same policy and no recording (the cost of recording);
read     transitions/s (o_t, a_t, r_t, o_{t+1}) through a torch ``DataLoader`` over the
         recording, state only and with camera frames.

  python scripts/bench_record.py
  python scripts/bench_record.py --quick
"""

from __future__ import annotations

import dataclasses
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import tyro
from torch.utils.data import DataLoader, Dataset

import distill  # noqa: F401  (registers the student checkpoint kind)
import envs
from agents.policies import make_policy
from agents.rollout import TeamPolicy, record
from envs.config import to_dict
from envs.io import write_json
from envs.recording import Recording, RecordingWriter

CAMERAS = {"soccer-1v1": ("rgb", "camera"), "egopush-line": ("depth_layers", "depth_layers")}


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """Recording and reading throughput."""

    envs: tuple[str, ...] = ("soccer-1v1", "egopush-line")
    """Envs to record (each with its students' camera)."""
    num_envs: int = 32
    """Worlds recorded at once."""
    episodes: int = 64
    """Episodes per recording."""
    episode_seconds: float = 4.0
    """Episode length (short episodes: many of them in little time)."""
    batch_size: int = 256
    """DataLoader batch size for the read benchmark."""
    quick: bool = False
    """Fewer episodes and worlds: under a minute."""
    json: Path = Path("runs/benchmarks/bench_record.json")
    """Where the figures go. By default ``runs/benchmarks/`` (ignored by git); the published figures in
    ``benchmarks/results/bench_record.json`` are replaced only when that path is given here."""


class Transitions(Dataset):
    """(o_t, a_t, r_t, o_{t+1}) of agent-steps of a recording, one shard in memory at a time."""

    def __init__(self, rec: Recording, group: str) -> None:
        self.rec, self.group = rec, group
        self.index = []  # (shard, obs row, step row, agent)
        lens_by_shard: dict[int, list[int]] = {}
        for e in rec.manifest["episodes"]:
            lens_by_shard.setdefault(e["shard"], []).append(e["length"])
        A = len(rec.manifest["agents"])
        for s, lens in lens_by_shard.items():
            step = 0
            for j, T in enumerate(lens):
                for t in range(T):
                    for a in range(A):
                        self.index.append((s, step + j + t, step + t, a))
                step += T

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[np.ndarray, ...]:
        s, o, t, a = self.index[i]
        arr = self.rec.shard(s)
        obs = arr[f"obs/{self.group}"]
        return obs[o, a], arr["actions"][t, a], arr["rewards"][t, a], obs[o + 1, a]


def _record(name: str, cfg: BenchConfig, out: Path, camera: bool) -> tuple[float, int]:
    over = {"episode_seconds": cfg.episode_seconds}
    if camera:
        over["cameras"] = (CAMERAS[name][0],)
    env = envs.make(name, num_envs=cfg.num_envs, **over)
    groups = ["privileged", "proprio"] + ([CAMERAS[name][1]] if camera else [])
    policy = make_policy("scripted", env)
    if env.competitive:
        policy = TeamPolicy(policy, make_policy("random", env), env.num_agents // 2)
    meta = {"env": name, "config": to_dict(env.cfg), "policy": {"kind": "scripted"}, "seed": 0, "agents": env.agents}
    writer = RecordingWriter(out, meta, groups, episodes_per_shard=16)
    start = time.perf_counter()
    record(env, policy, writer, cfg.episodes, groups, progress=False)
    elapsed = time.perf_counter() - start
    steps = sum(s["steps"] for s in Recording(out).manifest["shards"])
    env.close()
    return steps / elapsed, steps


def _plain(name: str, cfg: BenchConfig, steps: int, camera: bool) -> float:
    over = {"episode_seconds": cfg.episode_seconds}
    if camera:
        over["cameras"] = (CAMERAS[name][0],)
    env = envs.make(name, num_envs=cfg.num_envs, **over)
    policy = make_policy("scripted", env)
    if env.competitive:
        policy = TeamPolicy(policy, make_policy("random", env), env.num_agents // 2)
    obs = env.reset(seed=0)
    n = 0
    start = time.perf_counter()
    with torch.no_grad():
        while n < steps:
            obs, *_ = env.step(policy(obs))
            n += cfg.num_envs
    env.close()
    return n / (time.perf_counter() - start)


def _read(path: Path, group: str, batch_size: int) -> float:
    ds = Transitions(Recording(path), group)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0)
    n, start = 0, time.perf_counter()
    for batch in loader:
        n += len(batch[0])
    return n / (time.perf_counter() - start)


def main(cfg: BenchConfig) -> dict:
    if cfg.quick:
        cfg = dataclasses.replace(cfg, num_envs=8, episodes=16)
    results: dict = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
        "num_envs": cfg.num_envs,
        "episodes": cfg.episodes,
        "envs": {},
    }
    tmp = Path(tempfile.mkdtemp(prefix="egoteach-bench-"))
    try:
        for name in cfg.envs:
            row: dict = {}
            for camera in (False, True):
                tag = "camera" if camera else "state"
                out = tmp / f"{name}-{tag}"
                rate, steps = _record(name, cfg, out, camera)
                plain = _plain(name, cfg, steps, camera)
                size = sum(f.stat().st_size for f in out.iterdir())
                group = CAMERAS[name][1] if camera else "privileged"
                read = _read(out, group, cfg.batch_size)
                row[tag] = {
                    "record_steps_per_s": rate,
                    "no_record_steps_per_s": plain,
                    "record_overhead": plain / rate,
                    "steps": steps,
                    "bytes": size,
                    "bytes_per_step": size / steps,
                    "read_group": group,
                    "read_samples_per_s": read,
                }
                print(
                    f"{name} {tag:6s}: record {rate:,.0f} env-steps/s (without recording {plain:,.0f}), "
                    f"{size / steps / 1024:.1f} KiB/step, read {read:,.0f} samples/s ({group})",
                    flush=True,
                )
            results["envs"][name] = row
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write_json(cfg.json, results)
    print(f"wrote {cfg.json}")
    return results


if __name__ == "__main__":
    main(tyro.cli(BenchConfig))
