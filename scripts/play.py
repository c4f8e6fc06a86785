"""Play a soccer match and save it as a video: egoteach's "hello world".

The overview camera with the score, time step and rewards, and every player's egocentric view
below it. Goals restart play from kick-off. A thin front for ``agents.replay``'s live mode, as ``scripts/replay.py``.

    python scripts/play.py                                   # scripted vs random 2v2 -> videos/soccer-2v2.mp4
    python scripts/play.py --env soccer-1v1 --opponent scripted --seconds 10 --out videos/1v1.gif
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import tyro

from agents.replay import ReplayConfig, replay


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
    """Match length."""
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


def main(cfg: PlayConfig) -> Path:
    if not cfg.env.startswith("soccer"):
        raise SystemExit(f"play.py plays soccer envs, got {cfg.env!r}; use replay.py for others")
    fields = {f.name for f in dataclasses.fields(ReplayConfig)}
    frames, out = replay(ReplayConfig(**{k: v for k, v in dataclasses.asdict(cfg).items() if k in fields}))
    print(f"wrote {frames} frames to {out}")
    return out


if __name__ == "__main__":
    main(tyro.cli(PlayConfig))
