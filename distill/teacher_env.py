"""The teacher a student learns from, and the env the student sees: the teacher's checkpoint, the
cameras its student needs, and what a student knows of the robot's geometry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import envs
from agents.actor import GaussianActor
from agents.checkpoint import CheckpointError
from distill.student_config import StudentConfig


def load_teacher(path: str | Path | None, env_name: str | None = None) -> tuple[GaussianActor, dict[str, Any]]:
    """The teacher actor and its checkpoint metadata; fails loudly without one, or when it was
    trained on another env than ``env_name``."""
    if path is None:
        raise ValueError("distillation needs a teacher: pass a teacher checkpoint directory (--teacher PATH)")
    if not Path(path).exists():
        raise ValueError(f"teacher checkpoint {path} does not exist")
    teacher, meta = GaussianActor.load(path)
    if env_name is not None and meta["env"] != env_name:
        raise CheckpointError(f"teacher {path} was trained on {meta['env']!r}, not {env_name!r}")
    return teacher, meta


def student_env_overrides(meta: dict[str, Any], segmentation: bool = False) -> dict[str, Any]:
    """Env config for distilling from a teacher with checkpoint metadata ``meta``: the teacher's
    world, observability and reward scales (DAgger ignores rewards; RL fine-tuning uses the
    teacher's shaping), and the student's camera (with ``segmentation``, the segmentation image
    beside the RGB one)."""
    cfg = {k: v for k, v in meta["env_config"].items() if k not in ("cameras", "nthread")}
    cfg["cameras"] = ("depth_layers",) if meta["env"].startswith("egopush") else ("rgb",)
    if segmentation:
        cfg["cameras"] += ("segmentation",)
    return cfg


def segmentation_classes(env: Any, student_cfg: StudentConfig) -> int:
    """Classes of the env's segmentation image for a ``segmentation`` student (0 otherwise)."""
    if not student_cfg.segmentation:
        return 0
    seg = env.observation_spaces.get("segmentation")
    if seg is None:  # (an image group other than RGB is refused by the Student itself)
        raise ValueError(
            "--student.segmentation needs the env's segmentation image "
            "(make the env with student_env_overrides(meta, segmentation=True))"
        )
    return int(seg.high.max()) + 1


def student_geometry(env: Any, student_cfg: StudentConfig) -> dict[str, Any] | None:
    """What a ``map`` or ``geometric`` student knows of the robot (and task) geometry, from the env."""
    if student_cfg.memory == "map":
        if not hasattr(env, "camera_geometry"):
            raise ValueError(f"memory 'map' needs an env with a camera geometry (EgoPush), not {env.name!r}")
        return env.camera_geometry()
    if student_cfg.memory == "geometric":
        if not hasattr(env, "keypoint_geometry") or not getattr(env.cfg, "anchor_marker", False):
            raise ValueError(
                "memory 'geometric' needs an EgoPush env made with the anchor's marker (its quarter turn): "
                "--env-overrides '{\"anchor_marker\": true}'"
            )
        return env.keypoint_geometry()
    return None


def make_distill_env(
    teacher_path: str | Path,
    num_envs: int,
    backend: str = "cpu",
    device: str | None = None,
    segmentation: bool = False,
    **extra: Any,
) -> Any:
    """The teacher's env, rendering the student's camera (and with ``segmentation`` the
    segmentation image; ``extra`` overrides its config). Distillation reads no final frames, so a
    step renders once, after its resets (``final_cameras`` off)."""
    _, meta = load_teacher(teacher_path)
    over = {**student_env_overrides(meta, segmentation), **extra}
    env = envs.make(meta["env"], num_envs=num_envs, backend=backend, device=device, **over)
    env.final_cameras = False
    return env
