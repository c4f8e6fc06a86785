"""MJCF for an N-vs-N soccer pitch, generated because the number of robots is a config value.

Frames and sizes (metres): the pitch is centred on the origin, team 0 ("blue") attacks +x and
team 1 ("red") attacks -x. Walls and goals are static geoms of the world body placed at the
largest pitch; each world moves them to its own pitch size through per-world ``geom_pos``.
"""

from __future__ import annotations

from envs.config import integer, number

ROBOT_RADIUS = 0.15
ROBOT_HEIGHT = 0.18
BALL_RADIUS = 0.08
WALL_THICK = 0.1
WALL_HEIGHT = 0.3
GOAL_DEPTH = 0.4
TEAM_RGBA = ("0.15 0.35 0.95 1", "0.95 0.2 0.15 1")

# contype/conaffinity bits: floor 1, robots and walls 2, ball 1|2. Robots slide on planar
# joints, so they never touch the floor; the ball rolls on it and hits everything else.
_FLOOR = 'contype="1" conaffinity="1"'
_SOLID = 'contype="2" conaffinity="2"'
_BALL = 'contype="3" conaffinity="3"'


def robot_name(team: int, index: int) -> str:
    return f"{('blue', 'red')[team]}{index}"


def _robot(name: str, rgba: str, camera_fovy: float = 80.0) -> str:
    r, h = ROBOT_RADIUS, ROBOT_HEIGHT
    return f"""
    <body name="{name}" pos="0 0 0">
      <joint name="{name}_x" type="slide" axis="1 0 0" damping="0"/>
      <joint name="{name}_y" type="slide" axis="0 1 0" damping="0"/>
      <joint name="{name}_yaw" type="hinge" axis="0 0 1" damping="0"/>
      <geom name="{name}_body" type="cylinder" size="{r} {h / 2}" pos="0 0 {h / 2 + 0.01}"
            mass="3" rgba="{rgba}" {_SOLID} friction="0.4 0.005 0.0001"/>
      <geom name="{name}_nose" type="box" size="0.03 0.05 0.02" pos="{r - 0.07} 0 {h + 0.03}"
            mass="0.01" rgba="1 1 1 1" contype="0" conaffinity="0"/>
      <site name="{name}_drive" pos="0 0 {h / 2}"/>
      <camera name="{name}_cam" pos="{r + 0.005} 0 {h + 0.03}" xyaxes="0 -1 0 0 0 1" fovy="{camera_fovy}"/>
    </body>"""


def _actuators(name: str, max_speed: float, max_turn: float) -> str:
    # Velocity servos on the drive site: gears are in the site's (the robot's) frame, so the
    # commands are body-frame forward, lateral and yaw velocities, held across substeps.
    kv, kw = 60.0, 3.0
    return f"""
    <velocity name="{name}_fwd" site="{name}_drive" gear="1 0 0 0 0 0" kv="{kv}"
              ctrlrange="{-max_speed} {max_speed}" forcerange="-40 40"/>
    <velocity name="{name}_lat" site="{name}_drive" gear="0 1 0 0 0 0" kv="{kv}"
              ctrlrange="{-max_speed} {max_speed}" forcerange="-40 40"/>
    <velocity name="{name}_turn" site="{name}_drive" gear="0 0 0 0 0 1" kv="{kw}"
              ctrlrange="{-max_turn} {max_turn}" forcerange="-4 4"/>"""


def wall_geoms(goal_half_width: float) -> list[tuple[str, str]]:
    """(name, kind) of every geom that moves with the pitch size; kind says which extent."""
    del goal_half_width
    names = [("wall_top", "side+"), ("wall_bottom", "side-")]
    for end, sign in (("east", "+"), ("west", "-")):
        names += [
            (f"wall_{end}_upper", f"end{sign}"),
            (f"wall_{end}_lower", f"end{sign}"),
            (f"goal_{end}_back", f"goalback{sign}"),
            (f"goal_{end}_upper", f"goalside{sign}"),
            (f"goal_{end}_lower", f"goalside{sign}"),
            (f"goal_{end}_mark", f"goalmark{sign}"),
        ]
    return names


