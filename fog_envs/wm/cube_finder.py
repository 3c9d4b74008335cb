"""The cube finder: where the ``RealPushCube-v0`` cube is, from where it appears in the robot's ego frame, and where
it is while out of view.

The state probe (:mod:`fog_envs.wm.probe`) reads the cube 177–182 mm off (median) when the camera sees it and
guesses it (~1.3 m off) when it does not, which is at 41 of the 50 standard starts (README item 30). The cube is the
only orange-yellow thing in the scene, and the camera's pose on the robot is known, so the cube needs no learning:

* :func:`cube_mask` marks its pixels by a colour rule (red high, blue low, green in between; checked against
  MuJoCo's segmentation rendering in the tests and ``benchmarks/bench_cube_finder.py``);
* :func:`find_cube` casts the ray through the mask's centroid to the cube's half height, and from there
  :func:`fit_silhouette` finds the pose whose projected silhouette (:func:`cube_silhouettes`) overlaps the mask best:
  the cube's pose in the robot's body frame (x forward, y left, metres), which no reading of the robot's pose enters
  (3 mm median error, 30 mm p90, against the probe's 123 / 371 mm; ``benchmarks/bench_cube_finder.py``);
* :func:`body_to_world` places it in the world with the robot's pose as read;
* :class:`CubeTrack` carries the cube on while the camera does not see it: where it was last seen (the cube moves
  only when pushed) or, given the state model's one-step prediction, where the model says the robot pushed it,
  and says when it has not been seen at all this episode (``lost``), where a deployment turns the
  robot on the spot to look for it (:class:`fog_agent.controller.FogController`'s ``search_action``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fog_envs.real.cube_scene import (
    CAMERA_FOVY_DEG,
    CAMERA_HEIGHT,
    CAMERA_PITCH_DEG,
    CUBE_HALF_SIZE,
    ROBOT_HALF_EXTENTS,
)


@dataclass(frozen=True)
class CubeFinderConfig:
    """The ego camera's geometry on the robot (defaults: ``fog_envs.real.cube_scene``), the cube's height and the
    colour rule of its pixels."""

    image_size: int = 64
    fovy_deg: float = CAMERA_FOVY_DEG
    pitch_deg: float = CAMERA_PITCH_DEG
    """the camera's downward tilt"""
    camera_forward: float = ROBOT_HALF_EXTENTS[0] + 0.005
    """the camera's distance ahead of the robot's centre (m)"""
    camera_height: float = CAMERA_HEIGHT
    cube_half_size: float = CUBE_HALF_SIZE
    """half the cube's side (m): its centre's height, where the centroid's ray meets it, and its silhouette's size"""
    min_red: int = 90
    """a cube pixel has red above this (0–255) ..."""
    max_blue_ratio: float = 0.35
    """... blue below this fraction of its red ..."""
    green_ratio: tuple[float, float] = (0.45, 0.9)
    """... and green within this range of fractions of its red"""
    min_pixels: int = 1
    """the cube is seen where at least this many pixels pass the rule"""
    push_radius: float = 0.45
    """out of view, the cube follows the state model's prediction only while the robot is within this distance (m)
    of it (it touches the cube within 0.39 m: half the robot's diagonal and half the cube's); farther away it rests
    where it was (the model's resting cube drifts a few mm per step)"""
    unseen_pixels: int = 0
    """out of view, a cube placed where the camera would see at least this many of its pixels is forgotten: the frame
    contradicts it (it was carried on wrongly), and the track is lost again until the camera sees the cube, where a
    deployment turns to look for it; 0: never (README item 34)"""
    silhouette: bool = True
    """refine the centroid's position by fitting the cube's silhouette to its pixels (3 mm median error against the
    centroid's 47 mm, 112 mm at contact; ~25 ms per frame that shows the cube, 52 ms before its faces were culled);
    False: the centroid's alone"""

    def __post_init__(self) -> None:
        if self.image_size < 1:
            raise ValueError(f"CubeFinderConfig: image_size must be >= 1, got {self.image_size}")
        if not 0.0 < self.fovy_deg < 180.0:
            raise ValueError(f"CubeFinderConfig: fovy_deg must be in (0, 180), got {self.fovy_deg}")
        if not 0.0 < self.cube_half_size < self.camera_height:
            raise ValueError(f"CubeFinderConfig: cube_half_size must be in (0, camera_height={self.camera_height}), "
                             f"got {self.cube_half_size}")
        lo, hi = self.green_ratio
        if not 0.0 <= lo < hi:
            raise ValueError(f"CubeFinderConfig: green_ratio must be (low, high) with 0 <= low < high, got "
                             f"{self.green_ratio}")
        if self.min_pixels < 1:
            raise ValueError(f"CubeFinderConfig: min_pixels must be >= 1, got {self.min_pixels}")
        if self.unseen_pixels < 0:
            raise ValueError(f"CubeFinderConfig: unseen_pixels must be >= 0, got {self.unseen_pixels}")
        if not self.push_radius >= 0:
            raise ValueError(f"CubeFinderConfig: push_radius must be >= 0, got {self.push_radius}")

    def focal_px(self) -> float:
        """The camera's focal length in pixels (square pixels; the vertical field of view spans the image)."""
        return (self.image_size / 2.0) / float(np.tan(np.radians(self.fovy_deg) / 2.0))

    def camera_axes(self) -> np.ndarray:
        """(3, 3) columns: the camera's right, up and backward axes in the robot's body frame (MuJoCo's camera looks
        along its −z)."""
        p = np.radians(self.pitch_deg)
        right = np.array([0.0, -1.0, 0.0])
        up = np.array([np.sin(p), 0.0, np.cos(p)])
        return np.stack([right, up, np.cross(right, up)], axis=1)


