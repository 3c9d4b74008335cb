"""``local_model="state"``: FoG's local model in physical-state space instead of the RSSM.

The local state is ``x = [ŝ_t, ŝ_{t−1}]``: the bundle's state probe reading the current and the previous frame
(generated frames in imagination, the reference system's frames with ``forward_model="reference"`` and at
deployment). The local step is a :class:`~fog_envs.wm.state_model.StateModel`'s ``[f(ŝ_t, ŝ_{t−1}, a), ŝ_t]``
and the local reward the task's differentiable reward formula at ``ŝ`` where it has one (Push-T:
:mod:`fog_envs.real.pusht_reward_torch`; the cube: :mod:`fog_envs.real.cube_reward_torch`; its Jacobian agrees with
the truth far better than a learned head's), else the state model's reward head; the global model, its reward and the straight-through
coupling are unchanged. Why: the RSSM's Jacobians are uncorrelated with the true gradient of the reference
system, a state-space model's are not (``benchmarks/bench_gradients.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from fog_envs.learned.state_filter import StateFilterConfig, fuse
from fog_envs.runtime import autocast
from fog_envs.wm.model import WorldModel
from fog_envs.wm.readers import refine_all
from fog_envs.wm.state_model import StateModel

if TYPE_CHECKING:
    from fog_envs.wm.cube_finder import CubeTrack
    from fog_envs.wm.robot_finder import RobotTrack
    from fog_envs.wm.pusher_odometry import PusherOdometry, PusherTrack
    from fog_envs.wm.readers import Reader


class StateLocalModel:
    """Probe readings in, ``[ŝ_t, ŝ_{t−1}]`` states and their differentiable step and reward out (a
    :class:`fog_envs.wm.model.LocalModel`)."""

    def __init__(self, model: WorldModel, state_model: StateModel, bf16: bool = False, reward: str = "auto") -> None:
        """``reward``: ``"task"`` (the task's differentiable reward formula on ``ŝ``, where it has one:
        Push-T), ``"model"`` (the state model's learned reward head) or ``"auto"`` (task where available)."""
        if reward not in ("auto", "task", "model"):
            raise ValueError(f"unknown reward {reward!r}; choose 'auto', 'task' or 'model'")
        if reward == "task" and model.task.state_reward is None:
            raise ValueError(f"task {model.task.name!r} has no differentiable reward formula; use reward='model'")
        if state_model.config.state_dim != model.task.probe_dim or state_model.config.action_dim != model.task.action_dim:
            raise ValueError(f"the state model ({state_model.config.state_dim} states, {state_model.config.action_dim} "
                             f"actions) does not fit task {model.task.name!r} ({model.task.probe_dim} probe targets, "
                             f"{model.task.action_dim} actions)")
        self.model = model
        self.state_model = state_model.eval()
        for p in state_model.parameters():
            p.requires_grad_(False)
        self.bf16 = bf16
        self.reward_source = "model" if reward == "model" or model.task.state_reward is None else "task"
        self.sdim = state_model.config.state_dim
        self.dim = 2 * self.sdim

    @torch.no_grad()
    def read_frames(self, frames: torch.Tensor | np.ndarray) -> torch.Tensor:
        """The probe's state estimate of uint8 frames (N, H, W, 3), numpy or torch (on any device)."""
        device = self.model.start_latents.device
        return self.model.probe(torch.as_tensor(frames, device=device)).float()

    @torch.no_grad()
    def read_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """The probe's state estimate of latent frames (N, C, h, w), decoded to pixels first."""
        ae = self.model.autoencoder
        with autocast(latents.device, self.bf16):
            out = ae.decode_float(latents)
        return self.read_frames(ae.output_to_frames(out.float()))

    def start(self, s: torch.Tensor, s_prev: torch.Tensor | None = None) -> torch.Tensor:
        """The local state of a fresh episode (at rest when no previous reading is given)."""
        return torch.cat([s, s if s_prev is None else s_prev], -1)

    def start_window(self, latents: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The local state at the end of a real window of latent frames (B, L, C, h, w)."""
        return self.start(self.read_latents(latents[:, -1]),
                          self.read_latents(latents[:, -2]) if latents.shape[1] > 1 else None)

    def filter_latent(self, x: torch.Tensor, action: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """The local state after a step to the latent frame ``latent`` (read through the decoder and the probe)."""
        return self.advance(x, self.read_latents(latent))

    def advance(self, x: torch.Tensor, s_next: torch.Tensor) -> torch.Tensor:
        """The local state after a step whose new frame reads ``s_next``."""
        return torch.cat([s_next, x[..., :self.sdim]], -1)

    def step(self, x: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        s, s_prev = x[..., :self.sdim], x[..., self.sdim:]
        return torch.cat([self.state_model.step(s, s_prev, action), s], -1)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, action: torch.Tensor | np.ndarray) -> torch.Tensor:
        """The state model's next ``ŝ`` (B, state_dim) from local states ``x`` (B, dim) under ``action`` (B, A)."""
        action = torch.as_tensor(np.asarray(action, dtype=np.float32)).to(x).reshape(x.shape[0], -1)
        return self.step(x, action)[..., :self.sdim]

    def guide_states(self, x: torch.Tensor, x_next: torch.Tensor) -> torch.Tensor:
        """(B, 2, S) ``[ŝ_t, ŝ_{t+1}]`` of the local states before and after a step: what a state-guided
        denoiser draws the next frame from."""
        return torch.stack([x[..., :self.sdim], x_next[..., :self.sdim]], -2)

    def reward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reward_source == "task":
            return self.model.task.state_reward(x[..., :self.sdim])
        return self.state_model.reward(x[..., :self.sdim])


class StateObserver:
    """Deployment filter for ``local_model="state"``: the probe on real frames, ``[ŝ_t, ŝ_{t−1}]``, its readings
    refined by ``readers`` in turn (Push-T: :mod:`fog_envs.wm.readers`), the pusher's position dead-reckoned from
    the actions with ``odometry`` (its start re-estimated from every reading: :mod:`fog_envs.wm.pusher_odometry`),
    with ``state_filter`` fused with the state model's prediction of the step
    (:mod:`fog_envs.learned.state_filter`), and the cube (the cube task) found in the frame and remembered while out
    of view by ``cube_track`` (:mod:`fog_envs.wm.cube_finder`; placed with the robot's pose after the filter), the
    robot's pose (the cube task) found by ``robot_track`` in what the frame shows of the arena, tracked with the state
    model's prediction (:mod:`fog_envs.wm.robot_finder`; before the filter and the cube)."""

    def __init__(self, local: StateLocalModel, readers: "Sequence[Reader]" = (),
                 state_filter: StateFilterConfig | None = None, odometry: "PusherOdometry | None" = None,
                 cube_track: "CubeTrack | None" = None, robot_track: "RobotTrack | None" = None) -> None:
        self.local = local
        self.cube_track = cube_track
        self.robot_track = robot_track
        self.readers = tuple(readers)
        self.gains = None if state_filter is None else state_filter.vector(local.sdim)
        self.odometry = odometry
        self.pusher = list(local.model.task.pusher_position) if odometry is not None else []
        if odometry is not None and len(self.pusher) != 2:
            raise ValueError(f"odometry needs a task whose pusher is a 2-D position; task "
                             f"{local.model.task.name!r} has pusher dimensions {tuple(self.pusher)}")
        self.track: "PusherTrack | None" = None
        self.x: torch.Tensor | None = None

    def read(self, obs: np.ndarray) -> torch.Tensor:
        """The state reading (1, state_dim) of one real frame."""
        frames = np.asarray(obs)[None]
        return refine_all(self.readers, frames, self.local.read_frames(frames))

    @property
    def lost(self) -> bool:
        """A ``cube_track`` has not seen the cube yet this episode (False without one)."""
        return self.cube_track is not None and self.cube_track.lost

    def reset(self, obs: np.ndarray) -> torch.Tensor:
        reading = self.read(obs)
        if self.odometry is not None:
            self.track = self.odometry.track(reading[:, self.pusher])
        if self.robot_track is not None:
            self.robot_track.reset()
            reading = self.robot_track.update(obs, reading)
        if self.cube_track is not None:
            self.cube_track.reset()
            reading = self.cube_track.update(obs, reading)
        self.x = self.local.start(reading)
        return self.x[0]

    def update(self, action: np.ndarray, obs: np.ndarray) -> torch.Tensor:
        if self.x is None:
            raise RuntimeError("StateObserver: call reset() before update()")
        reading = self.read(obs)
        if self.track is not None:
            act = torch.as_tensor(np.asarray(action, dtype=np.float64)).reshape(1, -1)
            reading[:, self.pusher] = self.track.update(act, reading[:, self.pusher]).to(reading)
        uses_model = self.gains is not None or self.cube_track is not None or self.robot_track is not None
        predicted = self.local.predict(self.x, action) if uses_model else None
        if self.robot_track is not None:
            reading = self.robot_track.update(obs, reading, predicted)
        if self.gains is not None:
            reading = fuse(predicted, reading, self.gains)
        if self.cube_track is not None:
            reading = self.cube_track.update(obs, reading, predicted)
        self.x = self.local.advance(self.x, reading)
        return self.x[0]
