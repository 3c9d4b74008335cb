"""``forward_model="reference"``: the reference system itself as the global model (a diagnostic upper bound).

FoG's question is whether the diffusion model is faithful enough to train on. This backend answers its
counterpart: what the same agent reaches when the forward trajectories are *perfect*. The global step steps
``num_envs`` copies of the task's reference system (``RealPushT-v0`` / ``RealPushCube-v0``) with the action and
returns their true reward and success; the bundle's autoencoder encodes the true frame and its local model
filters it into the local state exactly as at deployment (the RSSM as
:class:`~fog_envs.learned.wm_backend.LatentObserver` does, or with ``local_model="state"`` the state probe on
the true frame). The local face (step, reward, the Jacobians), the online refresh and the deployment observer
are the world-model backend's. If an agent trained here still fails on the reference system, the limit is not the
global model's fidelity.

Episodes start from the reference system's own reset distribution (seeded from the env's generator), not
from the bundle's play windows. Snapshots hold each env's reset seed and the actions since; restoring
replays them, so a resumed run continues exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import gymnasium as gym
import numpy as np
import torch

from fog_envs.learned.backend import GlobalStep
from fog_envs.learned.wm_backend import RefreshConfig, WorldModelBackend
from fog_envs.wm.model import WorldModel

if TYPE_CHECKING:
    from fog_envs.learned.state_local import StateLocalModel

SEED_HIGH = 2**31 - 1


class ReferenceBackend(WorldModelBackend):
    """``num_envs`` copies of the reference system with the bundle's local model (module doc)."""

    def __init__(self, model: WorldModel, num_envs: int, refresh: RefreshConfig | None = None,
                 bf16: bool = False, state_local: "StateLocalModel | None" = None) -> None:
        super().__init__(model, num_envs, forward_model="reference", refresh=refresh, bf16=bf16,
                         state_local=state_local)
        self.envs = [gym.make(self.reference_env_id, disable_env_checker=True).unwrapped for _ in range(num_envs)]
        self._seeds = [0] * num_envs
        self._actions: list[list[np.ndarray]] = [[] for _ in range(num_envs)]
        shape = self.envs[0].observation_space.shape
        self._frames = np.zeros((num_envs, *shape), dtype=np.uint8)

    @torch.no_grad()
    def _encode(self, frames: np.ndarray) -> torch.Tensor:
        return self.model.autoencoder.encode(torch.as_tensor(frames, device=self.device)).float()

    def _reset_env(self, i: int, seed: int) -> None:
        obs, _ = self.envs[i].reset(seed=seed)
        self._seeds[i] = seed
        self._actions[i] = []
        self._frames[i] = obs

    def reset(self, env_ids: torch.Tensor, generators: list[torch.Generator]) -> None:
        ids = env_ids.tolist()
        for i in ids:
            self._reset_env(i, int(torch.randint(SEED_HIGH, (1,), generator=generators[i])))
        idx = torch.as_tensor(ids, device=self.device, dtype=torch.long)
        z = self._encode(self._frames[ids])
        self.ctx[idx] = z[:, None].expand(-1, self.ctx.shape[1], -1, -1, -1)
        self.ctx_act[idx] = 0.0
        with torch.no_grad():  # as the deployment observer starts: one frame, no action before it
            if self.state_local is not None:  # the probe reads the true frame itself, not its encoding
                self.x[idx] = self.state_local.start(self.state_local.read_frames(self._frames[ids]))
            else:
                self.x[idx] = self.local.start_window(z[:, None], torch.zeros(len(ids), 1, self.action_dim,
                                                                              device=self.device))
        self._fresh[idx] = True

    @torch.no_grad()
    def global_step(self, action: torch.Tensor, generators: list[torch.Generator]) -> GlobalStep:
        action = action.to(self.device, torch.float32).clamp(-1.0, 1.0)
        acts = action.cpu().numpy()
        rewards, success, states = [], [], []
        for i, env in enumerate(self.envs):
            obs, rew, _, _, info = env.step(acts[i])
            self._actions[i].append(acts[i].copy())
            self._frames[i] = obs
            rewards.append(rew)
            success.append(bool(info["is_success"]))
            states.append(info["state"])
        z = self._encode(self._frames)
        x_next = self.filter(action, z, self._frames)
        aux_values = torch.as_tensor(self.model.task.aux_targets(np.stack(states)), device=self.device)
        aux = {name: aux_values[:, k] for k, name in enumerate(self.model.task.aux_names)}
        step = GlobalStep(x_next.clone(), torch.as_tensor(rewards, dtype=torch.float32, device=self.device),
                          torch.as_tensor(success, device=self.device), aux)
        return self._advance(z, x_next, action, step)

    @torch.no_grad()
    def render_obs(self, obs_type: str) -> np.ndarray:
        if obs_type == "pixels":
            return self._frames.copy()
        return super().render_obs(obs_type)

    def snapshot(self) -> dict:
        """The world-model backend's snapshot plus each env's reset seed and actions since (replayed on restore)."""
        return {**super().snapshot(), "reference": {"seeds": list(self._seeds),
                                                    "actions": [np.array(a, dtype=np.float32).reshape(-1, self.action_dim)
                                                                for a in self._actions]}}

    def restore(self, snapshot: dict) -> None:
        super().restore(snapshot)
        ref = snapshot["reference"]
        for i, (seed, actions) in enumerate(zip(ref["seeds"], ref["actions"])):
            self._reset_env(i, int(seed))
            for a in actions:
                obs, *_ = self.envs[i].step(a)
                self._actions[i].append(np.array(a, dtype=np.float32))
                self._frames[i] = obs

    def close(self) -> None:
        """Close the reference envs (their renderers)."""
        for env in self.envs:
            env.close()