def _frames(frames: torch.Tensor | np.ndarray, size: int) -> np.ndarray:
    arr = frames.cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if arr.ndim != 4 or arr.shape[1:] != (size, size, 3):
        raise ValueError(f"cube finder: frames must be (N, {size}, {size}, 3) uint8 RGB, got shape {arr.shape}")
    return arr


def cube_mask(frames: torch.Tensor | np.ndarray, config: CubeFinderConfig = CubeFinderConfig()) -> np.ndarray:
    """(N, S, S) bool: the pixels of uint8 frames (N, S, S, 3) that pass the cube's colour rule."""
    arr = _frames(frames, config.image_size).astype(np.float32)
    r, g, b = arr[..., 0], arr[..., 1], arr[..., 2]
    lo, hi = config.green_ratio
    return (r > config.min_red) & (b < config.max_blue_ratio * r) & (g > lo * r) & (g < hi * r)


def pixel_rays(u: np.ndarray, v: np.ndarray, config: CubeFinderConfig = CubeFinderConfig()) -> np.ndarray:
    """(..., 3) directions in the robot's body frame of the rays through image points (column ``u``, row ``v``
    from the top-left corner, in pixels; a pixel's centre is at +0.5)."""
    half, focal = config.image_size / 2.0, config.focal_px()
    cam = np.stack([(np.asarray(u, np.float64) - half) / focal, -(np.asarray(v, np.float64) - half) / focal,
                    -np.ones(np.shape(u))], axis=-1)
    return cam @ config.camera_axes().T


_CORNERS = np.array([[x, y, z] for z in (-1.0, 1.0) for y in (-1.0, 1.0) for x in (-1.0, 1.0)])
"""the unit cube's corners, index x + 2y + 4z of the bits (−1 → 0)"""
_FACES = np.array([[4, 5, 7, 6], [0, 1, 5, 4], [2, 3, 7, 6], [0, 2, 6, 4], [1, 3, 7, 5]])
"""its top and four sides, corners in order around each (the bottom is never seen from above)"""


