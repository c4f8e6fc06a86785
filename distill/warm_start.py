"""Starting a student from another student's weights: the whole student (``--init-from``, the same
network), or only its image encoder and proprio normaliser (``--init-encoder-from``, any memory and head)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from agents.checkpoint import CheckpointError
from distill.students import Student, StudentConfig

ENCODER = ("encoder.", "proprio_norm.")
"""What ``encoder_only`` copies: the per-frame image encoder and the proprio normaliser."""


def _source(path: Path, flag: str, env_name: str) -> tuple[Student, dict[str, Any]]:
    """The student at ``path`` and its metadata, refused by ``flag`` if it is not of ``env_name``."""
    try:
        start, meta = Student.load(path)
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{flag}: {err}") from None
    if meta["env"] != env_name:
        raise ValueError(f"{flag}: {path} is a student of {meta['env']!r}, not of {env_name!r}")
    return start, meta


def whole_student(student: Student, path: Path, student_cfg: StudentConfig, env_name: str) -> None:
    """Load the student at ``path`` (of ``env_name``, with the network ``student_cfg``, reading the same
    image) into ``student``. An RGB student may gain the segmentation channels: their input weights
    start at zero, so the new student acts exactly as the old one until training gives them weight."""
    start, meta = _source(path, "init_from", env_name)
    want, have = dataclasses.asdict(student_cfg), dataclasses.asdict(start.cfg)  # older: defaults filled
    add_seg = want["segmentation"] and not have.get("segmentation", False)
    if add_seg:
        have["segmentation"] = True
    differ = sorted(k for k in want if want[k] != have.get(k))
    if differ:
        got = ", ".join(f"{k} {have.get(k)!r} (asked {want[k]!r})" for k in differ)
        raise ValueError(f"init_from: {path} has another student network: {got}")
    if tuple(meta["image_shape"]) != tuple(student.image_shape) or meta["image_group"] != student.image_group:
        raise ValueError(
            f"init_from: {path} reads {meta['image_group']} {meta['image_shape']}, "
            f"this env renders {student.image_group} {list(student.image_shape)}"
        )
    state = start.state_dict()
    if add_seg:
        key = "encoder.conv.0.weight"
        w = torch.zeros_like(student.state_dict()[key])
        w[:, : state[key].shape[1]] = state[key]
        state[key] = w
    student.load_state_dict(state)


def encoder_only(student: Student, path: Path, env_name: str) -> None:
    """Copy the image encoder and proprio normaliser of the student at ``path`` (same env, image and
    embedding size; any memory and head) into ``student``; its memory and head stay as they are."""
    start, meta = _source(path, "init_encoder_from", env_name)
    mine = student.state_dict()
    parts = {k: v for k, v in start.state_dict().items() if k.startswith(ENCODER)}
    wrong = sorted(k for k, v in parts.items() if k not in mine or mine[k].shape != v.shape)
    if meta["image_group"] != student.image_group or wrong or set(parts) != {k for k in mine if k.startswith(ENCODER)}:
        raise ValueError(
            f"init_encoder_from: {path}'s encoder ({meta['image_group']} {meta['image_shape']}, embed "
            f"{start.cfg.embed}, segmentation {start.cfg.segmentation}) does not fit this student's "
            f"({student.image_group} {list(student.image_shape)}, embed {student.cfg.embed}, "
            f"segmentation {student.cfg.segmentation})"
        )
    student.load_state_dict(parts, strict=False)