def build_xml(
    team_size: int,
    half_length: float,
    half_width: float,
    goal_half_width: float,
    timestep: float,
    max_speed: float,
    max_turn: float,
    camera_fovy: float = 80.0,
) -> str:
    """MJCF of the pitch at its largest size; worlds shrink it through ``geom_pos``.

    Every argument is checked to be a finite number (``team_size`` an integer) and written as one:
    nothing a user typed reaches the XML as text."""
    team_size = integer("team_size", team_size, 1)
    half_length, half_width, goal_half_width = (
        number("half_length", half_length, 0.0, open_lo=True),
        number("half_width", half_width, 0.0, open_lo=True),
        number("goal_half_width", goal_half_width, 0.0, open_lo=True),
    )
    timestep = number("timestep", timestep, 0.0, open_lo=True)
    max_speed, max_turn = number("max_speed", max_speed, 0.0), number("max_turn", max_turn, 0.0)
    camera_fovy = number("camera_fovy", camera_fovy, 0.0, 180.0, open_lo=True)
    t, hgt = WALL_THICK / 2, WALL_HEIGHT / 2
    reach = half_length + GOAL_DEPTH + 0.2  # side walls span the largest pitch and its goals
    end_reach = half_width + 0.2
    seg = (end_reach - goal_half_width) / 2  # half-length of an end-wall segment beside a goal
    seg_c = goal_half_width + seg
    walls = [
        f'<geom name="wall_top" type="box" size="{reach} {t} {hgt}" pos="0 {half_width + t} {hgt}"'
        f' rgba="0.8 0.8 0.8 1" {_SOLID}/>',
        f'<geom name="wall_bottom" type="box" size="{reach} {t} {hgt}"'
        f' pos="0 {-half_width - t} {hgt}" rgba="0.8 0.8 0.8 1" {_SOLID}/>',
    ]
    for end, s in (("east", 1), ("west", -1)):
        x = s * (half_length + t)
        gx = s * (half_length + GOAL_DEPTH + t)
        rgba = TEAM_RGBA[1] if s > 0 else TEAM_RGBA[0]  # the goal a team defends wears its colour
        walls += [
            f'<geom name="wall_{end}_upper" type="box" size="{t} {seg} {hgt}" pos="{x} {seg_c} {hgt}"'
            f' rgba="0.8 0.8 0.8 1" {_SOLID}/>',
            f'<geom name="wall_{end}_lower" type="box" size="{t} {seg} {hgt}"'
            f' pos="{x} {-seg_c} {hgt}" rgba="0.8 0.8 0.8 1" {_SOLID}/>',
            f'<geom name="goal_{end}_back" type="box" size="{t} {goal_half_width + 2 * t} {hgt}"'
            f' pos="{gx} 0 {hgt}" rgba="{rgba}" {_SOLID}/>',
            f'<geom name="goal_{end}_upper" type="box" size="{GOAL_DEPTH / 2} {t} {hgt}"'
            f' pos="{s * (half_length + GOAL_DEPTH / 2)} {goal_half_width + t} {hgt}"'
            f' rgba="{rgba}" {_SOLID}/>',
            f'<geom name="goal_{end}_lower" type="box" size="{GOAL_DEPTH / 2} {t} {hgt}"'
            f' pos="{s * (half_length + GOAL_DEPTH / 2)} {-goal_half_width - t} {hgt}"'
            f' rgba="{rgba}" {_SOLID}/>',
            f'<geom name="goal_{end}_mark" type="box" size="{GOAL_DEPTH / 2} {goal_half_width} 0.002"'
            f' pos="{s * (half_length + GOAL_DEPTH / 2)} 0 0.002" rgba="{rgba}"'
            ' contype="0" conaffinity="0"/>',
        ]
    robots, acts = [], []
    for team in (0, 1):
        for i in range(team_size):
            name = robot_name(team, i)
            robots.append(_robot(name, TEAM_RGBA[team], camera_fovy))
            acts.append(_actuators(name, max_speed, max_turn))
    walls_xml = "\n    ".join(walls)
    return f"""<mujoco model="soccer_{team_size}v{team_size}">
  <compiler angle="radian"/>
  <option timestep="{timestep}" integrator="implicitfast"/>
  <visual><headlight ambient="0.45 0.45 0.45" diffuse="0.5 0.5 0.5"/></visual>
  <worldbody>
    <light name="sun" pos="0 0 6" dir="0 0 -1" directional="true" diffuse="0.5 0.5 0.5"/>
    <geom name="floor" type="plane" size="0 0 0.05" rgba="0.25 0.55 0.25 1" {_FLOOR}/>
    <geom name="centre_line" type="box" size="0.015 {half_width} 0.001" pos="0 0 0.001" rgba="1 1 1 1"
          contype="0" conaffinity="0"/>
    {walls_xml}
    <camera name="overview" pos="0 -{1.2 * half_width + 0.8} {1.9 * half_length}"
            xyaxes="1 0 0 0 0.85 0.53" fovy="55"/>
    <body name="ball" pos="0 0 {BALL_RADIUS}">
      <freejoint name="ball"/>
      <geom name="ball" type="sphere" size="{BALL_RADIUS}" mass="0.2" rgba="1 0.85 0.1 1"
            {_BALL} friction="0.5 0.01 0.001" condim="4"/>
    </body>
    {"".join(robots)}
  </worldbody>
  <actuator>{"".join(acts)}
  </actuator>
</mujoco>
"""
