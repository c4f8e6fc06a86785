"""Recorded rollouts: one versioned, sharded format, validated on read.

A recording is a directory::

    manifest.json         format, version, env name and resolved config, policy, seed,
                          egoteach version, observation groups, and every shard and episode
    shard_00000.npz       whole episodes, arrays concatenated along time (see below)
    shard_00001.npz       ...

Why compressed ``.npz`` shards with a JSON manifest: numpy reads them with no extra
dependency and never runs code from them (``allow_pickle=False``); zlib shrinks camera frames
several times; a shard is written to a temporary name and renamed, then the manifest is
rewritten the same way, so a crash or Ctrl-C loses at most the episodes not yet in a shard and
never leaves a listed shard half-written. Each shard's SHA-256 is in the manifest: a truncated
or corrupted shard fails loudly, naming the file, instead of feeding bad data to a learner.

Arrays of a shard (E episodes, T_i steps each, T = sum T_i; A agents):

    ep_len            [E]                 steps of each episode
    actions           [T, A, act_dim]     float32, as applied (after clipping)
    rewards           [T, A]              float32
    terminated        [T]                 bool
    truncated         [T]                 bool
    teleported        [T]                 bool: the task rewrote the state in that step (kick-off)
    info/<key>        [T, ...]            per-step task info (soccer ``score``; EgoPush ``success``, ``stage``)
    obs/<group>       [T + E, A, ...]     observations o_0 .. o_T of each episode (o_T: the final one)
    state/<field>     [T + E, n]          full integration state s_0 .. s_T (``envs.sim.STATE_FIELDS``)
    fields/<name>     [E, ...]            per-world model fields of the episode (``geom_pos``)

Episode i covers steps ``[s_i, s_i + T_i)`` and observation/state rows ``[s_i + i, s_i + i + T_i]``
where ``s_i`` is the sum of the earlier episodes' lengths.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from envs.io import write_atomic

FORMAT = "egoteach-rollouts"
VERSION = 1
MANIFEST = "manifest.json"


class RecordingError(ValueError):
    """A recording that cannot be read: missing, of another format, truncated or corrupted."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file (policy checkpoints are identified by it in the metadata)."""
    return _sha256(Path(path))


class RecordingWriter:
    """Collects whole episodes and writes them in shards of ``episodes_per_shard``.

    Args:
        out: the recording's directory (created; must not already hold a recording).
        meta: env name and config, policy, seed, ... stored in the manifest as given.
        obs_groups: observation groups recorded.
        episodes_per_shard: episodes per shard file.
        compress: zlib-compress shards (smaller, slower to write and read).
    """

    def __init__(
        self,
        out: str | Path,
        meta: dict[str, Any],
        obs_groups: list[str],
        episodes_per_shard: int = 16,
        compress: bool = True,
    ) -> None:
        self.out = Path(out)
        if (self.out / MANIFEST).exists():
            raise FileExistsError(f"{self.out} already holds a recording; choose another --out")
        if episodes_per_shard < 1:
            raise ValueError(f"episodes_per_shard must be >= 1, got {episodes_per_shard}")
        self.out.mkdir(parents=True, exist_ok=True)
        self.meta = meta
        self.obs_groups = list(obs_groups)
        self.episodes_per_shard = episodes_per_shard
        self.compress = compress
        self._pending: list[dict[str, np.ndarray]] = []
        self._shards: list[dict[str, Any]] = []
        self._episodes: list[dict[str, Any]] = []
        self._write_manifest("in_progress")

    def add(self, episode: dict[str, np.ndarray], summary: dict[str, Any]) -> None:
        """Queue one episode (arrays as in the module docstring, for one episode) and its summary
        (``return`` per agent, task outcome); full shards are written at once."""
        T = len(episode["actions"])
        for key in ("rewards", "terminated", "truncated", "teleported"):
            if len(episode[key]) != T:
                raise ValueError(f"episode array {key!r} has {len(episode[key])} steps, actions have {T}")
        for key, value in episode.items():
            if key.startswith(("obs/", "state/")) and len(value) != T + 1:
                raise ValueError(f"episode array {key!r} must have T + 1 = {T + 1} rows, got {len(value)}")
        self._pending.append(episode)
        self._episodes.append({"length": T, **summary})
        if len(self._pending) >= self.episodes_per_shard:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        eps = self._pending
        arrays: dict[str, np.ndarray] = {"ep_len": np.array([len(e["actions"]) for e in eps], dtype=np.int64)}
        for key in eps[0]:
            if key.startswith("fields/"):
                arrays[key] = np.stack([e[key] for e in eps])
            else:
                arrays[key] = np.concatenate([e[key] for e in eps])
        index = len(self._shards)
        name = f"shard_{index:05d}.npz"
        tmp = self.out / (name + ".tmp.npz")
        (np.savez_compressed if self.compress else np.savez)(tmp, **arrays)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, self.out / name)
        first = len(self._episodes) - len(eps)
        for i in range(len(eps)):
            self._episodes[first + i].update(shard=index, index=i)
        self._shards.append(
            {
                "file": name,
                "episodes": len(eps),
                "steps": int(arrays["ep_len"].sum()),
                "sha256": _sha256(self.out / name),
            }
        )
        self._pending = []
        self._write_manifest("in_progress")

    def _write_manifest(self, status: str) -> None:
        written = [e for e in self._episodes if "shard" in e]
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "status": status,
            **self.meta,
            "obs_groups": self.obs_groups,
            "shards": self._shards,
            "episodes": written,
        }
        write_atomic(self.out / MANIFEST, json.dumps(manifest, indent=1).encode())

    def close(self, interrupted: bool = False) -> None:
        """Write the episodes still queued and mark the recording ``complete`` (or ``interrupted``)."""
        self._flush()
        self._write_manifest("interrupted" if interrupted else "complete")

    @property
    def num_episodes(self) -> int:
        return len(self._episodes)


