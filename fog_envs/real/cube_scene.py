"""Geometry and MJCF of the ``RealPushCube-v0`` scene (a walled arena, a robot base, a cube, a goal patch).

World frame: metres, z up, the arena's centre at the origin. Everything the reward, the env and the play
policy need about the scene's geometry is a constant here.

* Arena: ``2 * ARENA_HALF_SIZE`` (3 m) square, 0.5 m walls of distinct colours (+x blue, -x red,
  +y cream, -y purple) with a coloured post in each corner, on a grey 0.5 m checker floor.
* Robot: a box body (0.44 × 0.30 × 0.24 m, 12 kg, bottom 2 cm above the floor) on planar joints
  ``root_x``/``root_y`` (world-frame slides) and ``root_yaw`` (hinge), each driven by a velocity actuator
  (the inner controller). A head on its front carries the ``ego`` camera (0.35 m up, tilted 20° down).
* Cube: a free 0.18 m box of 0.6 kg, orange-yellow.
* Goal: a green, non-colliding disc of radius ``GOAL_RADIUS`` at ``GOAL_CENTER``.

Rendering is set up for fast software rendering: no shadows, no multisampling, a small offscreen buffer.
"""

from __future__ import annotations

import numpy as np

ARENA_HALF_SIZE = 1.5  #: metres from the centre to the inner face of each wall
WALL_HEIGHT = 0.5
WALL_THICKNESS = 0.05
GOAL_CENTER: tuple[float, float] = (0.75, 0.75)  #: fixed goal centre (x, y), metres
GOAL_RADIUS = 0.25  #: success: the cube's centre is within this distance of GOAL_CENTER
CUBE_HALF_SIZE = 0.09  #: the cube is 0.18 m on a side
CUBE_MASS = 0.6
ROBOT_HALF_EXTENTS: tuple[float, float, float] = (0.22, 0.15, 0.12)  #: half length, width, height
ROBOT_CLEARANCE = 0.02  #: gap between the robot's bottom and the floor
ROBOT_MASS = 12.0
CAMERA_HEIGHT = 0.35
CAMERA_PITCH_DEG = 20.0  #: downward tilt of the ego camera
CAMERA_FOVY_DEG = 75.0
PHYSICS_TIMESTEP = 0.004  #: seconds per mj_step

def cube_wall_gap(cube_xy: np.ndarray) -> np.ndarray:
    """Gap (m) between the cube's face and its nearest wall, from its centre's (..., 2) x and y (the cube taken
    axis-aligned: its half size along both)."""
    return ARENA_HALF_SIZE - CUBE_HALF_SIZE - np.abs(np.asarray(cube_xy)).max(-1)


_WALL_RGBA = {"+x": "0.15 0.25 0.75 1", "-x": "0.75 0.15 0.15 1", "+y": "0.85 0.82 0.7 1", "-y": "0.45 0.2 0.6 1"}
_POST_RGBA = ("0.1 0.8 0.8 1", "0.9 0.3 0.8 1", "0.95 0.95 0.95 1", "0.1 0.1 0.1 1")


def _walls() -> str:
    h, t, z = ARENA_HALF_SIZE, WALL_THICKNESS, WALL_HEIGHT / 2
    span = h + 2 * t
    walls = {
        "+x": (h + t, 0.0, t, span),
        "-x": (-h - t, 0.0, t, span),
        "+y": (0.0, h + t, span, t),
        "-y": (0.0, -h - t, span, t),
    }
    lines = [
        f'<geom name="wall{k}" class="wall" pos="{x} {y} {z}" size="{sx} {sy} {z}" rgba="{_WALL_RGBA[k]}"/>'
        for k, (x, y, sx, sy) in walls.items()
    ]
    corners = [(h, h), (-h, h), (-h, -h), (h, -h)]
    lines += [
        f'<geom name="post{i}" class="wall" type="cylinder" pos="{x} {y} {WALL_HEIGHT * 0.7}" '
        f'size="0.12 {WALL_HEIGHT * 0.7}" rgba="{rgba}"/>'
        for i, ((x, y), rgba) in enumerate(zip(corners, _POST_RGBA))
    ]
    return "\n      ".join(lines)


