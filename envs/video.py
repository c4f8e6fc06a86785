"""Video frames of a world (overview, egocentric panels, HUD) and a writer that never leaves a
half-written file under the final name."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import numpy as np
from PIL import Image, ImageDraw

SUFFIXES = (".mp4", ".gif")


def hud(frame: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """``frame`` with ``lines`` of white text on a black band at its top."""
    img = Image.fromarray(frame)
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, img.width, 4 + 13 * len(lines)), fill=(0, 0, 0))
    for i, line in enumerate(lines):
        draw.text((6, 2 + 13 * i), line, fill=(255, 255, 255))
    return np.asarray(img)


SEPARATOR = 2  # pixels between two egocentric panels, and above the row of them
SEPARATOR_COLOUR = (128, 128, 128)


def label(panel: np.ndarray, text: str) -> np.ndarray:
    """``panel`` with ``text`` (an agent's name) in white on a black tag at its top left."""
    img = Image.fromarray(panel)
    draw = ImageDraw.Draw(img)
    left, top, right, bottom = draw.textbbox((2, 1), text)
    draw.rectangle((0, 0, right + 2, bottom + 1), fill=(0, 0, 0))
    draw.text((2, 1), text, fill=(255, 255, 255))
    return np.asarray(img)


def compose(
    overview: np.ndarray, panels: Sequence[np.ndarray], text: Sequence[str], labels: Sequence[str] = ()
) -> np.ndarray:
    """The overview with a HUD, and below it a grey line and the egocentric panels in a row, each
    tagged with its entry of ``labels`` (if given) and set apart by grey lines (``SEPARATOR`` pixels);
    panels too wide for the overview together are scaled down to fit."""
    top = hud(overview, text)
    if not panels:
        return top
    width, n = top.shape[1], len(panels)
    h, w = panels[0].shape[:2]
    room = width - SEPARATOR * (n - 1)
    if n * w > room:  # scale each panel, so that the lines between them stay whole
        w, h = max(1, room // n), max(1, h * max(1, room // n) // w)
        panels = [np.asarray(Image.fromarray(p).resize((w, h), Image.NEAREST)) for p in panels]
    if labels:
        panels = [label(p, name) for p, name in zip(panels, labels, strict=True)]
    line = np.empty((h, SEPARATOR, 3), np.uint8)
    line[:] = SEPARATOR_COLOUR
    pieces = [panels[0]]
    for p in panels[1:]:
        pieces += [line, p]
    strip = np.concatenate(pieces, axis=1)
    strip = np.pad(strip, ((0, 0), (0, width - strip.shape[1]), (0, 0)))
    rule = np.empty((SEPARATOR, width, 3), np.uint8)
    rule[:] = SEPARATOR_COLOUR
    return np.concatenate((top, rule, strip), axis=0)


def world_frame(
    env: Any,
    world: int,
    text: Sequence[str],
    agents: Sequence[str] | None = None,
    size: tuple[int, int] = (480, 360),
    ego_size: int = 96,
) -> np.ndarray:
    """Overview of ``world`` plus the egocentric view of each of ``agents`` (default all)."""
    top = env.render_frame(world, "overview", size)
    names = env.agents if agents is None else agents
    cams = [_camera_of(env, a) for a in names]
    panels = [env.render_frame(world, c, (ego_size, ego_size)) for c in cams]
    return compose(top, panels, text, names)


def _camera_of(env: Any, agent: str) -> str:
    if agent not in env.agents:
        raise ValueError(f"unknown agent {agent!r}; agents: {env.agents}")
    return f"{agent}_cam"


class VideoWriter:
    """Frames to ``path`` (``.mp4``: H.264; ``.gif``), written under a temporary name and renamed
    when closed without error, so an interrupted run leaves no truncated video behind. H.264 wants
    sides divisible by 16 (its macro blocks): an ``.mp4``'s frames are padded with black at the
    bottom and right to the next multiple, never cropped."""

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        if self.path.suffix not in SUFFIXES:
            raise ValueError(f"video must end in one of {SUFFIXES}, got {self.path}")
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(self.path.stem + ".partial" + self.path.suffix)
        if self.path.suffix == ".mp4":
            kw = {"fps": fps, "codec": "libx264", "quality": 7, "macro_block_size": 16}
        else:
            kw = {"duration": 1000 / fps, "loop": 0}
        self._writer = imageio.get_writer(self.tmp, **kw)
        self.frames = 0

    def append(self, frame: np.ndarray) -> None:
        """Add ``frame`` ``[H, W, 3]`` uint8."""
        if self.path.suffix == ".mp4":
            h, w = frame.shape[:2]
            frame = np.pad(frame, ((0, -h % 16), (0, -w % 16), (0, 0)))
        self._writer.append_data(frame)
        self.frames += 1

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
        self._writer.close()
        if exc_type is None and self.frames:
            os.replace(self.tmp, self.path)
        elif self.tmp.exists():
            self.tmp.unlink()
