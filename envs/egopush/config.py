"""EgoPush's typed configuration: the room, the task, the reward scales and the observations."""

from __future__ import annotations

import dataclasses

from envs.config import choice, choices, flag, integer, number, pair, scales
from envs.egopush.tasks import TASKS

DEPTH_LAYERS = ("role", "identity")
OBSERVABILITY = ("global", "fov", "fov_gated")
ROLES = ("active", "anchor", "obstacle")
KP = 4  # keypoints per object: the corners of its footprint


@dataclasses.dataclass(frozen=True)
class RewardScales:
    """Weight of each reward term (0 turns a term off; it is still computed and logged)."""

    stage: float = 1.0
    """Stage completion: ``R * max(0, 1 - t_stage / T_stage)`` (R: ``reach_reward`` or ``place_reward``)."""
    success: float = 1.0
    """1 when the whole formation holds (the episode then ends)."""
    approach: float = 0.0
    """Dense: decrease (m) of the pusher's distance to the active box this step, in the reach stage."""
    progress: float = 0.0
    """Dense: decrease (m) of the active box's distance to its target this step, in the place stage."""
    time: float = 0.0
    """-1 every step (a time penalty when scaled > 0)."""
    anchor: float = 0.0
    """Dense: minus the distance (m) the anchor moved this step. In the line and cross tasks the anchor
    is a box the robot can push, and the targets move with it: pushed against a wall, it leaves
    targets no box can reach (0 in the goal task, whose anchor is a fixed region)."""
    knock: float = 0.0
    """Minus the number of placed boxes knocked out of place this step (in place before it, not
    after). Completing a stage again after a setback pays nothing, which is all a knock-out costs
    without it."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            number(f"reward_scales.{f.name}", getattr(self, f.name))


@dataclasses.dataclass(frozen=True)
class EgoPushConfig:
    """EgoPush room, task, rewards and observations."""

    task: str = "line"
    """``goal`` (one box onto a marked region), ``line`` or ``cross`` (formations around the anchor box)."""
    n_boxes: int = 3
    """Boxes, 2 to 4 (``goal``: 1 to 4, box 0 is pushed, the rest are obstacles)."""
    observability: str = "global"
    """Teacher keypoint visibility: ``global``, ``fov`` (camera frustum and range) or ``fov_gated``."""
    arena_half: float = 2.0
    """Half the side of the square room (m)."""
    timestep: float = 0.01
    """Physics step (s)."""
    n_substeps: int = 5
    """Physics steps per control step: 5 x 10 ms = 20 Hz control."""
    episode_seconds: float = 60.0
    """Time limit (s)."""
    max_speed: float = 0.5
    """Forward speed (m/s) at action 1."""
    max_turn: float = 2.0
    """Yaw rate (rad/s) at action 1."""
    position_tolerance: float = 0.12
    """A box is placed when its centre is within this distance (m) of its target."""
    yaw_tolerance: float | None = None
    """And, if set, its yaw within this (rad) of the anchor's, modulo 90 degrees (boxes are square)."""
    reach_distance: float = 0.32
    """The reach stage ends when the pusher's centre is this close (m) to the active box's centre."""
    reach_reward: float = 1.0
    """R of a reach stage."""
    place_reward: float = 2.0
    """R of a place stage."""
    stage_seconds: float = 20.0
    """T_stage: the stage reward decays to 0 over this time in the stage."""
    camera_range: float = 3.0
    """Farthest keypoint the ``fov`` modes count as visible (m)."""
    gate_fraction: float = 0.3
    """``fov_gated``: the anchor must be within this fraction of the half-width of the image from its centre."""
    memory_seconds: float = 0.0
    """``fov`` modes: 0 shows only what is in view now; > 0 keeps showing a keypoint that left the view, for
    this long, at the world position where it was last seen (in the current robot frame, as odometry would)."""
    reward_scales: RewardScales = RewardScales()
    """Scale of each reward term."""
    cameras: tuple[str, ...] = ()
    """Student images to render: ``depth_layers`` (group of the same name) and/or ``rgb`` (group ``camera``)."""
    camera_resolution: tuple[int, int] = (64, 64)
    """(width, height) of the egocentric images."""
    nthread: int = 0
    """Physics threads for the ``cpu`` backend (0: all cores)."""
    anchor_marker: bool = False
    """Formations: a post on the anchor's top at its +y edge, the side the formation extends to. The
    anchor is a cube, so without it no image tells which of its four sides the targets are on
    (only the teachers' reference keypoints do); visual only, the physics is unchanged."""
    room_keypoints: bool = False
    """Append the room's four inner corners (x, y in the robot frame, shown flag; 12 inputs) to the
    ``privileged`` and ``critic`` groups, after everything else. They stand for the walls, which a
    depth camera sees: in the ``fov`` modes a corner is shown while it is in the camera's frustum and
    range (at a box's mid-height) and for ``memory_seconds`` after; in ``global`` mode, and in
    ``critic``, always. Off by default: the teachers in ``checkpoints/`` read no walls."""

    depth_layers: str = "role"
    """What splits ``depth_layers``: ``role`` (active, anchor, obstacle: the layers follow the task's
    state, so a layer changes when the env decides a box is placed) or ``identity`` (the anchor, then
    the other boxes in an order drawn at each episode's start and kept through it, as boxes of
    distinct colours would give; the goal task's region first, then its boxes). ``identity`` holds
    ``n_boxes`` layers (``n_boxes + 1`` in the goal task), none of which follows the task's state."""
    wheel_slip: float = 0.0
    """Each episode, each wheel's speed reading is scaled by ``1 + wheel_slip * u``, ``u`` uniform in
    [-1, 1] drawn at the episode's start: a wheel that slips or a radius that is off (0: exact)."""
    wheel_noise: float = 0.0
    """Standard deviation (m/s) of Gaussian noise added to each wheel's speed reading at every step
    (0: none)."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Refuse a value of the wrong type or out of range, naming the field and what it accepts."""
        choice("task", self.task, TASKS)
        integer(f"n_boxes (task {self.task!r})", self.n_boxes, 1 if self.task == "goal" else 2, 4)
        choice("observability", self.observability, OBSERVABILITY)
        number("arena_half", self.arena_half, 1.0)
        number("timestep", self.timestep, 0.0, open_lo=True)
        integer("n_substeps", self.n_substeps, 1)
        number("episode_seconds", self.episode_seconds, 0.0, open_lo=True)
        number("max_speed", self.max_speed, 0.0)
        number("max_turn", self.max_turn, 0.0)
        number("position_tolerance", self.position_tolerance, 0.0)
        if self.yaw_tolerance is not None:
            number("yaw_tolerance", self.yaw_tolerance, 0.0)
        number("reach_distance", self.reach_distance, 0.0)
        number("reach_reward", self.reach_reward)
        number("place_reward", self.place_reward)
        number("stage_seconds", self.stage_seconds, 0.0, open_lo=True)
        number("camera_range", self.camera_range, 0.0)
        number("gate_fraction", self.gate_fraction, 0.0)
        number("memory_seconds", self.memory_seconds, 0.0)
        scales("reward_scales", self.reward_scales, RewardScales)
        choices("cameras", self.cameras, ("depth_layers", "rgb"))
        for i, size in enumerate(pair("camera_resolution", self.camera_resolution)):
            integer(f"camera_resolution[{i}]", size, 1)
        integer("nthread", self.nthread, 0)
        flag("anchor_marker", self.anchor_marker)
        flag("room_keypoints", self.room_keypoints)
        choice("depth_layers", self.depth_layers, DEPTH_LAYERS)
        number("wheel_slip", self.wheel_slip, 0.0, 1.0)
        number("wheel_noise", self.wheel_noise, 0.0)
