"""The vision students' typed configuration (validated where it is declared), and reading a saved one."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

IMAGE_GROUPS = ("depth_layers", "camera")


@dataclasses.dataclass(frozen=True)
class StudentConfig:
    """Student network."""

    memory: Literal["none", "gru", "transformer", "map", "geometric"] = "none"
    """``none`` (frame stack), ``gru``, ``transformer`` (causal, KV-cached when acting), ``map``
    (EgoPush: a top-down map of what the camera saw, moved by wheel odometry; ``distill.egopush.odometry_map``),
    or ``geometric`` (EgoPush, ``head=teacher``: the teacher's observation estimated from the camera
    and wheels by geometry, ``distill.egopush.geometry``; the head learns a correction to it)."""
    frame_stack: int = 1
    """``memory=none``: frames whose features are concatenated (1: reactive)."""
    window: int = 16
    """``memory=transformer``: frames each step attends to (itself included)."""
    layers: int = 2
    """``memory=transformer``: blocks."""
    heads: int = 4
    """``memory=transformer``: attention heads."""
    embed: int = 64
    """Image embedding size (per role for ``depth_layers``)."""
    hidden: int = 128
    """Memory width and hidden size of the action head."""
    depth_scale: float = 3.0
    """Depth images are divided by this (metres; the EgoPush camera range)."""
    map_cells: int = 48
    """``memory=map``: cells per side of the robot-centred window the student reads."""
    map_cell: float = 0.1
    """``memory=map``: cell size (m)."""
    map_tau: float = 30.0
    """``memory=map``: seconds over which a mark fades to 1/e."""
    segmentation: bool = False
    """``camera`` students (soccer): also read the env's segmentation image (what each pixel shows:
    ball, teammate, opponent, own goal, ...), one-hot per class, as input channels beside the RGB."""
    map_gate: float = 0.0
    """``memory=map``: if > 0, one more map channel marks the anchor (role 1) only while its pixels
    are centred within this fraction of the image half-width (``distill.egopush.odometry_map``; a ``fov_gated``
    teacher sees the reference only then, with ``gate_fraction`` 0.3)."""
    map_moments: bool = False
    """``memory=map``: also read, per role, where its pixels are (the mass, mean and covariance of
    the image's pixels lifted to the floor plan, in metres in the robot frame) and the same moments
    of each map channel's marks, plain and weighted toward fresh marks: precise positions that a
    strided CNN blurs, for a student whose actions need the boxes to within centimetres."""
    head: Literal["mlp", "teacher"] = "mlp"
    """Action head: ``mlp``, or ``teacher``: an MLP estimates the teacher's normalised observation
    from the student's features and the teacher's frozen network maps it to the action (the
    distiller copies the teacher's weights in; the estimate is trained with ``aux_coef``, and the
    copy only with ``DaggerConfig.teacher_head_lr``)."""
    geo_centres: Literal["top", "corners", "planes", "pixels"] = "top"
    """``memory=geometric``: where geometry places a box (``distill.egopush.geometry.GeoKeypoints``'s
    ``centres``): ``planes``, from the planes of its side faces; ``corners``, those and, where one
    face is seen, its silhouette's vertical edges; ``top``, those and, where no side face is seen
    (the box being pushed), its top face's edges; or (``pixels``) the mean of its pixels moved along
    the line of sight, as every geometric student saved before this setting existed
    (``student_config`` reads those so)."""
    geo_labels: Literal["world", "robot"] = "world"
    """``memory=geometric``: how geometry names a box's corners (``GeoKeypoints``'s ``labels``): by
    the quarter turn nearest its yaw when last seen, in the episode's start frame, so that each
    corner keeps its name (``world``), or by its yaw in the robot's frame at each step, so that a
    corner's name changes as the robot turns (``robot``, as every geometric student saved before
    this setting existed; ``student_config`` reads those so)."""

    def __post_init__(self) -> None:
        memories = ("none", "gru", "transformer", "map", "geometric")
        if self.memory not in memories:
            raise ValueError(f"memory must be one of {memories}, got {self.memory!r}")
        if self.head not in ("mlp", "teacher"):
            raise ValueError(f"head must be 'mlp' or 'teacher', got {self.head!r}")
        if self.frame_stack < 1 or self.window < 1 or self.layers < 1 or self.heads < 1:
            raise ValueError("frame_stack, window, layers and heads must be >= 1")
        for name, value, hi in (
            ("embed", self.embed, 4096),
            ("hidden", self.hidden, 8192),
            ("window", self.window, 4096),
        ):
            if not 1 <= value <= hi:
                raise ValueError(f"{name} must be in [1, {hi}], got {value}")
        if self.layers > 64 or self.heads > 64 or self.frame_stack > 64 or not 1 <= self.map_cells <= 512:
            raise ValueError("layers, heads and frame_stack must be at most 64, map_cells in [1, 512]")
        if self.memory == "map" and not 0 <= self.map_gate <= 1:
            raise ValueError(f"map_gate must be in [0, 1] (0: off), got {self.map_gate}")
        if self.memory != "map" and (self.map_moments or self.map_gate):
            raise ValueError("map_moments and map_gate need memory 'map'")
        if self.memory in ("map", "geometric") and self.frame_stack != 1:
            raise ValueError(
                f"memory {self.memory!r} reads one frame (its memory is the map or the estimate): frame_stack 1"
            )
        if self.memory == "geometric" and self.head != "teacher":
            raise ValueError(
                "memory 'geometric' estimates an EgoPush teacher's observation: it needs head 'teacher', "
                f"got {self.head!r}"
            )


def student_config(saved: dict[str, Any]) -> StudentConfig:
    """A saved student's ``StudentConfig``. A ``geometric`` student saved before ``geo_centres``
    existed read box centres from the pixel mean: so it reads them still (its weights learnt that);
    one saved before ``geo_labels`` named corners in the robot's frame."""
    if saved.get("memory") == "geometric" and "geo_centres" not in saved:
        saved = {**saved, "geo_centres": "pixels"}
    if saved.get("memory") == "geometric" and "geo_labels" not in saved:
        saved = {**saved, "geo_labels": "robot"}
    return StudentConfig(**saved)
