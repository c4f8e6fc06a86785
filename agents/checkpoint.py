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


def load(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, metadata) of a checkpoint directory, validated; never unpickles anything."""
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
    data = wfile.read_bytes()
    if hashlib.sha256(data).hexdigest() != meta.get("weights_sha256"):
        raise CheckpointError(f"{wfile} does not match its metadata (corrupted, or from another save)")
    try:
        tensors = load_file(str(wfile))
    except Exception as err:  # safetensors raises its own error types
        raise CheckpointError(f"{wfile} cannot be read: {err}") from err
    return tensors, meta