def _camera_axes() -> str:
    """``xyaxes`` of a camera looking along the body's +x, pitched down by CAMERA_PITCH_DEG."""
    p = np.radians(CAMERA_PITCH_DEG)
    return f"0 -1 0 {np.sin(p):.6f} 0 {np.cos(p):.6f}"


def scene_xml(offscreen_size: int = 64) -> str:
    """The scene's MJCF; ``offscreen_size`` must be at least the largest rendered image side."""
    lx, ly, lz = ROBOT_HALF_EXTENTS
    body_z = ROBOT_CLEARANCE + lz
    c = CUBE_HALF_SIZE
    gx, gy = GOAL_CENTER
    return f"""
<mujoco model="push_cube">
  <compiler angle="radian"/>
  <option timestep="{PHYSICS_TIMESTEP}" integrator="implicitfast"/>
  <visual>
    <quality shadowsize="0" offsamples="0"/>
    <global offwidth="{offscreen_size}" offheight="{offscreen_size}"/>
    <headlight ambient="0.45 0.45 0.45" diffuse="0.4 0.4 0.4" specular="0 0 0"/>
    <map znear="0.01"/>
  </visual>
  <asset>
    <texture name="checker" type="2d" builtin="checker" width="64" height="64"
             rgb1="0.42 0.42 0.42" rgb2="0.55 0.55 0.55"/>
    <material name="floor" texture="checker" texrepeat="3 3" reflectance="0"/>
  </asset>
  <default>
    <default class="wall">
      <geom type="box" contype="2" conaffinity="2" friction="0.3"/>
    </default>
    <default class="visual">
      <geom contype="0" conaffinity="0" mass="0"/>
    </default>
  </default>
  <worldbody>
    <light name="sun" directional="true" castshadow="false" pos="0 0 4" dir="0.3 0.2 -1"
           diffuse="0.5 0.5 0.5" specular="0 0 0"/>
    <geom name="floor" type="plane" size="{ARENA_HALF_SIZE} {ARENA_HALF_SIZE} 0.75" material="floor"
          contype="1" conaffinity="1" friction="0.5"/>
    <geom name="goal" type="cylinder" pos="{gx} {gy} 0.001" size="{GOAL_RADIUS} 0.001"
          rgba="0.1 0.75 0.2 1" contype="0" conaffinity="0"/>
      {_walls()}
    <camera name="overview" pos="0 0 4.6" xyaxes="1 0 0 0 1 0" fovy="40"/>
    <body name="robot">
      <joint name="root_x" type="slide" axis="1 0 0"/>
      <joint name="root_y" type="slide" axis="0 1 0"/>
      <joint name="root_yaw" type="hinge" axis="0 0 1"/>
      <geom name="robot_body" type="box" pos="0 0 {body_z}" size="{lx} {ly} {lz}" mass="{ROBOT_MASS}"
            rgba="0.25 0.25 0.28 1" contype="2" conaffinity="2" friction="0.3"/>
      <geom name="robot_head" class="visual" type="box" pos="{lx - 0.05} 0 {CAMERA_HEIGHT - 0.01}"
            size="0.05 0.07 0.05" rgba="0.9 0.9 0.9 1"/>
      <geom name="robot_arrow" class="visual" type="box" pos="0 0 {body_z + lz + 0.001}"
            size="{lx * 0.8} 0.02 0.001" rgba="0.9 0.9 0.9 1"/>
      <camera name="ego" pos="{lx + 0.005} 0 {CAMERA_HEIGHT}" xyaxes="{_camera_axes()}" fovy="{CAMERA_FOVY_DEG}"/>
    </body>
    <body name="cube" pos="0 0 {c}">
      <freejoint name="cube_free"/>
      <geom name="cube" type="box" size="{c} {c} {c}" mass="{CUBE_MASS}" rgba="1 0.72 0.05 1"
            contype="3" conaffinity="3" friction="0.5 0.005 0.0001"/>
    </body>
  </worldbody>
  <actuator>
    <velocity name="vel_x" joint="root_x" kv="{ROBOT_MASS * 25}" forcelimited="true" forcerange="-200 200"/>
    <velocity name="vel_y" joint="root_y" kv="{ROBOT_MASS * 25}" forcelimited="true" forcerange="-200 200"/>
    <velocity name="vel_yaw" joint="root_yaw" kv="8" forcelimited="true" forcerange="-30 30"/>
  </actuator>
</mujoco>
"""
