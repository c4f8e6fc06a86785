"""Put a critic beside a shipped teacher, so that a fine-tune from it (``train_teacher.py
--init-from``) starts with learnt values instead of a fresh critic, which pulls a trained actor
down for millions of env-steps (README, "Training teachers").

The critic comes from a run that trained only its critic from that very teacher, e.g.:

    python scripts/train_teacher.py --env egopush-line --observability fov --num-envs 256 \\
        --init-from checkpoints/egopush-line-teacher-fov --ppo.critic-warmup 1000 --total-steps 8192000 \\
        --env-overrides '{"memory_seconds": 60.0}' --run-dir runs/critic-fov
    python scripts/ship_critic.py runs/critic-fov/checkpoint checkpoints/egopush-line-teacher-fov

(1000 updates of 256 worlds x 32 steps are the whole 8,192,000 env-steps: the total must not exceed
warm-up updates x worlds x ``--ppo.steps-per-env``, or the actor moves.) It refuses unless the run's
actor weights equal the teacher's (a critic warm-up leaves them alone; only the observation
normaliser moves), so the critic is the one for that actor. Writes ``TEACHER/train_state.safetensors``
with the critic alone, atomically; the policy is untouched.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import tyro

from agents.actor import GaussianActor
from agents.checkpoint import CheckpointError
from agents.run_state import load_state_file, read_metrics, save_state_file


def ship(run_checkpoint: Path, teacher: Path) -> str:
    """Copy the critic of ``run_checkpoint`` into ``teacher``; returns a one-line summary."""
    try:
        run_actor, run_meta = GaussianActor.load(run_checkpoint)
        actor, meta = GaussianActor.load(teacher)
    except CheckpointError as err:
        raise SystemExit(str(err)) from None
    state = run_checkpoint / "train_state.safetensors"
    if not state.is_file():
        raise SystemExit(f"{run_checkpoint} holds no training state (expected a run's checkpoint/)")
    if (run_meta["env"], run_meta["obs_group"]) != (meta["env"], meta["obs_group"]):
        raise SystemExit(f"{run_checkpoint} is a {run_meta['env']} policy, {teacher} a {meta['env']} one")
    mine, theirs = dict(run_actor.named_parameters()), dict(actor.named_parameters())
    if mine.keys() != theirs.keys() or not all(torch.equal(mine[k], theirs[k]) for k in mine):
        raise SystemExit(
            f"the actor in {run_checkpoint} is not {teacher}'s: ship the critic of a run that trained only "
            "its critic from that teacher (--init-from it, --ppo.critic-warmup covering the whole run)"
        )
    critic = {k: v for k, v in load_state_file(state).items() if k.startswith("critic/")}
    save_state_file(teacher / "train_state.safetensors", critic)
    steps = run_meta.get("env_steps", 0)
    fit = ""
    if (run_checkpoint.parent / "metrics.jsonl").is_file():
        losses = [r["loss/value"] for r in read_metrics(run_checkpoint.parent)[-100:] if "loss/value" in r]
        if losses:
            fit = f"; value loss over its last {len(losses)} updates {sum(losses) / len(losses):.4f}"
    return f"wrote {teacher / 'train_state.safetensors'}: the critic of {run_checkpoint} ({steps:,} env-steps{fit})"


@dataclasses.dataclass(frozen=True)
class ShipConfig:
    """Put a run's critic beside the teacher it started from."""

    run_checkpoint: tyro.conf.Positional[Path]
    """A run's checkpoint/ that trained only its critic."""
    teacher: tyro.conf.Positional[Path]
    """The shipped teacher folder it started from."""


def main(cfg: ShipConfig) -> None:
    print(ship(cfg.run_checkpoint, cfg.teacher))


if __name__ == "__main__":
    main(tyro.cli(ShipConfig))
