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

What a reader checks (``RecordingError`` naming the file otherwise): on open, the manifest's
fields and types; each shard's ``file`` is a plain name inside the recording (no ``..``, not
absolute, not a link out of it) listed once, with ``episodes`` >= 1, ``steps`` >= 0 and a SHA-256;
each episode names a listed shard and an ``index`` in it, every (shard, index) exactly once, and
its ``length`` >= 0; each shard's episodes' lengths sum to its ``steps``. On a shard's first read,
before any array is allocated: its hash, then each array's header: leading dimension as above
(``E``, ``T`` or ``T + E`` of the manifest), the agent dimension of ``actions``, ``rewards`` and
``obs/*`` equal to the manifest's ``agents``, no step's row over ``MAX_ROW_BYTES``, the header's
size equal to the stored one, and the shard's arrays together under ``max_shard_bytes``
(``Recording``'s argument, ``MAX_SHARD_BYTES`` by default; the writer starts a new shard before
``SHARD_BYTES`` so that it never writes one a reader refuses); then ``ep_len`` equal to the
manifest's lengths.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from envs.io import signals_held, write_atomic

FORMAT = "egoteach-rollouts"
VERSION = 1
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 256 << 20  # a manifest is ~100 bytes an episode: 256 MiB is millions of them
MAX_ROW_BYTES = 64 << 20  # one step of one array: four 2048x2048 RGB frames fit
MAX_SHARD_BYTES = 4 << 30  # a shard's arrays in memory, by default (``Recording(max_shard_bytes=...)``)
SHARD_BYTES = 1 << 30  # the writer starts a new shard once the queued episodes reach this
_TIME_KEYS = ("actions", "rewards", "terminated", "truncated", "teleported")  # [T, ...], always there
_AGENT_KEYS = ("actions", "rewards")  # [T, A, ...]: checked against the manifest's ``agents``


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
        self._pending_bytes = 0
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
        size = sum(np.asarray(v).nbytes for v in episode.values())
        if size > SHARD_BYTES:
            raise ValueError(
                f"one episode holds {size / 2**30:.1f} GiB, over the {SHARD_BYTES / 2**30:.0f} GiB a shard may: "
                "record fewer or smaller cameras, or shorter episodes"
            )
        if self._pending and self._pending_bytes + size > SHARD_BYTES:
            self._flush()  # a reader must be able to hold a shard in memory
        self._pending.append(episode)
        self._pending_bytes += size
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
        try:
            (np.savez_compressed if self.compress else np.savez)(tmp, **arrays)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            digest = _sha256(tmp)
            with signals_held():  # the shard is listed in the manifest as soon as it has its name
                os.replace(tmp, self.out / name)
                first = len(self._episodes) - len(eps)
                for i in range(len(eps)):
                    self._episodes[first + i].update(shard=index, index=i)
                shard = {"file": name, "episodes": len(eps), "steps": int(arrays["ep_len"].sum()), "sha256": digest}
                self._shards.append(shard)
                self._pending, self._pending_bytes = [], 0
                self._write_manifest("in_progress")
        finally:
            tmp.unlink(missing_ok=True)  # a write cut short (a second Ctrl-C, a full disk) leaves nothing behind

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
        with signals_held():
            write_atomic(self.out / MANIFEST, json.dumps(manifest, indent=1).encode())

    def close(self, interrupted: bool = False) -> None:
        """Write the episodes still queued and mark the recording ``complete`` (or ``interrupted``).

        If that last write is itself stopped (a second Ctrl-C, SIGTERM, an error), the queued
        episodes are dropped, the manifest lists the shards already written and says
        ``interrupted``, and the exception propagates."""
        try:
            self._flush()
        except BaseException:
            self._pending, self._pending_bytes = [], 0
            self._episodes = [e for e in self._episodes if "shard" in e]
            self._write_manifest("interrupted")
            raise
        self._write_manifest("interrupted" if interrupted else "complete")

    @property
    def num_episodes(self) -> int:
        """Episodes written into shards (those still queued for the next shard are not counted)."""
        return sum("shard" in e for e in self._episodes)


@dataclass(frozen=True)
class Episode:
    """One recorded episode: ``data`` maps the module docstring's keys to this episode's arrays."""

    index: int
    data: dict[str, np.ndarray]
    summary: dict[str, Any]

    @property
    def length(self) -> int:
        return len(self.data["actions"])


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


class Recording:
    """A recording on disk, validated: its manifest on open, each shard on first read (see the module
    docstring for what is checked).

    Args:
        path: the recording's directory.
        verify: check each shard's SHA-256 against the manifest's.
        max_shard_bytes: refuse a shard whose arrays would take more memory than this.
    """

    def __init__(self, path: str | Path, verify: bool = True, max_shard_bytes: int = MAX_SHARD_BYTES) -> None:
        self.path = Path(path)
        mfile = self.path / MANIFEST
        if not mfile.is_file():
            raise RecordingError(f"{mfile} not found: not an egoteach recording")
        if mfile.stat().st_size > MAX_MANIFEST_BYTES:
            raise RecordingError(f"{mfile} is {mfile.stat().st_size:,} bytes, over the {MAX_MANIFEST_BYTES:,} allowed")
        try:
            self.manifest = json.loads(mfile.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
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
        self._check_manifest(mfile)
        self.verify = verify
        self.max_shard_bytes = max_shard_bytes
        self._cache: dict[int, dict[str, np.ndarray]] = {}

    def _check_manifest(self, mfile: Path) -> None:
        """Shards inside the recording, each listed once; episodes that name each shard's slots once
        each and whose lengths sum to its steps."""
        m = self.manifest
        for key, kind in (("env", str), ("config", dict), ("obs_groups", list), ("shards", list), ("episodes", list)):
            if not isinstance(m[key], kind):
                raise RecordingError(f"{mfile}: {key!r} must be a {kind.__name__}, got {type(m[key]).__name__}")
        if "agents" in m and not (isinstance(m["agents"], list) and all(isinstance(a, str) for a in m["agents"])):
            raise RecordingError(f"{mfile}: 'agents' must be a list of names, got {m['agents']!r}")
        root = self.path.resolve()
        files: set[str] = set()
        for k, shard in enumerate(m["shards"]):
            where = f"{mfile}: shards[{k}]"
            if not isinstance(shard, dict):
                raise RecordingError(f"{where} must be an object with file, episodes, steps and sha256")
            name = shard.get("file")
            if (
                not isinstance(name, str)
                or not name
                or "\\" in name
                or Path(name).is_absolute()
                or ".." in Path(name).parts
                or not (self.path / name).resolve().is_relative_to(root)
            ):
                raise RecordingError(
                    f"{where}: file {name!r} must be a file name inside the recording (no '..', not absolute)"
                )
            if name in files:
                raise RecordingError(f"{where}: file {name!r} is listed twice")
            files.add(name)
            if not _is_int(shard.get("episodes")) or shard["episodes"] < 1:
                raise RecordingError(f"{where}: episodes must be an integer >= 1, got {shard.get('episodes')!r}")
            if not _is_int(shard.get("steps")) or shard["steps"] < 0:
                raise RecordingError(f"{where}: steps must be an integer >= 0, got {shard.get('steps')!r}")
            digest = shard.get("sha256")
            if not (isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
                raise RecordingError(f"{where}: sha256 must be 64 hexadecimal digits, got {digest!r}")
            if not (self.path / name).is_file():
                raise RecordingError(f"shard {self.path / name} listed in the manifest is missing")
        slots: set[tuple[int, int]] = set()
        steps = [0] * len(m["shards"])
        for i, ep in enumerate(m["episodes"]):
            where = f"{mfile}: episodes[{i}]"
            if not isinstance(ep, dict):
                raise RecordingError(f"{where} must be an object with shard, index and length")
            k, j, length = ep.get("shard"), ep.get("index"), ep.get("length")
            if not _is_int(k) or not 0 <= k < len(m["shards"]):
                raise RecordingError(f"{where}: shard must be one of 0..{len(m['shards']) - 1}, got {k!r}")
            if not _is_int(j) or not 0 <= j < m["shards"][k]["episodes"]:
                raise RecordingError(
                    f"{where}: index must be one of 0..{m['shards'][k]['episodes'] - 1} "
                    f"(shard {m['shards'][k]['file']} holds {m['shards'][k]['episodes']}), got {j!r}"
                )
            if (k, j) in slots:
                raise RecordingError(f"{where}: episode {j} of shard {m['shards'][k]['file']} is listed twice")
            slots.add((k, j))
            if not _is_int(length) or length < 0:
                raise RecordingError(f"{where}: length must be an integer >= 0, got {length!r}")
            steps[k] += length
        for k, shard in enumerate(m["shards"]):
            listed = sum(1 for kk, _ in slots if kk == k)
            if listed != shard["episodes"] or steps[k] != shard["steps"]:
                raise RecordingError(
                    f"{mfile}: shard {shard['file']} holds {shard['episodes']} episodes of {shard['steps']} steps, "
                    f"but the episodes list {listed} of {steps[k]} steps in it"
                )

    @property
    def env(self) -> str:
        return self.manifest["env"]

    @property
    def config(self) -> dict[str, Any]:
        return self.manifest["config"]

    def __len__(self) -> int:
        return len(self.manifest["episodes"])

    def _lengths(self, index: int) -> list[int]:
        """The manifest's episode lengths of shard ``index``, in the shard's order."""
        eps = sorted((e["index"], e["length"]) for e in self.manifest["episodes"] if e["shard"] == index)
        return [length for _, length in eps]

    def _check_headers(self, path: Path, index: int) -> None:
        """Every array's shape and size from its header, against the manifest, before any is read."""
        entry = self.manifest["shards"][index]
        E, T = entry["episodes"], entry["steps"]
        A = len(self.manifest["agents"]) if "agents" in self.manifest else None
        total, on_disk = 0, path.stat().st_size
        keys = set()
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                key = info.filename.removesuffix(".npy")
                keys.add(key)
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    raise RecordingError(f"shard {path}: array {key!r} is stored with an unknown compression")
                # Deflate expands at most ~1032x: a larger stated size is a lie, refused before it is believed.
                stored = info.compress_type == zipfile.ZIP_STORED
                if (
                    info.compress_size > on_disk
                    or (stored and info.file_size != info.compress_size)
                    or info.file_size > 1100 * info.compress_size + 1024
                ):
                    raise RecordingError(
                        f"shard {path}: array {key!r} states {info.file_size:,} bytes, "
                        f"more than its {info.compress_size:,} compressed bytes can hold"
                    )
                with zf.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    if version not in ((1, 0), (2, 0)):
                        raise RecordingError(f"shard {path}: array {key!r} has .npy version {version}")
                    fmt = np.lib.format
                    read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                    shape, _, dtype = read(f)
                    header = f.tell()
                if dtype.hasobject:
                    raise RecordingError(f"shard {path}: array {key!r} holds Python objects (refused: never unpickled)")
                if key == "ep_len" or key.startswith("fields/"):
                    rows, what = E, "E (episodes)"
                elif key.startswith(("obs/", "state/")):
                    rows, what = T + E, "T + E (steps + episodes)"
                else:
                    rows, what = T, "T (steps)"
                if len(shape) == 0 or shape[0] != rows:
                    raise RecordingError(
                        f"shard {path}: array {key!r} has shape {shape}; the manifest's {E} episodes of {T} steps "
                        f"need {what} = {rows} rows"
                    )
                if A is not None and (key in _AGENT_KEYS or key.startswith("obs/")) and shape[1:2] != (A,):
                    raise RecordingError(f"shard {path}: array {key!r} has shape {shape}, expected {A} agents second")
                row = math.prod(shape[1:]) * dtype.itemsize
                if row > MAX_ROW_BYTES:
                    raise RecordingError(
                        f"shard {path}: array {key!r} of shape {shape} has {row:,} bytes a row, "
                        f"over the {MAX_ROW_BYTES:,} allowed"
                    )
                size = rows * row
                if header + size != info.file_size:
                    raise RecordingError(
                        f"shard {path}: array {key!r} of shape {shape} needs {size:,} bytes; "
                        f"{info.file_size - header:,} are stored"
                    )
                total += size
        missing = [k for k in ("ep_len", *_TIME_KEYS) if k not in keys]
        if missing:
            raise RecordingError(f"shard {path} lacks the array(s) {missing}")
        if total > self.max_shard_bytes:
            raise RecordingError(
                f"shard {path} would take {total:,} bytes in memory, over max_shard_bytes "
                f"{self.max_shard_bytes:,} (raise it with Recording(..., max_shard_bytes=N))"
            )

    def shard(self, index: int) -> dict[str, np.ndarray]:
        """All arrays of shard ``index``, checked against the manifest (cached: the last one read)."""
        if index in self._cache:
            return self._cache[index]
        entry = self.manifest["shards"][index]
        path = self.path / entry["file"]
        if self.verify and _sha256(path) != entry["sha256"]:
            raise RecordingError(f"shard {path} is corrupted or truncated: its SHA-256 differs from the manifest's")
        try:
            self._check_headers(path, index)
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
            if isinstance(err, RecordingError):
                raise
            raise RecordingError(f"shard {path} cannot be read: {err}") from err
        lens, listed = arrays["ep_len"], self._lengths(index)
        if lens.ndim != 1 or lens.dtype.kind not in "iu" or lens.tolist() != listed:
            raise RecordingError(f"shard {path}: ep_len {lens.tolist()} differs from the manifest's lengths {listed}")
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
