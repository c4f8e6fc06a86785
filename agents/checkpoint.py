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
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

FORMAT = "egoteach-policy"
VERSION = 1
WEIGHTS = "policy.safetensors"
META = "policy.json"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing files, another format, or weights that do not fit."""


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
    try:
        meta = json.loads(mfile.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{mfile} is not valid JSON: {err}") from err
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
