"""The robot finder: where the ``RealPushCube-v0`` robot is, from what its ego camera sees of the arena.

The state probe reads the robot's position 40 mm off (median) in the open and 265 mm off (p90 838 mm) within 0.2 m
of a wall, where the camera sees little but the wall (README item 34); the cube is placed with that reading, so
both go wrong where the agents spend much of their time. The arena needs no learning to be recognised: its four
walls have distinct colours, the floor is a grey 0.5 m checker of two shades, beyond the walls the renderer draws
black, and the camera's pose on the robot is known. So:

* :func:`pixel_labels` names what each pixel shows by its colour (a light or a dark floor square, one of the four
  walls, beyond the walls, or something to ignore: the corner posts, the cube; the goal counts as floor), by its
  chromaticity's nearest prototype and its brightness (checked against MuJoCo's segmentation rendering in the tests);
* :func:`expected_labels` casts each pixel's ray from a hypothesised robot pose (x, y, yaw) into the arena (its
  checker floor, its walls' inner faces up to their height, the renderer's near clipping) and names what it meets;
* :func:`fit_pose` searches the poses around a prior whose expected labels agree best with the frame's (a share of
  the pixels not ignored, less a small cost per metre and per radian away from the prior, which decides where the
  frame does not: along a lone wall, or facing a wall too near to be drawn), coarse to fine; :func:`find_robot`
  searches the whole arena first where there is no prior (an episode's first frame);
* :class:`RobotTrack` carries the pose over an episode: each frame's search starts from the state model's one-step
  prediction of the pose found the step before, and falls back to a search of the whole arena where the frame
  agrees with no pose near it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from fog_envs.real.cube_scene import ARENA_HALF_SIZE, WALL_HEIGHT
from fog_envs.wm.cube_finder import CubeFinderConfig, pixel_rays

FLOOR, WALL_PX, WALL_MX, WALL_PY, WALL_MY, BEYOND, FLOOR_LIGHT, FLOOR_DARK = range(8)
"""what a pixel shows: the floor (a square of its checker not told apart, or the goal patch), the wall at +x, −x,
+y, −y, beyond the walls, a light or a dark square of the floor's 0.5 m checker"""
IGNORE = -1
"""a pixel that says nothing about the robot's pose: a corner post, the cube"""

_PROTOTYPES = (
    # chromaticity r, g, b (each / their sum) of each thing the camera sees, and what it counts as
    ((1 / 3, 1 / 3, 1 / 3), FLOOR),  # grey checker floor (its squares and the white and black posts: see pixel_labels)
    ((0.09, 0.72, 0.19), FLOOR),  # the green goal patch lies on the floor
    ((0.13, 0.22, 0.65), WALL_PX),  # blue
    ((0.71, 0.14, 0.14), WALL_MX),  # red
    ((0.36, 0.35, 0.30), WALL_PY),  # cream
    ((0.36, 0.16, 0.48), WALL_MY),  # purple
    ((0.06, 0.47, 0.47), IGNORE),  # cyan post
    ((0.45, 0.15, 0.40), IGNORE),  # magenta post
    ((0.56, 0.41, 0.03), IGNORE),  # orange-yellow cube
)


_AGREE = np.eye(8, dtype=bool)
"""[observed, expected]: the labels agree (a floor pixel whose square is not told apart agrees with either square)"""
_AGREE[FLOOR, [FLOOR_LIGHT, FLOOR_DARK]] = True


