"""Play a soccer match between two policies in one world and save it as a video.

The video shows the overview camera with a score/time HUD and, below it, every player's
egocentric camera. This is egoteach's "hello world":

    python scripts/play.py                                   # scripted vs random 2v2 -> videos/soccer-2v2.mp4
    python scripts/play.py --env soccer-1v1 --opponent scripted --seconds 10 --out videos/1v1.gif
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Literal

import imageio.v2 as imageio
import numpy as np
import torch
import tyro
from PIL import Image, ImageDraw
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import envs  # noqa: E402
from agents.policies import make_policy  # noqa: E402


@dataclasses.dataclass(frozen=True)
class PlayConfig:
    """Record one match as a video."""

    env: str = "soccer-2v2"
    """Registered soccer env."""
    policy: Literal["scripted", "random"] = "scripted"
    """Team 0 (blue)."""
    opponent: Literal["scripted", "random"] = "random"
    """Team 1 (red). Two scripted teams mostly jam each other at the ball: random makes goals."""
    seconds: float = 20.0
    """Match length; goals restart play from kick-off."""
    out: Path = Path("videos/soccer-2v2.mp4")
    """Output file, ``.mp4`` (H.264) or ``.gif``."""
    width: int = 480
    """Width of the overview panel in pixels (height is 3/4 of it)."""
    ego_size: int = 96
    """Side of each egocentric panel in pixels."""
    seed: int = 1
    """Seed of the world and of random policies (seed 0's match happens to end 0-0)."""
    still: Path | None = None
    """Also save the frame at ``still_at`` seconds as a PNG (for docs)."""
    still_at: float = 6.0
    """Time of the still, in seconds."""


def _hud(frame: np.ndarray, text: str) -> np.ndarray:
    img = Image.fromarray(frame)
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, img.width, 18), fill=(0, 0, 0))
    draw.text((6, 3), text, fill=(255, 255, 255))
    return np.asarray(img)


def main(cfg: PlayConfig) -> Path:
    if cfg.out.suffix not in (".mp4", ".gif"):
        raise SystemExit(f"--out must end in .mp4 or .gif, got {cfg.out}")
    if not cfg.env.startswith("soccer"):
        raise SystemExit(f"play.py plays soccer envs, got {cfg.env!r}")
    env = envs.make(cfg.env, num_envs=1, on_goal="kickoff", episode_seconds=cfg.seconds)
    policy = make_policy(cfg.policy, env, seed=cfg.seed)
    opponent = make_policy(cfg.opponent, env, seed=cfg.seed + 1)
    n = env.num_agents // 2
    size = (cfg.width, cfg.width * 3 // 4)
    fps = round(1 / env.control_dt)
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = cfg.out.with_name(cfg.out.stem + ".partial" + cfg.out.suffix)
    kw = (
        {"fps": fps, "codec": "libx264", "quality": 7, "macro_block_size": 16}
        if cfg.out.suffix == ".mp4"
        else {"duration": 1000 / fps, "loop": 0}
    )
    obs = env.reset(seed=cfg.seed)
    score = [0, 0]
    try:
        with imageio.get_writer(tmp, **kw) as writer:
            for t in tqdm(range(env.max_episode_steps), desc="match", unit="step"):
                top = env.render_frame(0, "overview", size)
                ego = [env.render_frame(0, f"{a}_cam", (cfg.ego_size, cfg.ego_size)) for a in env.agents]
                strip = np.concatenate(ego, axis=1)
                pad = size[0] - strip.shape[1]
                if pad > 0:
                    strip = np.pad(strip, ((0, 0), (0, pad), (0, 0)))
                else:
                    strip = np.asarray(
                        Image.fromarray(strip).resize((size[0], cfg.ego_size * size[0] // strip.shape[1]))
                    )
                text = (
                    f"blue {score[0]} - {score[1]} red   t={t * env.control_dt:5.1f}s   {cfg.policy} vs {cfg.opponent}"
                )
                frame = np.concatenate((_hud(top, text), strip), axis=0)
                h, w = frame.shape[:2]
                writer.append_data(frame[: h - h % 16, : w - w % 16] if cfg.out.suffix == ".mp4" else frame)
                if cfg.still is not None and t == round(cfg.still_at / env.control_dt):
                    cfg.still.parent.mkdir(parents=True, exist_ok=True)
                    imageio.imwrite(cfg.still, frame)
                with torch.no_grad():
                    act = torch.cat(
                        (
                            policy({k: v[:, :n] for k, v in obs.items()}),
                            opponent({k: v[:, n:] for k, v in obs.items()}),
                        ),
                        1,
                    )
                obs, _, term, trunc, info = env.step(act)
                score = info["score"][0].tolist()  # taken before any auto-reset
        os.replace(tmp, cfg.out)  # only a finished video takes the final name
    finally:
        if tmp.exists():
            tmp.unlink()
        env.close()
    print(f"final score blue {score[0]} - {score[1]} red; wrote {cfg.out}")
    return cfg.out


if __name__ == "__main__":
    main(tyro.cli(PlayConfig))
