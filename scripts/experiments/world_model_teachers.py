"""How do world-model teachers compare on held-out clips, say the simplex agent encoding against learnt
slots, at the team size they were trained on and at more players? For each teacher checkpoint:

- its flow-matching loss on clips of a recording (the training loss, the first ``--context`` frames
  given), every checkpoint with the same clips, flow times, noise and agent orders;
- PSNR and SSIM of its samples (``--steps`` Euler steps over the whole clip, from the real context
  and the recorded actions, decoded by its tokenizer) against the real frames, averaged over the
  generated frames, beside copying the last real frame.

One line per checkpoint and recording.

    python scripts/experiments/world_model_teachers.py \\
        --checkpoints checkpoints/soccer-world-model/teacher runs/s61/wm-slot-teacher/checkpoint \\
        --recordings data/wm/s1v1-heldout data/wm/s2v2-heldout
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
import tyro

from distill.world_model.data import ClipDataset
from distill.world_model.metrics import held_still, ssim
from distill.world_model.tokenizer import psnr
from distill.world_model.train import load_stage


@dataclasses.dataclass(frozen=True)
class Teachers:
    """Held-out loss and sample quality of world-model teacher checkpoints."""

    checkpoints: tuple[Path, ...]
    """Teacher checkpoints (``train_world_model.py --stage teacher``, or a shipped ``teacher/``)."""
    recordings: tuple[Path, ...]
    """Held-out recordings made by ``record.py --cameras rgb`` (any soccer team size)."""
    clip: int = 8
    """Frames per clip, the context included."""
    context: int = 2
    """Real frames given."""
    clips: int = 32
    """Clips drawn from each recording (evenly spaced over its clips)."""
    batch: int = 8
    """Clips per forward pass."""
    steps: int = 16
    """Euler steps of a sample."""
    seed: int = 0
    """Of the flow times, noise and agent orders (the same for every checkpoint)."""
    json: Path | None = None
    """Where the figures go."""


@torch.no_grad()
def evaluate(net: torch.nn.Module, tok: torch.nn.Module, data: ClipDataset, pick: list[int], cfg: Teachers) -> dict:
    losses, dream_psnr, dream_ssim, copy_psnr, copy_ssim = [], [], [], [], []
    n_frames = 0  # generated player-frames
    gen = torch.Generator().manual_seed(cfg.seed)
    for i in range(0, len(pick), cfg.batch):
        idx = pick[i : i + cfg.batch]
        frames, actions = data.batch(idx)  # [B, T, A, 3, H, W] uint8, [B, T, A, act]
        latents = tok.encode(frames)
        losses.append(float(net.loss(latents, actions, cfg.context, gen)) * len(idx))
        sample = net.sample(latents[:, : cfg.context], actions, cfg.steps, gen)
        dream = tok.decode(sample[:, cfg.context :])
        real = frames[:, cfg.context :]
        n_frames += real.shape[:3].numel()
        last = held_still(frames, cfg.context)
        dream_psnr.append(psnr(dream, real).clamp(max=60).sum())  # 60 dB: a frame the copy gets exactly
        dream_ssim.append(ssim(dream, real).sum())
        copy_psnr.append(psnr(last, real).clamp(max=60).sum())
        copy_ssim.append(ssim(last, real).sum())
    n_clips = len(pick)
    return {
        "clips": n_clips,
        "flow_loss": sum(losses) / n_clips,
        "psnr_db": float(sum(dream_psnr)) / n_frames,
        "ssim": float(sum(dream_ssim)) / n_frames,
        "copy_psnr_db": float(sum(copy_psnr)) / n_frames,
        "copy_ssim": float(sum(copy_ssim)) / n_frames,
    }


def main(cfg: Teachers) -> None:
    torch.set_num_threads(1)
    out = []
    for rec in cfg.recordings:
        data = ClipDataset([rec], cfg.clip, envs=None)
        n = min(cfg.clips, len(data))
        pick = [round(k * (len(data) - 1) / max(n - 1, 1)) for k in range(n)]
        agents = data.batch(pick[:1])[0].shape[2]
        for path in cfg.checkpoints:
            tok, net, meta = load_stage(path, "teacher")
            net.eval()
            row = {
                "checkpoint": str(path),
                "recording": str(rec),
                "agents": agents,
                **evaluate(net, tok, data, pick, cfg),
            }
            row["positions"] = meta["model"]["positions"]["kind"]
            out.append(row)
            print(
                f"{path} ({row['positions']}) on {rec} ({agents} players, {row['clips']} clips): "
                f"flow loss {row['flow_loss']:.4f}  PSNR {row['psnr_db']:.2f} dB  SSIM {row['ssim']:.3f}  "
                f"(copy {row['copy_psnr_db']:.2f} dB, {row['copy_ssim']:.3f})"
            )
    if cfg.json is not None:
        cfg.json.parent.mkdir(parents=True, exist_ok=True)
        cfg.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main(tyro.cli(Teachers))
