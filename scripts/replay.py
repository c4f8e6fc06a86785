"""Replay a rollout as a video: the overview camera with a HUD (step, score or success, reward)
and one egocentric panel per agent.

Three sources:
    --recording DIR      re-renders the recorded states (at any resolution, whatever was recorded)
    --env NAME --policy  runs a policy live (``scripted``, ``random`` or a checkpoint directory)
    --checkpoint PATH    runs a checkpoint live in the env it was trained on

    python scripts/replay.py --recording data/soccer-expert --episode 0 --out videos/soccer.mp4
    python scripts/replay.py --env egopush-line --policy scripted --out videos/push.gif --width 320
    python scripts/replay.py --checkpoint checkpoints/egopush-line-teacher --out videos/teacher.mp4
"""

from __future__ import annotations

import tyro

import distill  # noqa: F401  (registers the student checkpoint kind)
from agents.checkpoint import CheckpointError
from agents.replay import ReplayConfig, replay


def main(cfg: ReplayConfig) -> None:
    try:
        frames, out = replay(cfg)
    except (ValueError, CheckpointError) as err:
        raise SystemExit(str(err)) from None
    print(f"wrote {frames} frames to {out}")


if __name__ == "__main__":
    main(tyro.cli(ReplayConfig))