def project_cubes(poses: np.ndarray, config: CubeFinderConfig = CubeFinderConfig()) -> tuple[np.ndarray, np.ndarray]:
    """``(pixels (K, 8, 2), depth (K, 8))``: the image points (column, row) of the corners of cubes resting on the
    floor at body-frame poses (K, 3) = (x, y, yaw), and their depths along the camera's axis (> 0: in front)."""
    poses = np.asarray(poses, dtype=np.float64)
    h = config.cube_half_size
    c, s = np.cos(poses[:, 2:3]), np.sin(poses[:, 2:3])
    lx, ly = _CORNERS[:, 0] * h, _CORNERS[:, 1] * h
    points = np.stack([poses[:, 0:1] + c * lx - s * ly, poses[:, 1:2] + s * lx + c * ly,
                       np.broadcast_to(_CORNERS[:, 2] * h + h, (len(poses), 8))], axis=-1)
    cam = (points - np.array([config.camera_forward, 0.0, config.camera_height])) @ config.camera_axes()
    depth = -cam[..., 2]
    half, focal = config.image_size / 2.0, config.focal_px()
    safe = np.where(depth > 1e-9, depth, 1e-9)
    return np.stack([half + focal * cam[..., 0] / safe, half - focal * cam[..., 1] / safe], axis=-1), depth


def cube_silhouettes(poses: np.ndarray, u: np.ndarray, v: np.ndarray,
                     config: CubeFinderConfig = CubeFinderConfig()) -> np.ndarray:
    """(K, P) bool: which of the image points (``u``, ``v``: (P,) column, row) each cube (body-frame poses
    (K, 3)) covers, as the renderer draws it (a pixel is the cube's where its centre is); the union of the convex
    projections of its top and of the two sides that face the camera most (a convex body's silhouette is the union of
    any faces that include those facing the camera: the others project inside it). Cubes reaching behind the camera
    cover nothing."""
    pixels, depth = project_cubes(poses, config)
    poses = np.asarray(poses, dtype=np.float64)
    # the sides' outward normals in the body frame are ±(cos ψ, sin ψ), ±(−sin ψ, cos ψ) in _FACES' order
    # (−y, +y, −x, +x of the cube's own frame); a side faces the camera as its normal points at it
    c, s = np.cos(poses[:, 2]), np.sin(poses[:, 2])
    normals = np.stack([np.stack([s, -c], 1), np.stack([-s, c], 1), np.stack([-c, -s], 1), np.stack([c, s], 1)], 1)
    to_camera = np.array([config.camera_forward, 0.0]) - poses[:, None, :2]
    facing = np.argsort(-(normals * to_camera).sum(axis=-1), axis=1)[:, :2] + 1  # (K, 2) indices into _FACES
    faces = np.concatenate([np.zeros((len(poses), 1), dtype=int), facing], axis=1)  # the top and two sides
    face = np.take_along_axis(pixels[:, None], _FACES[faces][..., None], axis=2)  # (K, 3, 4, 2)
    ex, ey = (np.roll(face, -1, axis=2) - face).transpose(3, 0, 1, 2)
    # each edge's cross product with a pixel: ex·(v − fy) − ey·(u − fx) = ex·v − ey·u + offset
    offset = ey * face[..., 0] - ex * face[..., 1]
    cross = ex[..., None] * v - ey[..., None] * u + offset[..., None]
    inside = (cross.min(axis=2) >= 0) | (cross.max(axis=2) <= 0)
    return inside.any(axis=1) & (depth.min(axis=1) > 0)[:, None]