@dataclass(frozen=True)
class RobotFinderConfig:
    """The arena's geometry (defaults: ``fog_envs.real.cube_scene``), the ego camera's (``camera``, the cube finder's
    config holds it), the colour rule and the search."""

    camera: CubeFinderConfig = field(default_factory=CubeFinderConfig)
    arena_half_size: float = ARENA_HALF_SIZE
    """metres from the arena's centre to each wall's inner face"""
    wall_height: float = WALL_HEIGHT
    near_clip: float = 0.0634
    """the renderer's near clipping distance along the camera's axis (m; the scene's ``znear`` 0.01 × MuJoCo's model
    extent 6.34): a wall nearer than this is not drawn, and the camera sees past it (black)"""
    background_max: int = 8
    """a pixel whose channels are all at most this (0–255) shows what lies beyond the walls (black)"""
    floor_brightness: tuple[int, int] = (100, 146)
    """a grey pixel is floor within this brightness range; outside it the white or black corner post (ignored)"""
    checker: tuple[int, int] = (114, 132)
    """a floor pixel at most the first brightness is a dark square, at least the second a light one (107 and 140 as
    rendered; far away the renderer blends them), in between either"""
    checker_size: float = 0.5
    """the floor's checker squares (m); the square whose corner is the arena's (−x, −y) corner is light"""
    max_chroma_distance: float = 0.08
    """a pixel farther than this from every prototype's chromaticity is ignored"""
    prior_cost: tuple[float, float] = (0.02, 0.02)
    """score lost per metre and per radian away from the prior (the score is a share of pixels, 0–1)"""
    radius: float = 0.15
    """the first round searches the prior's position ± this (m) ..."""
    yaw_radius_deg: float = 8.0
    """... and its yaw ± this"""
    min_score: float = 0.9
    """below this share of agreeing pixels the search around a prior is not trusted: :class:`RobotTrack` searches
    the whole arena"""

    def __post_init__(self) -> None:
        if not self.arena_half_size > 0 or not self.wall_height > 0:
            raise ValueError(f"RobotFinderConfig: arena_half_size and wall_height must be > 0, got "
                             f"{self.arena_half_size}, {self.wall_height}")
        lo, hi = self.floor_brightness
        if not 0 <= lo < hi:
            raise ValueError(f"RobotFinderConfig: floor_brightness must be (low, high) with 0 <= low < high, got "
                             f"{self.floor_brightness}")
        if not self.checker[0] < self.checker[1] or not self.checker_size > 0 or not self.near_clip >= 0:
            raise ValueError(f"RobotFinderConfig: checker must be (dark, light) with dark < light, checker_size > 0 "
                             f"and near_clip >= 0, got {self.checker}, {self.checker_size}, {self.near_clip}")
        if not self.max_chroma_distance > 0:
            raise ValueError(f"RobotFinderConfig: max_chroma_distance must be > 0, got {self.max_chroma_distance}")
        if min(self.prior_cost) < 0:
            raise ValueError(f"RobotFinderConfig: prior_cost must be >= 0, got {self.prior_cost}")
        if not self.radius > 0 or not self.yaw_radius_deg > 0:
            raise ValueError(f"RobotFinderConfig: radius and yaw_radius_deg must be > 0, got {self.radius}, "
                             f"{self.yaw_radius_deg}")
        if not 0 <= self.min_score <= 1:
            raise ValueError(f"RobotFinderConfig: min_score must be in [0, 1], got {self.min_score}")


def pixel_labels(frames: torch.Tensor | np.ndarray, config: RobotFinderConfig = RobotFinderConfig()) -> np.ndarray:
    """(N, S, S) int8: what each pixel of uint8 frames (N, S, S, 3) shows (``FLOOR`` … ``BEYOND``, or ``IGNORE``)."""
    arr = frames.cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    size = config.camera.image_size
    if arr.ndim != 4 or arr.shape[1:] != (size, size, 3):
        raise ValueError(f"robot finder: frames must be (N, {size}, {size}, 3) uint8 RGB, got shape {arr.shape}")
    rgb = arr.astype(np.float32)
    total = rgb.sum(axis=-1, keepdims=True)
    chroma = rgb / np.maximum(total, 1.0)
    protos = np.array([p for p, _ in _PROTOTYPES], dtype=np.float32)
    dist = np.linalg.norm(chroma[..., None, :] - protos, axis=-1)
    nearest = dist.argmin(axis=-1)
    labels = np.array([lab for _, lab in _PROTOTYPES], dtype=np.int8)[nearest]
    labels[dist.min(axis=-1) > config.max_chroma_distance] = IGNORE
    lo, hi = config.floor_brightness
    grey = nearest == 0
    bright = total[..., 0] / 3.0
    labels[grey & ((bright < lo) | (bright > hi))] = IGNORE
    floor = grey & (bright >= lo) & (bright <= hi)
    labels[floor & (bright <= config.checker[0])] = FLOOR_DARK
    labels[floor & (bright >= config.checker[1])] = FLOOR_LIGHT
    labels[rgb.max(axis=-1) <= config.background_max] = BEYOND
    return labels


