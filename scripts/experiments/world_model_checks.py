"""Checks of a trained world model that ``scripts/rollout_world.py`` does not make (issue 52).

- ``tokenizer``: the tokenizer's reconstruction PSNR (dB) and SSIM on frames of a recording
  (held out, ideally), against the training figure the trainer logs;
- ``control``: does the student use the actions? Clips of a recording are dreamed from their real
  context twice: with their own actions, and with one player's actions swapped for that same
  player's actions in another clip (the other players keep theirs). Both dreams are scored (PSNR,
  SSIM per step) against the real frames, which the *own* actions produced. A student that follows
  its actions is closer to the real frames with the own actions, chiefly in the swapped player's
  view; one that ignores them scores both the same;
- ``still``: a PNG of one dreamed clip at a few horizon steps (per step shown, a row of the real
  views above a row of the generated ones; a column per player), for the README and the model card;
- ``consistency``: inter-agent consistency (``distill.world_model.probe``). A probe is trained on
  real frames of ``--probe-recordings`` (not the held-out ones) to read the ball's robot-frame
  position and whether it is in view; clips of ``--recording`` are dreamed, and each player's
  generated view is read: where it places the ball in the world (by the player's real pose), against
  the ball and against the other players' placements; the same on the real frames is the floor;
- ``policy``: can a vision policy act in the dream as it acts in the match? Clips of ``--recording``
  are dreamed from their real context with their recorded actions (open loop), and the vision
  student ``--policy`` (a soccer student checkpoint, e.g. ``checkpoints/soccer-1v1-student``) is run
  over every player's real frames, over its dreamed frames, and over the last context frame held
  still, each with the recorded ``proprio`` and its own memory from the clip's first frame. Per
  horizon step: the mean absolute difference of its actions on the dreamed (and still) frames from
  its actions on the real ones, beside the difference between two clips' real frames (chance);
- ``ship``: a checkpoint without its optimiser state and generator (weights, tokenizer, configs
  and the training history only), what ``DreamEnv`` and ``rollout_world.py`` read.

    S=runs/wm-student/checkpoint; P="python scripts/experiments/world_model_checks.py"
    $P --what tokenizer --checkpoint $S --recording data/wm/s1v1-heldout
    $P --what control --checkpoint $S --recording data/wm/s1v1-heldout --agents 2
    $P --what still --checkpoint $S --recording data/wm/s2v2-heldout --agents 4 --out still.png
    $P --what consistency --checkpoint $S --recording data/wm/s1v1-heldout --agents 2 \\
        --probe-recordings data/wm/s1v1-scripted data/wm/s1v1-random
    $P --what policy --checkpoint $S --recording data/wm/s1v1-heldout --agents 2 \\
        --policy checkpoints/soccer-1v1-student --clips 16 --steps 16
    $P --what ship --checkpoint $S --stage student --out checkpoints/soccer-world-model/student
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import tyro

from agents import checkpoint as ckpt
from distill.world_model.data import ClipDataset
from distill.world_model.metrics import dream_clips, held_still, horizon_metrics, ssim
from distill.world_model.student import StudentConfig
from distill.world_model.tokenizer import psnr
from distill.world_model.train import Stage, load_stage, model_config, save_stage
from envs.io import write_json


@dataclasses.dataclass(frozen=True)
class ChecksConfig:
    """Checks of a trained world model."""

    what: Literal["tokenizer", "control", "still", "consistency", "policy", "ship"]
    """Which check (see the module docstring)."""
    checkpoint: Path
    """A world-model checkpoint (a student's for ``control`` and ``still``)."""
    recording: Path | None = None
    """A recording with RGB cameras, ideally held out (``tokenizer``, ``control``, ``still``)."""
    agents: int = 2
    """Players per world in the recording (``control``, ``still``)."""
    steps: int = 16
    """Generated frames per clip after the context (``control``, ``still``)."""
    clips: int = 8
    """Clips dreamed (``control``) or frames per player scored (``tokenizer``: ``clips * 32``)."""
    player: int = 0
    """``control``: the player whose actions are swapped."""
    probe_recordings: tuple[Path, ...] = ()
    """``consistency``: recordings whose real frames train the ball probe (not the held-out one)."""
    probe_steps: int = 1500
    """``consistency``: the probe's training steps (batches of 128 frames)."""
    policy: Path | None = None
    """``policy``: a vision student checkpoint of the recording's env (camera + proprio)."""
    stage: Stage = "student"
    """``ship``: the checkpoint's stage."""
    show: tuple[int, ...] = (1, 8, 16)
    """``still``: horizon steps shown (1 = the first generated frame)."""
    out: Path | None = None
    """``still``: the PNG; ``ship``: the checkpoint directory written."""
    json: Path | None = None
    """Figures as JSON (``tokenizer``, ``control``)."""
    seed: int = 0
    """Seed of the clips drawn and the sampling noise."""


def _clips(cfg: ChecksConfig, length: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    assert cfg.recording is not None, "--recording is needed"
    data = ClipDataset([cfg.recording], length, stride=length, envs=None)
    if len(data) < count:
        raise SystemExit(f"{cfg.recording}: {len(data)} clips of {length} frames, {count} needed")
    gen = torch.Generator().manual_seed(cfg.seed)
    frames, actions = data.batch(torch.randperm(len(data), generator=gen)[:count].tolist())
    if frames.shape[2] != cfg.agents:
        raise SystemExit(f"{cfg.recording} has {frames.shape[2]} players, --agents is {cfg.agents}")
    return frames, actions


def check_tokenizer(cfg: ChecksConfig) -> dict:
    tok, _, meta = load_stage(cfg.checkpoint, meta_stage(cfg.checkpoint))
    assert cfg.recording is not None, "--recording is needed"
    data = ClipDataset([cfg.recording], 1, stride=7, envs=None)
    gen = torch.Generator().manual_seed(cfg.seed)
    idx = torch.randperm(len(data), generator=gen)[: cfg.clips * 32].tolist()
    frames = data.batch(idx)[0][:, 0]  # [N, A, 3, H, W]
    with torch.no_grad():
        recon = torch.cat([tok.decode(tok.encode(f)) for f in frames.split(64)])
    result = {
        "checkpoint": str(cfg.checkpoint),
        "recording": str(cfg.recording),
        "frames": int(frames.shape[0] * frames.shape[1]),
        "psnr_db": float(psnr(recon, frames).mean()),
        "ssim": float(ssim(recon, frames).mean()),
        "latent_scale": float(tok.scale),
    }
    n, db, ss = result["frames"], result["psnr_db"], result["ssim"]
    print(f"tokenizer on {n} frames of {cfg.recording}: PSNR {db:.2f} dB, SSIM {ss:.3f}")
    return result


def meta_stage(path: Path) -> Stage:
    return ckpt.read_meta(path)["stage"]


def check_control(cfg: ChecksConfig) -> dict:
    tok, student, _ = load_stage(cfg.checkpoint, "student")
    assert student is not None
    student.eval()
    length = student.context_frames + cfg.steps
    frames, actions = _clips(cfg, length, 2 * cfg.clips)
    frames, actions, other = frames[: cfg.clips], actions[: cfg.clips], actions[cfg.clips :]
    swapped = actions.clone()
    c = student.context_frames
    swapped[:, c:, cfg.player] = other[:, c:, cfg.player]  # the context's actions stay the real ones
    own = dream_clips(student, tok, frames, actions, torch.Generator().manual_seed(cfg.seed))
    alt = dream_clips(student, tok, frames, swapped, torch.Generator().manual_seed(cfg.seed))
    result: dict = {
        "checkpoint": str(cfg.checkpoint),
        "recording": str(cfg.recording),
        "agents": cfg.agents,
        "clips": cfg.clips,
        "swapped_player": cfg.player,
        "action_change": float((swapped - actions)[:, c:, cfg.player].abs().mean()),
    }
    others = [a for a in range(cfg.agents) if a != cfg.player]
    for view, players in (("swapped_view", [cfg.player]), ("other_views", others)):
        m_own = horizon_metrics(frames[:, :, players], own[:, :, players], c)
        m_alt = horizon_metrics(frames[:, :, players], alt[:, :, players], c)
        result[view] = {
            "own_psnr": m_own["psnr"],
            "swapped_psnr": m_alt["psnr"],
            "own_ssim": m_own["ssim"],
            "swapped_ssim": m_alt["ssim"],
            "mean_psnr_gain_own_over_swapped": float(np.mean(m_own["psnr"]) - np.mean(m_alt["psnr"])),
            "mean_ssim_gain_own_over_swapped": float(np.mean(m_own["ssim"]) - np.mean(m_alt["ssim"])),
        }
        # how far apart the two dreams are, in the same view (0 dB difference = the actions changed nothing)
        diff = (own[:, c:, players].float() - alt[:, c:, players].float()).abs().mean() / 255
        result[view]["mean_abs_pixel_change"] = float(diff)
        print(
            f"{view}: PSNR own {np.mean(m_own['psnr']):.3f} vs swapped {np.mean(m_alt['psnr']):.3f} dB "
            f"(gain {result[view]['mean_psnr_gain_own_over_swapped']:+.3f}); SSIM own {np.mean(m_own['ssim']):.4f} "
            f"vs swapped {np.mean(m_alt['ssim']):.4f}; mean |own - swapped| {diff:.4f} of full scale"
        )
        for name in ("own_psnr", "swapped_psnr"):
            print(f"  {name} per step: " + " ".join(f"{v:.2f}" for v in result[view][name]))
    return result


def check_still(cfg: ChecksConfig) -> dict:
    import matplotlib.pyplot as plt

    tok, student, _ = load_stage(cfg.checkpoint, "student")
    assert student is not None and cfg.out is not None
    student.eval()
    c = student.context_frames
    frames, actions = _clips(cfg, c + cfg.steps, 1)
    dreamed = dream_clips(student, tok, frames, actions, torch.Generator().manual_seed(cfg.seed))
    real, gen = frames[0], dreamed[0]  # [T, A, 3, H, W]
    H, A = real.shape[-1], real.shape[1]
    gap = np.full((4, A * (H + 4) - 4, 3), 255, np.uint8)
    rows = []
    sep = np.full((H, 4, 3), 255, np.uint8)
    for s in cfg.show:  # a row of real views, then a row of generated ones, per step shown
        for src in (real, gen):
            views = [src[c + s - 1, a].permute(1, 2, 0).numpy() for a in range(A)]
            rows.append(np.concatenate([x for v in views for x in (v, sep)][:-1], 1))
        rows.append(gap)
    image = np.concatenate(rows[:-1], 0)
    image = image.repeat(2, 0).repeat(2, 1)
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(cfg.out, image)
    print(f"wrote {cfg.out}: {image.shape[1]}x{image.shape[0]}, {cfg.out.stat().st_size} bytes")
    return {"out": str(cfg.out), "steps": list(cfg.show)}


def check_consistency(cfg: ChecksConfig) -> dict:
    from distill.world_model.probe import ball_labels, consistency, train_probe
    from envs.recording import Recording
    from envs.resimulate import make_env

    if not cfg.probe_recordings or cfg.recording is None:
        raise SystemExit("--what consistency needs --recording (held out) and --probe-recordings (to train the probe)")
    if cfg.recording in cfg.probe_recordings:
        raise SystemExit("--recording is held out: it may not be one of --probe-recordings")
    held = Recording(cfg.recording)
    env = make_env(held, num_envs=1)  # its camera geometry: the in-view test of the labels
    team_size = env.cfg.team_size
    probe_data = ClipDataset(cfg.probe_recordings, 1, stride=3, envs=None, groups=("privileged",))
    frames = probe_data.batch(range(len(probe_data)))[0][:, 0].flatten(0, 1)  # [N * A, 3, H, W]
    priv = probe_data.group("privileged", range(len(probe_data)))[:, 0].flatten(0, 1)
    ego, visible = ball_labels(priv, env.ball_in_view)
    gen = torch.Generator().manual_seed(cfg.seed)
    probe, losses = train_probe(frames, ego, visible, cfg.probe_steps, generator=gen)
    print(f"probe: {frames.shape[0]} frames ({float(visible.float().mean()):.2f} with the ball in view), loss {losses}")
    tok, student, _ = load_stage(cfg.checkpoint, "student")
    assert student is not None
    student.eval()
    length = student.context_frames + cfg.steps
    data = ClipDataset([cfg.recording], length, stride=length, envs=None, groups=("privileged",))
    if len(data) < cfg.clips:
        raise SystemExit(f"{cfg.recording}: {len(data)} clips of {length} frames, {cfg.clips} needed")
    idx = torch.randperm(len(data), generator=gen)[: cfg.clips].tolist()
    real, actions = data.batch(idx)
    if real.shape[2] != cfg.agents:
        raise SystemExit(f"{cfg.recording} has {real.shape[2]} players, --agents is {cfg.agents}")
    dreamed = dream_clips(student, tok, real, actions, torch.Generator().manual_seed(cfg.seed))
    figures = consistency(
        probe, real, dreamed, data.group("privileged", idx), env.ball_in_view, team_size, student.context_frames
    )
    env.close()
    result = {
        "checkpoint": str(cfg.checkpoint),
        "recording": str(cfg.recording),
        "probe_recordings": [str(r) for r in cfg.probe_recordings],
        "probe_frames": int(frames.shape[0]),
        "probe_steps": cfg.probe_steps,
        "probe_losses": losses,
        "agents": cfg.agents,
        "clips": len(idx),
        "steps": cfg.steps,
        **figures,
    }
    for k in ("real", "generated", "copy"):
        print(
            f"{k:>9} views: ball placed {figures[f'error_{k}_m']:.3f} m from it; two players' placements "
            f"{figures[f'agreement_{k}_m']:.3f} m apart; in-view calls right {figures[f'in_view_accuracy_{k}']:.3f}"
        )
    print(f"({figures['views']} player-steps with the ball in view, {figures['pairs']} pairs of players seeing it)")
    return result


def student_actions(policy: torch.nn.Module, frames: torch.Tensor, proprio: torch.Tensor) -> torch.Tensor:
    """A vision student's actions ``[B, T, A, act]`` (clamped to the env's [-1, 1]) over clips of
    every player's frames ``[B, T, A, 3, H, W]`` and ``proprio`` ``[B, T, A, P]``, one memory per
    clip and player, from the clip's first frame."""
    from distill.students import StudentPolicy

    acting = StudentPolicy(policy)  # a fresh memory: every stream starts at the clip's first frame
    steps = [acting({"camera": frames[:, t], "proprio": proprio[:, t].float()}) for t in range(frames.shape[1])]
    return torch.stack(steps, 1).clamp(-1, 1)


def check_policy(cfg: ChecksConfig) -> dict:
    from distill.students import Student

    if cfg.policy is None or cfg.recording is None:
        raise SystemExit("--what policy needs --policy (a vision student) and --recording (held out)")
    policy, meta = Student.load(cfg.policy)
    policy.eval()
    if policy.image_groups != ("camera",):
        raise SystemExit(f"--policy {cfg.policy} reads {policy.image_groups}; the dream gives 'camera' alone")
    tok, student, _ = load_stage(cfg.checkpoint, "student")
    assert student is not None
    student.eval()
    c, length = student.context_frames, student.context_frames + cfg.steps
    data = ClipDataset([cfg.recording], length, stride=length, envs=[meta["env"]], groups=("proprio",))
    if len(data) < max(cfg.clips, 2):
        raise SystemExit(f"{cfg.recording}: {len(data)} clips of {length} frames, {max(cfg.clips, 2)} needed")
    gen = torch.Generator().manual_seed(cfg.seed)
    idx = torch.randperm(len(data), generator=gen)[: cfg.clips].tolist()
    real, actions = data.batch(idx)
    proprio = data.group("proprio", idx)
    if real.shape[2] != cfg.agents:
        raise SystemExit(f"{cfg.recording} has {real.shape[2]} players, --agents is {cfg.agents}")
    if tuple(real.shape[-3:]) != tuple(policy.image_shape):
        raise SystemExit(
            f"--policy reads {tuple(policy.image_shape)} images; the recording's are {tuple(real.shape[-3:])}"
        )
    with torch.no_grad():
        dreamed = dream_clips(student, tok, real, actions, torch.Generator().manual_seed(cfg.seed))
        still = torch.cat((real[:, :c], held_still(real, c)), 1)
        on_real = student_actions(policy, real, proprio)[:, c:]
        gaps = {
            "dreamed": (student_actions(policy, dreamed, proprio)[:, c:] - on_real).abs().mean((0, 2, 3)),
            "still": (student_actions(policy, still, proprio)[:, c:] - on_real).abs().mean((0, 2, 3)),
            "other_clip": (on_real.roll(1, 0) - on_real).abs().mean((0, 2, 3)),
        }
    per_step = {k: [round(float(x), 4) for x in v] for k, v in gaps.items()}
    means = {k: float(v.mean()) for k, v in gaps.items()}
    print(f"{cfg.policy} over {len(idx)} clips x {cfg.agents} players, {cfg.steps} generated steps each:")
    for k, v in means.items():
        print(
            f"  |action on {k} frames - action on real frames|: {v:.3f} (steps 1, 8, last: "
            f"{per_step[k][0]:.3f}, {per_step[k][min(7, cfg.steps - 1)]:.3f}, {per_step[k][-1]:.3f})"
        )
    return {
        "checkpoint": str(cfg.checkpoint),
        "recording": str(cfg.recording),
        "policy": str(cfg.policy),
        "agents": cfg.agents,
        "clips": len(idx),
        "steps": cfg.steps,
        "context_frames": c,
        "mean_abs_action_gap": means,
        "per_step": per_step,
    }


def ship(cfg: ChecksConfig) -> dict:
    assert cfg.out is not None
    tok, net, meta = load_stage(cfg.checkpoint, cfg.stage)
    keep = {k: meta[k] for k in ("step", "envs", "recordings", "history") if k in meta}
    path = save_stage(
        cfg.out, cfg.stage, tok, net, model_config(meta["model"]), StudentConfig(**meta["student"]), extra_meta=keep
    )
    size = sum(f.stat().st_size for f in Path(path).iterdir())
    print(f"wrote {path}: {size / 2**20:.2f} MiB")
    return {"out": str(path), "bytes": size}


def main(cfg: ChecksConfig) -> dict:
    checks = {"tokenizer": check_tokenizer, "control": check_control, "still": check_still}
    fn = {**checks, "consistency": check_consistency, "policy": check_policy, "ship": ship}[cfg.what]
    result = fn(cfg)
    if cfg.json is not None:
        write_json(cfg.json, result)
        print(f"wrote {cfg.json}")
    return result


if __name__ == "__main__":
    main(tyro.cli(ChecksConfig))