def fit_silhouette(mask: np.ndarray, start: np.ndarray,
                   config: CubeFinderConfig = CubeFinderConfig()) -> np.ndarray:
    """The body-frame pose (x, y, yaw) of the cube whose silhouette best overlaps ``mask`` (S, S) (intersection
    over union, on a window 3 px around the mask), by three rounds of grid search from ``start`` (x, y): ±16 cm
    in 4 cm steps over four yaws (every other pixel where the mask has over 100), then ±3 cm in 1 cm and ±10°
    around the best, then ±6 mm in 3 mm and ±3°. The yaw is known modulo 90° (a cube looks the same)."""
    rows, cols = np.nonzero(mask)
    size = config.image_size
    r0, r1 = max(rows.min() - 3, 0), min(rows.max() + 4, size)
    c0, c1 = max(cols.min() - 3, 0), min(cols.max() + 4, size)
    vv, uu = np.mgrid[r0:r1, c0:c1] + 0.5
    seen = mask[r0:r1, c0:c1]
    best = np.array([start[0], start[1], 0.0])
    coarse = 2 if len(rows) > 100 else 1  # the first round reads every other pixel of a large cube
    rounds = ((0.04, 4, np.arange(4) * np.pi / 8, coarse), (0.01, 3, np.radians(np.arange(-10, 11, 5)), 1),
              (0.003, 2, np.radians(np.arange(-3, 4, 3)), 1))
    for i, (step, n, yaws, stride) in enumerate(rounds):
        offsets = np.arange(-n, n + 1) * step
        grid = np.meshgrid(best[0] + offsets, best[1] + offsets, yaws + (best[2] if i else 0.0), indexing="ij")
        poses = np.stack([g.ravel() for g in grid], axis=1)
        obs = seen[::stride, ::stride].ravel()
        cover = cube_silhouettes(poses, uu[::stride, ::stride].ravel(), vv[::stride, ::stride].ravel(), config)
        iou = (cover & obs).sum(axis=1) / np.maximum((cover | obs).sum(axis=1), 1)
        best = poses[int(np.argmax(iou))]
    return best


def find_cube(frames: torch.Tensor | np.ndarray,
              config: CubeFinderConfig = CubeFinderConfig()) -> tuple[np.ndarray, np.ndarray]:
    """``(poses (N, 3), seen (N,))``: the cube's pose in the robot's body frame (x forward, y left, metres; yaw
    modulo 90°) where the frame shows it: the ray through its pixels' centroid meets the cube's half height, and
    from there the silhouette that best overlaps its pixels (:func:`fit_silhouette`; with ``config.silhouette``,
    else the ray's point and a NaN yaw); NaN where the frame does not show it (or where that ray does not point
    below the camera)."""
    masks = cube_mask(frames, config)
    out = np.full((len(masks), 3), np.nan)
    counts = masks.sum(axis=(1, 2))
    grid_v, grid_u = np.mgrid[0:config.image_size, 0:config.image_size] + 0.5
    seen = counts >= config.min_pixels
    for i in np.flatnonzero(seen):
        m = masks[i]
        ray = pixel_rays(np.array((m * grid_u).sum() / counts[i]), np.array((m * grid_v).sum() / counts[i]), config)
        if ray[2] >= -1e-9:
            seen[i] = False
            continue
        t = (config.cube_half_size - config.camera_height) / ray[2]
        start = np.array([config.camera_forward + t * ray[0], t * ray[1]])
        out[i] = fit_silhouette(m, start, config) if config.silhouette else (*start, np.nan)
    return out, seen


def body_to_world(robot: np.ndarray, body: np.ndarray) -> np.ndarray:
    """World (x, y) of body-frame points ``body`` (N, 2) of robots at ``robot`` (N, 4) = (x, y, cos yaw, sin yaw)
    (the cube task's probe layout; the cos/sin pair is normalised first)."""
    robot = np.asarray(robot, dtype=np.float64)
    norm = np.linalg.norm(robot[:, 2:4], axis=1, keepdims=True)
    c, s = (robot[:, 2:4] / np.maximum(norm, 1e-9)).T
    bx, by = np.asarray(body, dtype=np.float64).T
    return np.stack([robot[:, 0] + c * bx - s * by, robot[:, 1] + s * bx + c * by], axis=1)


