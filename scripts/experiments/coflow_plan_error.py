"""Why does a CoFlow policy act badly: its plan, or its inverse dynamics? On segments of a dataset,
a checkpoint's actions against the recorded ones, and (planners) how far the plan's next
observation lies from the real next observation, beside copying the current observation as the
plan's next (the floor of a plan that learnt no dynamics) and beside the inverse dynamics given the
real next observation. Errors are mean squared, observations normalised as the model sees them,
actions in [-1, 1]. One line per checkpoint.

    python scripts/experiments/coflow_plan_error.py --dataset data/soccer/soccer-2v2-expert --agents 0 1 \\
        --checkpoints runs/soccer/r-bc-expert-s0/checkpoint runs/soccer/r-coflow-c-expert-s0/checkpoint
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import tyro

from agents.coflow.checkpoint import load_model
from agents.coflow.dataset import SegmentDataset


@dataclasses.dataclass(frozen=True)
class PlanError:
    """Plan and action errors of CoFlow checkpoints on a dataset's segments."""

    dataset: Path
    """A recording ``make_dataset.py`` made."""
    checkpoints: tuple[Path, ...]
    """``train_coflow.py`` checkpoints (any algorithm)."""
    agents: tuple[int, ...] | None = None
    """Agents kept, as the checkpoints were trained (soccer-2v2's blue team: 0 1)."""
    segments: int = 512
    """Segments drawn (the same for every checkpoint)."""
    seed: int = 0
    """Of the segments and of the plans' noise."""


def errors(model: torch.nn.Module, ds: SegmentDataset, cfg: PlanError) -> dict[str, float]:
    batch = ds.sample(cfg.segments, torch.Generator().manual_seed(cfg.seed))
    x = model.normalise(batch.obs)
    real = batch.actions[:, 0]
    with torch.no_grad():
        acted = model.act(batch.obs[:, 0], torch.Generator().manual_seed(cfg.seed + 1))
        out = {"action": ((acted - real) ** 2).mean().item()}
        if model.cfg.algo != "bc":
            planned = model.plan_next(x[:, 0], torch.Generator().manual_seed(cfg.seed + 1))
            out["plan_next"] = ((planned - x[:, 1]) ** 2).mean().item()
            out["copy_next"] = ((x[:, 0] - x[:, 1]) ** 2).mean().item()
            out["action_from_real_next"] = ((model.inv(x[:, 0], x[:, 1]).clamp(-1, 1) - real) ** 2).mean().item()
    return out


def main(cfg: PlanError) -> list[dict]:
    rows = []
    for path in cfg.checkpoints:
        model, _ = load_model(path)
        ds = SegmentDataset(cfg.dataset, max(model.cfg.horizon, 2), agents=cfg.agents)
        e = errors(model, ds, cfg)
        rows.append({"checkpoint": str(path), "algo": model.cfg.algo, **e})
        text = f"action error {e['action']:.4f}"
        if "plan_next" in e:
            text += (
                f"  plan's next obs {e['plan_next']:.4f} (copying the current {e['copy_next']:.4f})"
                f"  action from the real next obs {e['action_from_real_next']:.4f}"
            )
        print(f"{path} ({model.cfg.algo}): {text}")
    return rows


if __name__ == "__main__":
    main(tyro.cli(PlanError))
