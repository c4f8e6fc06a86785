"""Clips of every player's camera and actions, cut from recordings (``envs.recording``).

A clip is ``frames`` uint8 ``[T, A, 3, H, W]`` (every agent's RGB camera, the ``camera``
observation group of ``scripts/record.py --cameras rgb``) and ``actions`` float ``[T, A, act_dim]``
where ``actions[t]`` is the action that led *into* frame ``t`` (the one applied after frame
``t-1``; zeros at an episode's first frame), which is how the world model is conditioned.

Clips never span an episode boundary nor a step where the task rewrote the state (a kick-off
after a goal: ``teleported``), since no model of the dynamics could predict that jump from the
actions. A recording without cameras, or of an env other than the expected ones, is refused by
name rather than producing clips a model would silently learn nothing from.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from envs.recording import Recording

CAMERA = "obs/camera"


class ClipDataset:
    """Every clip of ``clip`` frames (a new one every ``stride`` steps) of the given recordings.

    The frames of every usable episode are held in memory, uint8: 64 episodes of 500 steps of
    2 players at 64x64 are about 0.8 GB.

    Args:
        recordings: recording directories (or opened ``Recording`` objects).
        clip: frames per clip, T.
        stride: steps between the starts of consecutive clips of an episode.
        envs: env names accepted (None: any, as long as all recordings agree on agents and sizes).
        groups: more observation groups to keep per episode (e.g. ``privileged``), read with ``group``.
    """

    def __init__(
        self,
        recordings: Sequence[str | Path | Recording],
        clip: int,
        stride: int = 1,
        envs: Sequence[str] | None = ("soccer-1v1",),
        groups: Sequence[str] = (),
    ) -> None:
        if clip < 1 or stride < 1:
            raise ValueError(f"clip and stride must be >= 1, got {clip}, {stride}")
        self.clip, self.stride = clip, stride
        self.recordings = [r if isinstance(r, Recording) else Recording(r) for r in recordings]
        if not self.recordings:
            raise ValueError("no recordings given")
        for rec in self.recordings:
            check_recording(rec, envs)
        # Every usable episode's frames and actions, read once: batches draw clips at random, and a
        # recording keeps one shard open (re-reading and re-hashing another at every switch).
        self.episodes: list[tuple[np.ndarray, np.ndarray]] = []
        self.index: list[tuple[int, int]] = []  # (episode in self.episodes, first frame)
        self.groups: dict[str, list[np.ndarray]] = {g: [] for g in groups}
        for rec in self.recordings:
            missing = [g for g in groups if g not in rec.manifest["obs_groups"]]
            if missing:
                raise ValueError(f"{rec.path} has no {missing} observations (groups: {rec.manifest['obs_groups']})")
        for rec in self.recordings:
            for e, summary in enumerate(rec.manifest["episodes"]):
                if summary["length"] + 1 < clip:
                    continue
                ep = rec.episode(e)
                starts = self._starts(ep.data["teleported"])
                if starts:
                    acts = ep.data["actions"]
                    into = np.concatenate((np.zeros_like(acts[:1]), acts)).astype(np.float32)  # into[t]: before t
                    self.index += [(len(self.episodes), s) for s in starts]
                    self.episodes.append((ep.data[CAMERA], into))
                    for g in groups:
                        self.groups[g].append(ep.data[f"obs/{g}"])

    def _starts(self, teleported: np.ndarray) -> list[int]:
        # Frames s..s+T-1 are joined by steps s..s+T-2: none of them may teleport.
        jump = np.concatenate(([0], np.cumsum(teleported.astype(np.int64))))
        last = len(teleported) + 1 - self.clip
        return [s for s in range(0, last + 1, self.stride) if jump[s + self.clip - 1] == jump[s]]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Clip ``i``: frames uint8 ``[T, A, 3, H, W]`` and actions-into-frames ``[T, A, act_dim]``."""
        e, s = self.index[i]
        frames, into = self.episodes[e]
        clip = slice(s, s + self.clip)
        return torch.from_numpy(np.ascontiguousarray(frames[clip])), torch.from_numpy(np.ascontiguousarray(into[clip]))

    def group(self, name: str, indices: Sequence[int]) -> torch.Tensor:
        """Observation group ``name`` (kept with ``groups``) of clips ``indices``: ``[B, T, A, ...]``."""
        parts = []
        for i in indices:
            e, s = self.index[i]
            parts.append(torch.from_numpy(np.ascontiguousarray(self.groups[name][e][s : s + self.clip])))
        return torch.stack(parts)

    def actions(self, indices: Sequence[int]) -> torch.Tensor:
        """The actions-into-frames of clips ``indices``, stacked ``[B, T, A, act_dim]`` (no frames)."""
        parts = []
        for i in indices:
            e, s = self.index[i]
            parts.append(torch.from_numpy(np.ascontiguousarray(self.episodes[e][1][s : s + self.clip])))
        return torch.stack(parts)

    def batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Clips stacked: frames ``[B, T, A, 3, H, W]`` and actions ``[B, T, A, act_dim]``."""
        frames, actions = zip(*(self[i] for i in indices), strict=True)
        return torch.stack(frames), torch.stack(actions)


def check_recording(rec: Recording, envs: Sequence[str] | None) -> None:
    """Refuse a recording of another env or without RGB cameras, naming what is wrong."""
    if envs is not None and rec.env not in envs:
        raise ValueError(f"{rec.path} is a recording of {rec.env!r}; the world model expects {' or '.join(envs)}")
    if "camera" not in rec.manifest["obs_groups"]:
        raise ValueError(
            f"{rec.path} has no 'camera' observations (groups: {rec.manifest['obs_groups']}); "
            "record with scripts/record.py --cameras rgb"
        )