def world_to_body(robot: np.ndarray, world: np.ndarray) -> np.ndarray:
    """Body-frame (x, y) of world points ``world`` (N, 2) seen from robots at ``robot`` (N, 4) = (x, y, cos yaw,
    sin yaw): the inverse of :func:`body_to_world`."""
    robot = np.asarray(robot, dtype=np.float64)
    norm = np.linalg.norm(robot[:, 2:4], axis=1, keepdims=True)
    c, s = (robot[:, 2:4] / np.maximum(norm, 1e-9)).T
    dx, dy = (np.asarray(world, dtype=np.float64) - robot[:, 0:2]).T
    return np.stack([c * dx + s * dy, -s * dx + c * dy], axis=1)


def expected_pixels(robot: np.ndarray, cube: np.ndarray, config: CubeFinderConfig = CubeFinderConfig()) -> int:
    """How many pixels of the ego frame of a robot at ``robot`` (1, 4) (the probe layout's first columns) a cube
    resting at world (x, y) ``cube`` (2,) would cover (squarely facing the robot: its smallest silhouette but for a
    corner's few pixels)."""
    body = world_to_body(robot, np.asarray(cube, dtype=np.float64)[None])[0]
    vv, uu = np.mgrid[0:config.image_size, 0:config.image_size] + 0.5
    return int(cube_silhouettes(np.array([[body[0], body[1], 0.0]]), uu.ravel(), vv.ravel(), config).sum())


class CubeTrack:
    """One episode's cube (one robot): the frame's cube where the camera sees it, placed with the robot's pose as
    read; out of view, where it was last placed, moved by the state model's prediction while the robot is beside
    it; before it is first seen, the reading unchanged (``lost``).

    Works on the cube task's probe layout ``[robot x, y, cos yaw, sin yaw, cube x, y, cos 4ψ, sin 4ψ]``."""

    ROBOT = slice(0, 4)
    CUBE = slice(4, 6)

    def __init__(self, config: CubeFinderConfig = CubeFinderConfig()) -> None:
        self.config = config
        self.last: np.ndarray | None = None

    @property
    def lost(self) -> bool:
        """The camera has not seen the cube since :meth:`reset` (or since the frame contradicted where it was
        placed, with ``config.unseen_pixels``)."""
        return self.last is None

    def reset(self) -> None:
        """Forget the cube (a new episode)."""
        self.last = None

    def update(self, frame: np.ndarray, reading: torch.Tensor,
               prediction: torch.Tensor | None = None) -> torch.Tensor:
        """``reading`` (1, 8) of ``frame`` (S, S, 3) with the cube's position found; out of view, where it was last
        placed, or the cube of ``prediction`` (1, >= 6; the state model's one-step prediction) where given and the
        robot is within ``push_radius`` of it (a cube the robot pushes out of its view moves on), unless the camera
        should see ``unseen_pixels`` of it there (then lost again); while lost, as read."""
        if reading.ndim != 2 or reading.shape[0] != 1 or reading.shape[1] < self.CUBE.stop:
            raise ValueError(f"CubeTrack: reading must be (1, >= {self.CUBE.stop}) in the cube task's probe "
                             f"layout, got shape {tuple(reading.shape)}")
        body, seen = find_cube(np.asarray(frame)[None], self.config)
        if seen[0]:
            robot = reading[:, self.ROBOT].detach().cpu().double().numpy()
            self.last = body_to_world(robot, body[:, :2])[0]
        elif self.last is not None and prediction is not None:
            robot = reading[0, 0:2].detach().cpu().double().numpy()
            if np.linalg.norm(robot - self.last) <= self.config.push_radius:
                self.last = prediction[0, self.CUBE].detach().cpu().double().numpy()
        if not seen[0] and self.last is not None and self.config.unseen_pixels:
            robot = reading[:, self.ROBOT].detach().cpu().double().numpy()
            if expected_pixels(robot, self.last, self.config) >= self.config.unseen_pixels:
                self.last = None
        if self.last is None:
            return reading
        out = reading.clone()
        out[0, self.CUBE] = torch.as_tensor(self.last, dtype=reading.dtype, device=reading.device)
        return out