@dataclass(frozen=True)
class Episode:
    """One recorded episode: ``data`` maps the module docstring's keys to this episode's arrays."""

    index: int
    data: dict[str, np.ndarray]
    summary: dict[str, Any]

    @property
    def length(self) -> int:
        return len(self.data["actions"])


class Recording:
    """A recording on disk, validated: its manifest on open, each shard's hash on first read."""

    def __init__(self, path: str | Path, verify: bool = True) -> None:
        self.path = Path(path)
        mfile = self.path / MANIFEST
        if not mfile.is_file():
            raise RecordingError(f"{mfile} not found: not an egoteach recording")
        try:
            self.manifest = json.loads(mfile.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise RecordingError(f"{mfile} is not valid JSON: {err}") from err
        m = self.manifest
        if not isinstance(m, dict) or m.get("format") != FORMAT:
            raise RecordingError(
                f"{mfile}: format is {m.get('format') if isinstance(m, dict) else m!r}, expected {FORMAT!r}"
            )
        if m.get("version") != VERSION:
            raise RecordingError(
                f"{mfile}: version {m.get('version')} is not supported (this egoteach reads {VERSION})"
            )
        for key in ("env", "config", "policy", "obs_groups", "shards", "episodes"):
            if key not in m:
                raise RecordingError(f"{mfile}: missing field {key!r}")
        for shard in m["shards"]:
            if not (self.path / shard["file"]).is_file():
                raise RecordingError(f"shard {self.path / shard['file']} listed in the manifest is missing")
        self.verify = verify
        self._cache: dict[int, dict[str, np.ndarray]] = {}

    @property
    def env(self) -> str:
        return self.manifest["env"]

    @property
    def config(self) -> dict[str, Any]:
        return self.manifest["config"]

    def __len__(self) -> int:
        return len(self.manifest["episodes"])

    def shard(self, index: int) -> dict[str, np.ndarray]:
        """All arrays of shard ``index``, checked against the manifest (cached: the last one read)."""
        if index in self._cache:
            return self._cache[index]
        entry = self.manifest["shards"][index]
        path = self.path / entry["file"]
        if self.verify and _sha256(path) != entry["sha256"]:
            raise RecordingError(f"shard {path} is corrupted or truncated: its SHA-256 differs from the manifest's")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
            raise RecordingError(f"shard {path} cannot be read: {err}") from err
        if "ep_len" not in arrays or len(arrays["ep_len"]) != entry["episodes"]:
            raise RecordingError(f"shard {path} does not hold the {entry['episodes']} episodes the manifest lists")
        self._cache = {index: arrays}
        return arrays

    def episode(self, i: int) -> Episode:
        """Episode ``i`` (in recording order)."""
        if not 0 <= i < len(self):
            raise IndexError(f"episode {i} out of range: the recording has {len(self)}")
        summary = self.manifest["episodes"][i]
        arrays = self.shard(summary["shard"])
        lens = arrays["ep_len"]
        j = summary["index"]
        s = int(lens[:j].sum())
        T = int(lens[j])
        data: dict[str, np.ndarray] = {}
        for key, value in arrays.items():
            if key == "ep_len":
                continue
            if key.startswith("fields/"):
                data[key] = value[j]
            elif key.startswith(("obs/", "state/")):
                data[key] = value[s + j : s + j + T + 1]
            else:
                data[key] = value[s : s + T]
        return Episode(i, data, summary)

    def __iter__(self) -> Iterator[Episode]:
        for i in range(len(self)):
            yield self.episode(i)


def make_env(recording: Recording, num_envs: int = 1, **overrides: Any) -> Any:
    """The env a recording was made in (its name and resolved config), with ``overrides``."""
    from envs.registry import make

    config = {**recording.config, **overrides}
    return make(recording.env, num_envs=num_envs, **config)


def load_episode_state(env: Any, episode: Episode, t: int, world: int = 0) -> None:
    """Put world ``world`` of ``env`` in the recorded state before step ``t`` (its fields too)."""
    for key, value in episode.data.items():
        if key.startswith("fields/"):
            env.sim.field(key[len("fields/") :])[world] = torch.as_tensor(value).to(
                env.sim.field(key[len("fields/") :])
            )
    state = {
        k[len("state/") :]: torch.as_tensor(v[t : t + 1]) for k, v in episode.data.items() if k.startswith("state/")
    }
    env.sim.set_state([world], state)


def resimulate(env: Any, episode: Episode, world: int = 0) -> dict[str, np.ndarray]:
    """Replay an episode's actions from its first recorded state in world ``world`` of ``env``.

    Physics only: the recorded actions go to the controls and the sim steps. Where the task had
    rewritten the state inside a step (``teleported``, e.g. a kick-off after a goal) the
    recorded state is loaded again, as the task's own placement is not physics.

    Returns:
        The re-simulated states ``state/<field>`` ``[T + 1, n]``, to compare with the recording's.
    """
    load_episode_state(env, episode, 0, world)
    out: dict[str, list[np.ndarray]] = {}

    def keep() -> None:
        for f, v in env.sim.get_state().items():
            out.setdefault(f"state/{f}", []).append(v[world].cpu().numpy())

    keep()
    actions = torch.as_tensor(episode.data["actions"])
    for t in range(episode.length):
        full = torch.zeros(env.num_envs, *actions.shape[1:])
        full[world] = actions[t]
        env._apply_actions(full.to(env.device))
        env.sim.step()
        if episode.data["teleported"][t]:
            load_episode_state(env, episode, t + 1, world)
        keep()
    return {k: np.stack(v) for k, v in out.items()}
