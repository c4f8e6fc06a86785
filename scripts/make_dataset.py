"""Make graded offline multi-agent datasets (recordings) for CoFlow: ``expert``, ``medium``,
``medium-replay`` and ``random``, one recording each in ``<out>/<env>-<quality>``.

- ``expert``: the given policy as it is (a teacher checkpoint, or ``scripted``);
- ``medium``: the same with a share ``--medium-epsilon`` of random actions per agent and step
  (tuned so that its return is about half-way between random's and expert's);
- ``medium-replay``: what a learner on the way to ``medium`` would have seen: the random share
  falls from 1 to the medium's as the recording's episodes finish (a stand-in for a training run's
  replay buffer);
- ``random``: uniform actions.

In competitive envs the noise is on the learning team (the first half of the agents) only; the
other team plays ``--opponent``. Each dataset's agent-steps and mean return are printed and kept in
``<out>/datasets.json`` (beside what it already holds of other envs and qualities).

    python scripts/make_dataset.py --env mpe-spread --policy scripted --episodes 400 --out data
    python scripts/make_dataset.py --env soccer-2v2 --policy checkpoints/soccer-2v2-teacher-vs_scripted \\
        --qualities expert medium --episodes 200 --out data
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import tyro

import envs
from agents.policies import make_policy
from agents.rollout import FallingEpsilon, NoisyPolicy, TeamPolicy, record
from envs.config import to_dict
from envs.io import write_json
from envs.recording import Recording, RecordingWriter

Quality = Literal["expert", "medium", "medium-replay", "random"]
QUALITIES: tuple[str, ...] = get_args(Quality)  # their order sets each quality's seed


@dataclasses.dataclass(frozen=True)
class MakeDataset:
    """Record graded offline datasets."""

    env: str = "mpe-spread"
    """Registered env name."""
    policy: str = "scripted"
    """The expert: ``scripted`` or a policy checkpoint directory."""
    opponent: str = "scripted"
    """Competitive envs: the other team's policy."""
    qualities: tuple[Quality, ...] = ("expert", "medium", "medium-replay", "random")
    """Datasets to make."""
    episodes: int = 400
    """Episodes per dataset."""
    medium_epsilon: float = 0.8
    """Share of random actions of ``medium`` (mpe-spread scripted: 0.8 gives about half-way)."""
    out: Path = Path("data")
    """Parent directory of the datasets."""
    num_envs: int = 32
    """Worlds recorded at once."""
    seed: int = 0
    """Seed of the worlds and the noise (each quality adds 1000 times its place in expert, medium,
    medium-replay, random)."""


def quality_policy(cfg: MakeDataset, quality: str, env: object, seed: int) -> object:
    """The policy that records ``quality`` (for the learning team in a competitive env)."""
    if quality == "random":
        return make_policy("random", env, seed=seed)
    expert = make_policy(cfg.policy, env, seed=seed)
    if quality == "expert":
        return expert
    if quality == "medium":
        return NoisyPolicy(expert, 0.0, cfg.medium_epsilon, seed=seed)
    return FallingEpsilon(expert, cfg.medium_epsilon, cfg.episodes, seed)


def make_one(cfg: MakeDataset, quality: str, index: int) -> dict:
    env = envs.make(cfg.env, num_envs=min(cfg.num_envs, cfg.episodes))
    seed = cfg.seed + 1000 * index
    policy = quality_policy(cfg, quality, env, seed)
    meta = {
        "env": cfg.env,
        "config": to_dict(env.cfg),
        "policy": {"kind": "dataset", "expert": cfg.policy, "quality": quality},
        "label": quality,
        "seed": seed,
        "medium_epsilon": cfg.medium_epsilon,
        "agents": env.agents,
    }
    if env.competitive:
        policy = TeamPolicy(policy, make_policy(cfg.opponent, env, seed=seed + 1), env.num_agents // 2)
        meta["opponent"] = cfg.opponent
    out = cfg.out / f"{cfg.env}-{quality}"
    try:
        record(env, policy, RecordingWriter(out, meta, ["privileged"]), cfg.episodes, ["privileged"], seed=seed)
    finally:
        env.close()
    rec = Recording(out)
    n_agents = env.num_agents // 2 if env.competitive else env.num_agents  # the learning team's
    returns = np.array([np.mean(e["return"][:n_agents]) for e in rec.manifest["episodes"]])
    steps = sum(e["length"] for e in rec.manifest["episodes"])
    return {
        "path": str(out),
        "episodes": len(rec),
        "agent_steps": steps * n_agents,
        "mean_return": float(returns.mean()),
        "std_return": float(returns.std()),
    }


def main(cfg: MakeDataset) -> dict:
    if cfg.env not in envs.registered():
        raise SystemExit(f"unknown env {cfg.env!r}; registered: {envs.registered()}")
    summary: dict = {}
    index = cfg.out / "datasets.json"
    known = json.loads(index.read_text()) if index.exists() else {}
    for quality in cfg.qualities:
        # A quality's seed depends on the quality alone, not on which others were asked for.
        summary[quality] = make_one(cfg, quality, QUALITIES.index(quality))
        s = summary[quality]
        print(
            f"{cfg.env}-{quality}: {s['episodes']} episodes, {s['agent_steps']:,} agent-steps, "
            f"mean return {s['mean_return']:.2f} (std {s['std_return']:.2f})"
        )
        known[cfg.env] = {**known.get(cfg.env, {}), **summary}  # other envs and qualities are kept
        write_json(index, known)
    return summary


if __name__ == "__main__":
    main(tyro.cli(MakeDataset))
