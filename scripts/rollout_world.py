"""Dream held-out clips of a recording with a trained world-model student, driven by the recorded
actions; write real and generated panels side by side, and PSNR and SSIM per horizon step.

    python scripts/rollout_world.py --checkpoint runs/world-model-student-s0/checkpoint \\
        --recording data/s2v2-heldout --envs soccer-2v2 --agents 4 --steps 16 \\
        --out rollout.mp4 --json rollout.json
    python scripts/rollout_world.py --checkpoint checkpoints/soccer-world-model/student \\
        --env soccer-2v2 --policy scripted --agents 4 --steps 16 --out live.mp4

With ``--env`` and ``--policy`` (and ``--opponent``) instead of ``--recording``, the clips come from
a live env: episodes are played and recorded with RGB cameras into a temporary folder first
(``agents.record``, at the seed ``--seed + 1``), then dreamed the same way.

The first clip becomes the video (top row real, bottom row generated, a column per player); the
metrics average ``--clips`` clips. Each row of the JSON beside the student's figures gives those
of copying the last real frame, the floor of a model that learnt no dynamics.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

import torch
import tyro

from distill.world_model.data import ClipDataset
from distill.world_model.metrics import dream_clips, horizon_metrics, panels
from distill.world_model.train import load_stage
from envs.io import write_json
from envs.video import VideoWriter


@dataclasses.dataclass(frozen=True)
class RolloutConfig:
    """Dream recorded clips and compare them with the real ones."""

    checkpoint: Path
    """A student checkpoint (``scripts/train_world_model.py --stage student``)."""
    agents: int
    """Players per world: must be the recording's (or the env's)."""
    recording: Path | None = None
    """A recording with RGB cameras (``scripts/record.py --cameras rgb``), ideally held out."""
    env: str | None = None
    """Instead of ``--recording``: an env to play live (e.g. ``soccer-2v2``)."""
    policy: str = "scripted"
    """``--env``: the policy of the players (``scripted``, ``random`` or a checkpoint)."""
    opponent: str = "scripted"
    """``--env``: the other team's policy."""
    env_overrides: str = "{}"
    """``--env``: JSON object of env config fields (the camera is rendered at the tokenizer's size)."""
    steps: int = 16
    """Generated frames per clip after the context."""
    clips: int = 8
    """Clips dreamed and averaged."""
    envs: tuple[str, ...] | None = None
    """Env names the recording must be of (None: any)."""
    out: Path | None = None
    """Video of the first clip (``.mp4`` or ``.gif``)."""
    json: Path | None = None
    """Metrics as JSON."""
    fps: float = 10.0
    """Frames per second of the video."""
    seed: int = 0
    """Seed of the clips drawn and the sampling noise."""
    threads: int | None = None
    """Torch CPU threads (None: torch's default)."""


def main(cfg: RolloutConfig) -> dict:
    if (cfg.recording is None) == (cfg.env is None):
        raise SystemExit("give either --recording DIR or --env NAME (with --policy)")
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    if cfg.env is None:
        return dream(cfg, cfg.recording)
    from agents.record import RecordConfig, record_rollouts

    tok, _, _ = load_stage(cfg.checkpoint, "student")
    try:
        over = {**json.loads(cfg.env_overrides), "camera_resolution": [tok.cfg.image_size] * 2}
    except (json.JSONDecodeError, TypeError) as err:
        raise SystemExit(f"--env-overrides must be a JSON object ({err}): {cfg.env_overrides!r}") from None
    with tempfile.TemporaryDirectory() as tmp:
        live = RecordConfig(
            env=cfg.env,
            policy=cfg.policy,
            opponent=cfg.opponent,
            episodes=max(2, cfg.clips),
            out=Path(tmp) / "live",
            num_envs=min(8, max(2, cfg.clips)),
            cameras=("rgb",),
            env_overrides=json.dumps(over),
            seed=cfg.seed + 1,
        )
        try:
            path = record_rollouts(live)
        except ValueError as err:
            raise SystemExit(f"--env {cfg.env}: {err}") from None
        return dream(cfg, path)


def dream(cfg: RolloutConfig, recording: Path) -> dict:
    """Dream ``cfg.clips`` clips of ``recording`` and score them (see the module docstring)."""
    tok, student, _ = load_stage(cfg.checkpoint, "student")
    length = student.context_frames + cfg.steps
    data = ClipDataset([recording], length, stride=length, envs=cfg.envs)
    if len(data) == 0:
        raise SystemExit(f"{recording}: no clip of {length} frames")
    gen = torch.Generator().manual_seed(cfg.seed)
    idx = torch.randperm(len(data), generator=gen)[: cfg.clips].tolist()
    frames, actions = data.batch(idx)
    if frames.shape[2] != cfg.agents:
        raise SystemExit(f"{recording} has {frames.shape[2]} players, --agents is {cfg.agents}")
    if frames.shape[-1] != tok.cfg.image_size:
        raise SystemExit(f"{recording} has {frames.shape[-1]}-pixel frames; the tokenizer reads {tok.cfg.image_size}")
    dreamed = dream_clips(student, tok, frames, actions, gen)
    metrics = horizon_metrics(frames, dreamed, student.context_frames)
    result = {
        "checkpoint": str(cfg.checkpoint),
        "recording": str(cfg.recording) if cfg.env is None else None,
        **({"env": cfg.env, "policy": cfg.policy, "opponent": cfg.opponent} if cfg.env else {}),
        "agents": cfg.agents,
        "clips": len(idx),
        "context_frames": student.context_frames,
        **metrics,
    }
    for k in ("psnr", "ssim"):
        print(f"{k} per step: " + " ".join(f"{v:.3f}" for v in metrics[k]))
        print("  copy last frame: " + " ".join(f"{v:.3f}" for v in metrics[f"copy_{k}"]))
    if cfg.out is not None:
        with VideoWriter(cfg.out, cfg.fps) as video:
            for frame in panels(frames[0], dreamed[0]):
                video.append(frame)
        print(f"wrote {cfg.out}")
    if cfg.json is not None:
        write_json(cfg.json, result)
        print(f"wrote {cfg.json}")
    return result


if __name__ == "__main__":
    main(tyro.cli(RolloutConfig))
