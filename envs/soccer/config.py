"""Soccer's typed configuration: the pitch, the teams, the reward scales and the observations."""

from __future__ import annotations

import dataclasses

from envs.config import choice, choices, integer, number, pair, scales

# Segmentation classes (team-relative), the ``segmentation`` group's values.
SEG_CLASSES = ("background", "floor", "wall", "ball", "teammate", "opponent", "own_goal", "opponent_goal", "self")


@dataclasses.dataclass(frozen=True)
class RewardScales:
    """Weight of each reward term; 0 turns a term off (it is still computed and logged)."""

    goal: float = 1.0
    """+1 to every player of the scoring team, -1 to the other team."""
    vel_to_ball: float = 0.0
    """The player's velocity toward the ball, m/s (per player)."""
    ball_vel_to_goal: float = 0.0
    """The ball's velocity toward the opponent goal, m/s (shared by a team)."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            number(f"reward_scales.{f.name}", getattr(self, f.name))


@dataclasses.dataclass(frozen=True)
class SoccerConfig:
    """Soccer world, rules and observations."""

    team_size: int = 1
    """Players per team, 1 to 4."""
    pitch_length: tuple[float, float] = (4.0, 6.0)
    """Range of the pitch length (m) sampled per world at each episode."""
    pitch_width: tuple[float, float] = (3.0, 4.0)
    """Range of the pitch width (m) sampled per world at each episode."""
    goal_width: float = 1.2
    """Goal mouth width (m)."""
    timestep: float = 0.01
    """Physics step (s)."""
    n_substeps: int = 4
    """Physics steps per control step: 4 x 10 ms = 25 Hz control."""
    episode_seconds: float = 20.0
    """Time limit (s); the episode is truncated there."""
    on_goal: str = "terminate"
    """``terminate``: a goal ends the episode; ``kickoff``: play restarts from kick-off."""
    max_speed: float = 1.5
    """Top forward and lateral speed (m/s) at action 1."""
    max_turn: float = 4.0
    """Top yaw rate (rad/s) at action 1."""
    reward_scales: RewardScales = RewardScales()
    """Scale of each reward term."""
    cameras: tuple[str, ...] = ()
    """Egocentric modalities to render: any of ``rgb`` (group ``camera``), ``depth``, ``segmentation``."""
    camera_resolution: tuple[int, int] = (64, 64)
    """(width, height) of each egocentric image."""
    camera_fovy: float = 80.0
    """Vertical field of view of the egocentric cameras (degrees; with square images also the
    horizontal one). A wider lens keeps the ball in view longer, at fewer pixels per degree."""
    observability: str = "global"
    """What the ``privileged`` group shows of the ball and the other robots. ``global``: where they
    are now. ``fov``: the same only while some of the object is inside this robot's camera
    frustum (occlusion ignored; a robot counts as a ball of its radius); out of view, where it was
    last seen (at kick-off, where it started) with zero velocity. ``fov`` appends one in-view flag
    per object (ball, then the others in the usual order), so a ``global`` teacher warm-starts it
    (``--init-from``)."""
    nthread: int = 0
    """Physics threads for the ``cpu`` backend (0: all cores)."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Refuse a value of the wrong type or out of range, naming the field and what it accepts."""
        integer("team_size", self.team_size, 1, 4)
        for key in ("pitch_length", "pitch_width"):
            lo, hi = pair(key, getattr(self, key))
            lo, hi = number(f"{key}[0]", lo, 0.0, open_lo=True), number(f"{key}[1]", hi)
            if not lo <= hi:
                raise ValueError(f"{key} must be (low, high) with 0 < low <= high, got {(lo, hi)}")
        number("goal_width", self.goal_width, 0.0, open_lo=True)
        if self.goal_width >= self.pitch_width[0]:
            raise ValueError(f"goal_width {self.goal_width} must be below the narrowest pitch {self.pitch_width[0]}")
        number("timestep", self.timestep, 0.0, open_lo=True)
        integer("n_substeps", self.n_substeps, 1)
        number("episode_seconds", self.episode_seconds, 0.0, open_lo=True)
        choice("on_goal", self.on_goal, ("terminate", "kickoff"))
        number("max_speed", self.max_speed, 0.0)
        number("max_turn", self.max_turn, 0.0)
        scales("reward_scales", self.reward_scales, RewardScales)
        choices("cameras", self.cameras, ("rgb", "depth", "segmentation"))
        for i, size in enumerate(pair("camera_resolution", self.camera_resolution)):
            integer(f"camera_resolution[{i}]", size, 1)
        if not 0 < number("camera_fovy", self.camera_fovy) < 180:
            raise ValueError(f"camera_fovy must be in (0, 180) degrees, got {self.camera_fovy}")
        choice("observability", self.observability, ("global", "fov"))
        integer("nthread", self.nthread, 0)
