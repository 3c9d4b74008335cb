"""An analytic toy world model with known Jacobians: the smallest backend, for tests and third parties.

A point mass on a plane, state ``x = (p, v)`` in R^4, action ``a`` in [-1, 1]^2::

    v' = v + dt * (force * a - damping * v - stiffness * sin(p))
    p' = p + dt * v'
    reward(x') = exp(-|p'|^2)        success: |p'| < 0.1

The *global* model uses ``damping``; the *local* surrogate uses ``damping + surrogate_error``, so with
``surrogate_error=0`` the decoupled gradient is the true gradient, and otherwise it is the analytic
surrogate gradient evaluated at the true states (see :func:`analytic_jacobians`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fog_envs.learned.backend import GlobalStep


@dataclass(frozen=True)
class ToyConfig:
    """Constants of the toy dynamics."""

    dt: float = 0.1
    force: float = 1.0
    damping: float = 0.5
    stiffness: float = 0.2
    surrogate_error: float = 0.0
    start_range: float = 1.0


def toy_step(state: torch.Tensor, action: torch.Tensor, cfg: ToyConfig, damping: float) -> torch.Tensor:
    """One step of the point-mass dynamics for a batch ``state`` (N, 4) and ``action`` (N, 2)."""
    p, v = state[..., :2], state[..., 2:]
    v_next = v + cfg.dt * (cfg.force * action - damping * v - cfg.stiffness * torch.sin(p))
    return torch.cat([p + cfg.dt * v_next, v_next], dim=-1)


def toy_reward(state: torch.Tensor) -> torch.Tensor:
    """``exp(-|p|^2)`` of a batch of states."""
    return torch.exp(-(state[..., :2] ** 2).sum(-1))


def analytic_jacobians(state: np.ndarray, cfg: ToyConfig, damping: float) -> tuple[np.ndarray, np.ndarray]:
    """``(d x'/d x, d x'/d a)`` of :func:`toy_step` at one state, by hand (4×4 and 4×2)."""
    dt, k, c, f = cfg.dt, cfg.stiffness, damping, cfg.force
    p = state[:2]
    dv_dp = np.diag(-dt * k * np.cos(p))
    dv_dv = np.eye(2) * (1 - dt * c)
    dv_da = np.eye(2) * dt * f
    jx = np.block([[np.eye(2) + dt * dv_dp, dt * dv_dv], [dv_dp, dv_dv]])
    ja = np.vstack([dt * dv_da, dv_da])
    return jx, ja


class ToyBackend:
    """The toy world model as a :class:`fog_envs.learned.backend.Backend`."""

    action_dim = 2
    state_dim = 4
    obs_size = 64

    def __init__(self, num_envs: int, config: ToyConfig = ToyConfig(), device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        self.num_envs = num_envs
        self.config = config
        self.device = torch.device(device)
        self.dtype = dtype
        self._x = torch.zeros(num_envs, 4, device=self.device, dtype=dtype)

    def reset(self, env_ids: torch.Tensor, generators: list[torch.Generator]) -> None:
        r = self.config.start_range
        for i in env_ids.tolist():
            p = (torch.rand(2, generator=generators[i], dtype=torch.float64) * 2 - 1) * r
            self._x[i] = torch.cat([p, torch.zeros(2, dtype=torch.float64)]).to(self.device, self.dtype)

    def state(self) -> torch.Tensor:
        return self._x.clone()

    @torch.no_grad()
    def global_step(self, action: torch.Tensor, generators: list[torch.Generator]) -> GlobalStep:
        self._x = toy_step(self._x, action.to(self.dtype), self.config, self.config.damping)
        dist = self._x[:, :2].norm(dim=-1)
        return GlobalStep(self._x.clone(), toy_reward(self._x), dist < 0.1, {"distance": dist})

    def local_step(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return toy_step(state, action, self.config, self.config.damping + self.config.surrogate_error)

    def local_reward(self, state: torch.Tensor) -> torch.Tensor:
        return toy_reward(state)

    def snapshot(self) -> dict[str, torch.Tensor]:
        return {"x": self._x.clone()}

    def restore(self, snapshot: dict[str, torch.Tensor]) -> None:
        self._x = snapshot["x"].to(self.device, self.dtype).clone()

    def render_obs(self, obs_type: str) -> np.ndarray:
        if obs_type == "latent":
            return self._x.detach().cpu().numpy().astype(np.float32)
        n, s = self.num_envs, self.obs_size
        img = np.full((n, s, s, 3), 255, dtype=np.uint8)
        img[:, s // 2, :, :] = 200  # axes
        img[:, :, s // 2, :] = 200
        pix = ((self._x[:, :2].detach().cpu().numpy() / 2.0 + 0.5) * (s - 1)).round().astype(int).clip(1, s - 2)
        for i, (x, y) in enumerate(pix):
            img[i, y - 1:y + 2, x - 1:x + 2] = (30, 60, 220)
        return img
