"""MJCF of the EgoPush room: a differential-drive robot with a front pusher, boxes, walls.

Everything moves on planar joints (x, y, yaw). Box-floor friction is joint friction loss
(Coulomb friction of mu * m * g on the slides), so nothing rests on the floor through contacts:
cheaper and as stable on both backends.
"""

from __future__ import annotations

from envs.config import flag, integer, number

ROBOT_HALF = (0.14, 0.14)  # TurtleBot3 Waffle-class footprint, 0.28 m square
ROBOT_HEIGHT = 0.18
PUSHER_HALF = (0.015, 0.17)  # flat plate across the front, a little wider than the body
BOX_HALF = 0.1  # 0.2 m cubes
BOX_MASS = 0.6
BOX_FRICTION = 0.4  # floor friction coefficient, as joint friction loss
WALL_THICK = 0.1
WALL_HEIGHT = 0.3
CAM_X = ROBOT_HALF[0] + 2 * PUSHER_HALF[0] + 0.005  # in front of the pusher
CAM_Z = 0.25
CAM_FOVY = 70.0  # degrees; square images, so the horizontal field of view is the same
BOX_RGBA = ("0.95 0.55 0.1 1", "0.2 0.45 0.95 1", "0.6 0.2 0.8 1", "0.1 0.75 0.45 1")
ANCHOR_DRAG = 3.0
GOAL_HALF = 0.2  # the marked region of egopush-goal, 0.4 m square

_SOLID = 'contype="1" conaffinity="1"'