def expected_labels(poses: np.ndarray, rays: np.ndarray, config: RobotFinderConfig = RobotFinderConfig()) -> np.ndarray:
    """(K, P) int8: what the camera of a robot at each pose (K, 3) = (x, y, yaw) sees along each body-frame ray
    (P, 3) (:func:`fog_envs.wm.cube_finder.pixel_rays`): the floor's light or dark square, the wall whose inner
    face the ray meets below its top, or beyond (over the walls, or through a wall nearer than the renderer's near
    clipping distance; the rays' depths along the camera's axis are their parameters: the axis component is −1).
    The posts and the cube are not drawn; a camera
    outside the arena sees ``BEYOND`` everywhere. Poses that share a yaw are cast together (a search's grid)."""
    poses = np.asarray(poses, dtype=np.float64)
    rays = np.asarray(rays, dtype=np.float64)
    out = np.empty((len(poses), len(rays)), dtype=np.int8)
    yaws, which = np.unique(poses[:, 2], return_inverse=True)
    for j, yaw in enumerate(yaws):
        rows = np.flatnonzero(which.ravel() == j)
        out[rows] = _cast(poses[rows, :2], float(yaw), rays, config)
    return out


def _cast(xy: np.ndarray, yaw: float, rays: np.ndarray, config: RobotFinderConfig) -> np.ndarray:
    """:func:`expected_labels` of robots at positions ``xy`` (M, 2) that share one ``yaw``."""
    cam, h = config.camera, config.arena_half_size
    c, s = np.cos(yaw), np.sin(yaw)
    dx, dy, dz = c * rays[:, 0] - s * rays[:, 1], s * rays[:, 0] + c * rays[:, 1], rays[:, 2]
    tiny = 1e-12
    inv_x = 1.0 / np.where(np.abs(dx) < tiny, tiny, dx)
    inv_y = 1.0 / np.where(np.abs(dy) < tiny, tiny, dy)
    t_floor = np.where(dz < 0, -cam.camera_height / np.where(dz < 0, dz, -1.0), np.inf)
    reach = np.where(np.isfinite(t_floor), t_floor, 0.0)  # the floor's hit point, from the camera
    ox = (xy[:, 0:1] + c * cam.camera_forward).astype(np.float32)
    oy = (xy[:, 1:2] + s * cam.camera_forward).astype(np.float32)
    f32 = lambda a: a.astype(np.float32)  # noqa: E731
    tx = (f32(np.where(dx > 0, h, -h)) - ox) * f32(inv_x)
    ty = (f32(np.where(dy > 0, h, -h)) - oy) * f32(inv_y)
    tx[:, np.abs(dx) < tiny] = np.inf  # a ray parallel to a pair of walls never meets them
    ty[:, np.abs(dy) < tiny] = np.inf
    t_wall = np.minimum(tx, ty)
    wall = np.where(tx < ty, np.where(dx > 0, WALL_PX, WALL_MX).astype(np.int8),
                    np.where(dy > 0, WALL_PY, WALL_MY).astype(np.int8))
    above = (cam.camera_height + t_wall * f32(dz) > config.wall_height) | (t_wall < config.near_clip)
    ix = np.floor((ox + h) / config.checker_size + f32(reach * dx / config.checker_size))
    iy = np.floor((oy + h) / config.checker_size + f32(reach * dy / config.checker_size))
    dark = (ix + iy).astype(np.int32) & 1
    out = np.where(f32(t_floor) <= t_wall, np.where(dark == 1, FLOOR_DARK, FLOOR_LIGHT).astype(np.int8),
                   np.where(above, np.int8(BEYOND), wall))
    outside = (np.abs(ox) >= h) | (np.abs(oy) >= h)
    out[np.broadcast_to(outside, out.shape)] = BEYOND
    return out


