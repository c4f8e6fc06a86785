"""Policy checkpoints: weights in safetensors, everything else in JSON beside them.

A checkpoint is a directory::

    policy.safetensors    tensors only (no code, nothing to unpickle)
    policy.json           format and version, env name and resolved config, observation
                          group(s), network description, normaliser statistics, anything the
                          trainer adds (steps, seed, ...)

Both files are written to temporary names and renamed (JSON last), so a crash leaves either
the old checkpoint or the new one, never a mix.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

FORMAT = "egoteach-policy"
VERSION = 1
WEIGHTS = "policy.safetensors"
META = "policy.json"


MAX_META_BYTES = 64 * 2**20


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing files, another format, or weights that do not fit."""


Check = tuple[Callable[[Any], bool], str]


def integer(lo: int, hi: int) -> Check:
    """A schema entry: an integer (not a bool) in ``[lo, hi]``."""
    return (lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi, f"an integer in [{lo}, {hi}]")


def integers(lo: int, hi: int, max_len: int) -> Check:
    """A schema entry: a list of at most ``max_len`` integers in ``[lo, hi]``."""
    one = integer(lo, hi)[0]
    return (
        lambda v: isinstance(v, list) and len(v) <= max_len and all(one(x) for x in v),
        f"a list of at most {max_len} integers in [{lo}, {hi}]",
    )


TEXT: Check = (lambda v: isinstance(v, str), "a string")
FIELDS: Check = (lambda v: isinstance(v, dict), "an object")


def check_meta(meta: dict[str, Any], path: str | Path, schema: dict[str, Check]) -> None:
    """Refuse metadata whose fields are missing or not what ``schema`` expects, naming the field,
    before anything is built from it (a network size read from a file sizes an allocation)."""
    for key, (ok, what) in schema.items():
        if key not in meta:
            raise CheckpointError(f"{path}: its metadata has no {key!r} (expected {what})")
        if not ok(meta[key]):
            raise CheckpointError(f"{path}: metadata {key!r} is {str(meta[key])[:80]!r}, expected {what}")


def check_env(meta: dict[str, Any], path: str | Path, env: Any) -> None:
    """Refuse a checkpoint trained on another env than ``env``, naming both."""
    name = getattr(env, "name", None)
    if meta["env"] != name:
        raise CheckpointError(f"{path} was trained on {meta['env']!r}, not {name!r}")


def check_size(path: str | Path, n_params: int) -> None:
    """Refuse a network of ``n_params`` float32 numbers that the weights file is too small to hold
    (metadata edited to describe a far larger network), before it is allocated."""
    have = (Path(path) / WEIGHTS).stat().st_size
    if 4 * n_params > have:
        raise CheckpointError(
            f"{path}: its metadata describes {n_params:,} parameters ({4 * n_params:,} bytes); {WEIGHTS} holds {have:,}"
        )


def save(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write a checkpoint directory atomically; returns it."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tmp_w = path / (WEIGHTS + ".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp_w))
    sha = hashlib.sha256(tmp_w.read_bytes()).hexdigest()
    tmp_m = path / (META + ".tmp")
    tmp_m.write_text(json.dumps({"format": FORMAT, "version": VERSION, "weights_sha256": sha, **meta}, indent=1))
    os.replace(tmp_w, path / WEIGHTS)
    os.replace(tmp_m, path / META)
    return path


def read_meta(path: str | Path) -> dict[str, Any]:
    """The metadata of a checkpoint directory (format and version checked), without reading
    the weights: what a caller needs to know what a checkpoint holds."""
    path = Path(path)
    wfile, mfile = path / WEIGHTS, path / META
    if not wfile.is_file() or not mfile.is_file():
        raise CheckpointError(f"{path} is not a policy checkpoint: expected {WEIGHTS} and {META} in it")
    if mfile.stat().st_size > MAX_META_BYTES:
        raise CheckpointError(
            f"{mfile} is {mfile.stat().st_size:,} bytes; a policy's metadata is under {MAX_META_BYTES:,}"
        )
    try:
        meta = json.loads(mfile.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{mfile} is not valid JSON: {err}") from err
    except RecursionError:
        raise CheckpointError(f"{mfile} nests too deeply to be a policy's metadata") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{mfile} holds a JSON {type(meta).__name__}, expected an object of fields")
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise CheckpointError(
            f"{mfile}: format {meta.get('format')!r} version {meta.get('version')!r}, expected {FORMAT!r} {VERSION}"
        )
    return meta


def load(path: str | Path, kind: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, metadata) of a checkpoint directory, validated (and of policy ``kind`` when
    given); never unpickles anything."""
    meta = read_meta(path)
    if kind is not None and meta.get("kind") != kind:
        raise CheckpointError(f"{path}: policy kind {meta.get('kind')!r}, expected {kind!r}")
    wfile = Path(path) / WEIGHTS
    data = wfile.read_bytes()
    if hashlib.sha256(data).hexdigest() != meta.get("weights_sha256"):
        raise CheckpointError(f"{wfile} does not match its metadata (corrupted, or from another save)")
    try:
        tensors = load_file(str(wfile))
    except Exception as err:  # safetensors raises its own error types
        raise CheckpointError(f"{wfile} cannot be read: {err}") from err
    return tensors, meta


def fill(module: torch.nn.Module, tensors: dict[str, torch.Tensor], path: str | Path) -> None:
    """Load ``tensors`` into ``module`` (built from the checkpoint's description), or fail clearly."""
    try:
        module.load_state_dict(tensors)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit the network described: {err}") from err
    module.eval()