def build_xml(
    n_boxes: int, arena_half: float, timestep: float, max_speed: float, max_turn: float, anchor_marker: bool = False
) -> str:
    """Room of ``2 arena_half`` metres square with ``n_boxes`` boxes (box 0 is the anchor). With
    ``anchor_marker``, a post on the anchor's top at its +y edge (the side the formations extend
    to) makes its yaw visible to a camera; it has no mass and touches nothing.

    Every argument is checked to be a finite number (``n_boxes`` an integer, ``anchor_marker`` a
    bool) and written as one: nothing a user typed reaches the XML as text."""
    n_boxes = integer("n_boxes", n_boxes, 1)
    arena_half = number("arena_half", arena_half, 0.0, open_lo=True)
    timestep = number("timestep", timestep, 0.0, open_lo=True)
    max_speed, max_turn = number("max_speed", max_speed, 0.0), number("max_turn", max_turn, 0.0)
    anchor_marker = flag("anchor_marker", anchor_marker)
    rx, ry = ROBOT_HALF
    h = ROBOT_HEIGHT
    px, py = PUSHER_HALF
    g = 9.81
    slide_loss = BOX_FRICTION * BOX_MASS * g
    yaw_loss = BOX_FRICTION * BOX_MASS * g * BOX_HALF * 0.6  # friction torque of a square base
    boxes = []
    for i in range(n_boxes):
        # Box 0 (the anchor of the formations) drags ANCHOR_DRAG times harder on the floor: it
        # defines the formation, and a brush of the robot should not carry it away.
        drag = ANCHOR_DRAG if i == 0 else 1.0
        marker = ""
        if i == 0 and anchor_marker:
            marker = (
                f'\n      <geom name="anchor_marker" type="box" size="0.03 0.03 0.05" pos="0 {BOX_HALF - 0.03} '
                f'{BOX_HALF + 0.05}" rgba="0.95 0.9 0.1 1" contype="0" conaffinity="0" mass="0"/>'
            )
        boxes.append(f"""
    <body name="box{i}" pos="0 0 {BOX_HALF}">
      <joint name="box{i}_x" type="slide" axis="1 0 0" frictionloss="{drag * slide_loss:.4f}" damping="0.5"/>
      <joint name="box{i}_y" type="slide" axis="0 1 0" frictionloss="{drag * slide_loss:.4f}" damping="0.5"/>
      <joint name="box{i}_yaw" type="hinge" axis="0 0 1" frictionloss="{drag * yaw_loss:.4f}" damping="0.05"/>
      <geom name="box{i}" type="box" size="{BOX_HALF} {BOX_HALF} {BOX_HALF}" mass="{BOX_MASS}"
            rgba="{BOX_RGBA[i % len(BOX_RGBA)]}" {_SOLID} friction="0.5 0.005 0.0001"/>{marker}
    </body>""")
    a = arena_half
    t = WALL_THICK / 2
    wh = WALL_HEIGHT / 2
    walls = "".join(
        f'\n    <geom name="wall_{n}" type="box" size="{sx} {sy} {wh}" pos="{x} {y} {wh}"'
        f' rgba="0.75 0.75 0.72 1" {_SOLID}/>'
        for n, sx, sy, x, y in (
            ("n", a + 2 * t, t, 0, a + t),
            ("s", a + 2 * t, t, 0, -a - t),
            ("e", t, a, a + t, 0),
            ("w", t, a, -a - t, 0),
        )
    )
    kv, kw, klat = 40.0, 3.0, 200.0
    return f"""<mujoco model="egopush_{n_boxes}">
  <compiler angle="radian"/>
  <option timestep="{timestep}" integrator="implicitfast"/>
  <visual><headlight ambient="0.45 0.45 0.45" diffuse="0.5 0.5 0.5"/></visual>
  <worldbody>
    <light name="sun" pos="0 0 5" dir="0 0 -1" directional="true" diffuse="0.5 0.5 0.5"/>
    <geom name="floor" type="plane" size="0 0 0.05" rgba="0.55 0.55 0.5 1" contype="0" conaffinity="0"/>
    <geom name="goal_region" type="box" size="{GOAL_HALF} {GOAL_HALF} 0.002" pos="0 0 0.002"
          rgba="0.1 0.8 0.2 1" contype="0" conaffinity="0"/>{walls}
    <camera name="overview" pos="0 {-1.45 * a} {1.9 * a}" xyaxes="1 0 0 0 0.8 0.6" fovy="55"/>
    <body name="robot" pos="0 0 0">
      <joint name="robot_x" type="slide" axis="1 0 0"/>
      <joint name="robot_y" type="slide" axis="0 1 0"/>
      <joint name="robot_yaw" type="hinge" axis="0 0 1"/>
      <geom name="robot_body" type="box" size="{rx} {ry} {h / 2}" pos="0 0 {h / 2 + 0.01}" mass="2.5"
            rgba="0.25 0.25 0.28 1" {_SOLID}/>
      <geom name="robot_pusher" type="box" size="{px} {py} 0.05" pos="{rx + px} 0 0.06" mass="0.2"
            rgba="0.85 0.85 0.85 1" {_SOLID}/>
      <geom name="robot_mast" type="cylinder" size="0.02 0.04" pos="{CAM_X - 0.03} 0 {CAM_Z - 0.02}" mass="0.01"
            rgba="0.2 0.2 0.2 1" contype="0" conaffinity="0"/>
      <site name="robot_drive" pos="0 0 {h / 2}"/>
      <camera name="robot_cam" pos="{CAM_X} 0 {CAM_Z}" xyaxes="0 -1 0 0.26 0 0.97" fovy="{CAM_FOVY}"/>
    </body>{"".join(boxes)}
  </worldbody>
  <actuator>
    <velocity name="robot_fwd" site="robot_drive" gear="1 0 0 0 0 0" kv="{kv}" ctrlrange="{-max_speed} {max_speed}"
              forcerange="-30 30"/>
    <velocity name="robot_turn" site="robot_drive" gear="0 0 0 0 0 1" kv="{kw}" ctrlrange="{-max_turn} {max_turn}"
              forcerange="-5 5"/>
    <!-- Wheels do not slip sideways: a stiff servo holding the lateral velocity at 0. -->
    <velocity name="robot_lat" site="robot_drive" gear="0 1 0 0 0 0" kv="{klat}" ctrlrange="0 0" forcerange="-200 200"/>
  </actuator>
</mujoco>
"""