def _scores(labels: np.ndarray, poses: np.ndarray, rays: np.ndarray, prior: np.ndarray,
            config: RobotFinderConfig, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """``(score, agreement)`` (K,) of poses (K, 3) against observed labels (P,) along ``rays`` (P, 3): the share of
    the pixels not ignored whose expected label agrees, and that less the cost of the distance from ``prior``."""
    keep = labels != IGNORE
    obs, rays = labels[keep], rays[keep]
    agree = np.zeros(len(poses))
    if len(obs):
        for i in range(0, len(poses), chunk):
            agree[i:i + chunk] = _AGREE[obs, expected_labels(poses[i:i + chunk], rays, config)].mean(axis=1)
    d_pos = np.linalg.norm(poses[:, :2] - prior[:2], axis=1)
    d_yaw = np.abs((poses[:, 2] - prior[2] + np.pi) % (2 * np.pi) - np.pi)
    return agree - config.prior_cost[0] * d_pos - config.prior_cost[1] * d_yaw, agree


def _grid_rays(config: RobotFinderConfig, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """``((rows, cols), rays (P, 3))``: every ``stride``-th pixel's indices and its body-frame ray."""
    size = config.camera.image_size
    vv, uu = np.mgrid[0:size:stride, 0:size:stride] + 0.5
    return (vv.astype(int), uu.astype(int)), pixel_rays(uu.ravel(), vv.ravel(), config.camera)


def fit_pose(labels: np.ndarray, prior: np.ndarray, config: RobotFinderConfig = RobotFinderConfig(),
             radius: float | None = None, yaw_radius_deg: float | None = None) -> tuple[np.ndarray, float]:
    """``(pose (3,), agreement)``: the robot's pose (x, y, yaw) whose expected labels agree best with one frame's
    ``labels`` (S, S), less the prior's cost, searched around ``prior`` (x, y, yaw) in three rounds: the position ±
    ``radius`` (default ``config.radius``) in 5 cm steps and the yaw ± ``yaw_radius_deg`` in 4° (every fourth pixel),
    then ±4.5 cm in 1.5 cm and ±6° in 2° (every other pixel), then ±1 cm in 5 mm and ±1.5° in 0.75° (every other
    pixel); ``agreement`` is the share of the pixels not ignored that the pose explains."""
    n0 = max(int(round((config.radius if radius is None else radius) / 0.05)), 1)
    y0 = max(int(round((config.yaw_radius_deg if yaw_radius_deg is None else yaw_radius_deg) / 4.0)), 1)
    prior = np.asarray(prior, dtype=np.float64)
    return _search(labels, prior, prior, ((0.05, n0, np.radians(4.0), y0, 4),) + _FINE, config)


_FINE = ((0.015, 3, np.radians(2.0), 3, 2), (0.005, 2, np.radians(0.75), 2, 2))
"""the refining rounds: (position step m, steps each side, yaw step rad, steps each side, pixel stride)"""


def _search(labels: np.ndarray, start: np.ndarray, prior: np.ndarray, rounds: tuple, config: RobotFinderConfig,
            ) -> tuple[np.ndarray, float]:
    """Grid rounds (see :data:`_FINE`) from ``start``, each centred on the best pose of the round before; the yaw
    found wrapped to [−π, π)."""
    best, agreement = np.asarray(start, dtype=np.float64), 0.0
    for step, n, yaw_step, n_yaw, stride in rounds:
        (rows, cols), rays = _grid_rays(config, stride)
        offsets = np.arange(-n, n + 1) * step
        yaws = np.arange(-n_yaw, n_yaw + 1) * yaw_step
        grid = np.meshgrid(best[0] + offsets, best[1] + offsets, best[2] + yaws, indexing="ij")
        poses = np.stack([g.ravel() for g in grid], axis=1)
        score, agree = _scores(labels[rows, cols].ravel(), poses, rays, prior, config)
        i = int(np.argmax(score))
        best, agreement = poses[i], float(agree[i])
    best = best.copy()
    best[2] = (best[2] + np.pi) % (2 * np.pi) - np.pi
    return best, agreement


def find_robot(labels: np.ndarray, config: RobotFinderConfig = RobotFinderConfig(),
               prior: np.ndarray | None = None, candidates: int = 12) -> tuple[np.ndarray, float]:
    """``(pose (3,), agreement)`` of one frame's ``labels`` (S, S) without a prior pose near enough: every 10 cm of
    the arena (0.2 m from its walls) at every 10° of yaw against every eighth pixel; around each of the best
    ``candidates`` (at least 0.3 m or 30° apart) the rounds of :func:`fit_pose` (±10 cm, ±8° first); the best of
    those (with ``prior``'s cost, where given, throughout)."""
    h = config.arena_half_size - 0.2
    xs = np.arange(-h, h + 1e-9, 0.1)
    yaws = np.radians(np.arange(-180, 180, 10.0))
    grid = np.meshgrid(xs, xs, yaws, indexing="ij")
    poses = np.stack([g.ravel() for g in grid], axis=1)
    (rows, cols), rays = _grid_rays(config, 8)
    centre = np.zeros(3) if prior is None else np.asarray(prior, dtype=np.float64)
    cost = config if prior is not None else replace(config, prior_cost=(0.0, 0.0))
    score, _ = _scores(labels[rows, cols].ravel(), poses, rays, centre, cost)
    starts: list[np.ndarray] = []
    for i in np.argsort(-score):
        p = poses[i]
        apart = (np.linalg.norm(p[:2] - q[:2]) >= 0.3
                 or abs((p[2] - q[2] + np.pi) % (2 * np.pi) - np.pi) >= np.radians(30) for q in starts)
        if all(apart):
            starts.append(p)
        if len(starts) == candidates:
            break
    rounds = ((0.05, 2, np.radians(4.0), 2, 4),) + _FINE
    fits = [_search(labels, start, centre, rounds, cost) for start in starts]
    return max(fits, key=lambda f: f[1])


class RobotTrack:
    """One episode's robot pose from its ego frames: found in the whole arena on the first frame; after that,
    searched around the state model's one-step prediction (or the pose before, without one), and in the whole
    arena again where no pose near it explains ``config.min_score`` of the frame.

    Works on the cube task's probe layout ``[robot x, y, cos yaw, sin yaw, cube x, y, cos 4ψ, sin 4ψ]``."""

    ROBOT = slice(0, 4)

    def __init__(self, config: RobotFinderConfig = RobotFinderConfig()) -> None:
        self.config = config
        self.pose: np.ndarray | None = None
        self.agreement = float("nan")
        """the share of the last frame's pixels that its pose explains"""

    def reset(self) -> None:
        """Forget the pose (a new episode)."""
        self.pose = None

    def update(self, frame: np.ndarray, reading: torch.Tensor,
               prediction: torch.Tensor | None = None) -> torch.Tensor:
        """``reading`` (1, >= 4) of ``frame`` (S, S, 3) with the robot's pose found (the first four columns)."""
        if reading.ndim != 2 or reading.shape[0] != 1 or reading.shape[1] < self.ROBOT.stop:
            raise ValueError(f"RobotTrack: reading must be (1, >= {self.ROBOT.stop}) in the cube task's probe "
                             f"layout, got shape {tuple(reading.shape)}")
        labels = pixel_labels(np.asarray(frame)[None], self.config)[0]
        read = reading[0, self.ROBOT].detach().cpu().double().numpy()
        if self.pose is None:  # the episode's first frame: the whole arena, the reading breaking ties
            pose, agreement = find_robot(labels, self.config, prior=np.array([read[0], read[1],
                                                                               np.arctan2(read[3], read[2])]))
        else:
            prior = self.pose
            if prediction is not None:
                p = prediction[0, self.ROBOT].detach().cpu().double().numpy()
                prior = np.array([p[0], p[1], np.arctan2(p[3], p[2])])
            pose, agreement = fit_pose(labels, prior, self.config)
            if agreement < self.config.min_score:
                wide, wide_agreement = find_robot(labels, self.config, prior=prior)
                if wide_agreement > agreement:
                    pose, agreement = wide, wide_agreement
        self.pose, self.agreement = pose, agreement
        out = reading.clone()
        out[0, self.ROBOT] = torch.as_tensor([pose[0], pose[1], np.cos(pose[2]), np.sin(pose[2])],
                                             dtype=reading.dtype, device=reading.device)
        return out
