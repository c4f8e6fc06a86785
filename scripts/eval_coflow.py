"""Evaluate a CoFlow checkpoint over a grid of inference settings: sampling steps ``k``, the CVA
dose ``alpha`` and the guidance weight ``w`` (the paper's k-sweep and alpha dose-response), in the
env it was trained on. Each setting is played on the same seeds; results go to the JSON file as
they come.

    python scripts/eval_coflow.py --checkpoint runs/coflow-coflow-c-mpe-spread-expert-s0/checkpoint \\
        --steps 1 2 3 4 5 --episodes 100 --json results/k_sweep.json
    python scripts/eval_coflow.py --checkpoint ... --alpha 0 0.25 0.5 0.75 1 --json results/alpha.json
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import torch
import tyro

import envs
from agents.checkpoint import CheckpointError
from agents.coflow import CoFlowPolicy, load_model
from agents.evaluate import play_matches, run_episodes
from agents.policies import checkpoint_env, make_policy
from envs.io import write_json


@dataclasses.dataclass(frozen=True)
class EvalCoFlow:
    """Evaluate a CoFlow checkpoint over inference settings."""

    checkpoint: Path
    """A ``coflow`` checkpoint directory."""
    steps: tuple[int, ...] = (1,)
    """Sampling steps k to try (for a ``flow`` planner checkpoint: its ``flow_steps``)."""
    alpha: tuple[float, ...] = (1.0,)
    """CVA doses to try."""
    guidance: tuple[float, ...] = ()
    """Guidance weights to try (default: the checkpoint's)."""
    episodes: int = 100
    """Episodes per setting."""
    num_envs: int = 50
    """Worlds played at once."""
    opponent: str = "scripted"
    """Competitive envs: the other team."""
    seed: int = 1000
    """Seed of the worlds and of the policies' sampling noise."""
    threads: int = 1
    """Torch CPU threads."""
    json: Path | None = None
    """Write the results here as they come."""


def main(cfg: EvalCoFlow) -> list[dict]:
    torch.set_num_threads(cfg.threads)
    try:
        name, config = checkpoint_env(cfg.checkpoint)
        _, meta = load_model(cfg.checkpoint)
    except CheckpointError as err:
        raise SystemExit(f"--checkpoint: {err}") from None
    env = envs.make(name, num_envs=min(cfg.num_envs, cfg.episodes), **config)
    steps_field = "flow_steps" if meta["coflow"]["algo"] == "flow" else "steps"
    guidance = cfg.guidance or (meta["coflow"]["guidance"],)
    rows: list[dict] = []
    for k, alpha, w in itertools.product(cfg.steps, cfg.alpha, guidance):
        model, _ = load_model(cfg.checkpoint, **{steps_field: k}, guidance=w)
        policy = CoFlowPolicy(model, meta["obs_group"], seed=cfg.seed, alpha=alpha)
        head = {"checkpoint": str(cfg.checkpoint), "steps": k, "alpha": alpha, "guidance": w}
        if env.competitive:
            opponent = make_policy(cfg.opponent, env, seed=cfg.seed + 1)
            r = play_matches(env, policy, opponent, cfg.episodes, seed=cfg.seed, progress=False)
            shown = f"win {r['win_rate']:.3f}  draw {r['draw_rate']:.3f}  loss {r['loss_rate']:.3f}"
        else:
            r = run_episodes(env, policy, cfg.episodes, seed=cfg.seed, progress=False)
            shown = f"success {r['success_rate']:.3f}  reach {r['reach_rate']:.3f}"
            if "coverage" in r:
                lo, hi = r["coverage_ci95"]
                shown += f"  coverage {r['coverage']:.3f} [{lo:.3f}, {hi:.3f}]"
        rows.append({**head, **r})
        print(f"k={k} alpha={alpha} w={w}: {shown}  mean return {r['mean_return']:.3f}", flush=True)
        if cfg.json is not None:
            write_json(cfg.json, rows)
    env.close()
    return rows


if __name__ == "__main__":
    main(tyro.cli(EvalCoFlow))
