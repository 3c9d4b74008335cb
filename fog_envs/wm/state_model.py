"""A local model in physical-state space: ``s' = f(s, s_prev, a)`` and ``r(s')``, small MLPs.

The RSSM's Jacobians, read at real states against central differences through the reference system, are
uncorrelated with the true gradient (``benchmarks/bench_gradients.py``: cosine ≈ 0 for every bundle),
while its one-step state error is ~50 px. This model learns the same two things FoG needs from a local
model (a differentiable step and a differentiable reward) on the play data's *true states* (the task's probe
targets: Push-T ``[agent_xy, block_xy] / 512, cos θ, sin θ``), with the last change ``s − s_prev`` standing in
for velocity. At run time its state comes from the bundle's state probe reading frames (generated ones in
imagination, real ones at deployment).

Bundle layout (``fog-state-model`` version 1): ``config.json`` (format, task, :class:`StateModelConfig`),
``weights.safetensors`` (the two MLPs and the per-dimension change scale fitted to the data), ``card.json``
(dataset, fingerprint, steps, wall time, held-out errors). Shipped ones load by name (``"pusht_state"``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fog_envs.real.pusht_reward_torch import from_frame, to_frame
from fog_envs.wm.bundle import BundleError, load_state, read_bundle_files, write_bundle
from fog_envs.wm.config_io import config_from_dict, config_to_dict

FORMAT_NAME = "fog-state-model"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class StateModelConfig:
    """Sizes of :class:`StateModel` (defaults: Push-T's 6 probe targets, 2-D actions)."""

    state_dim: int = 6
    action_dim: int = 2
    hidden: int = 256
    layers: int = 3
    reward_hidden: int = 256
    frame: str = "world"
    """``"world"``: the MLP sees and predicts table coordinates; ``"block"`` (Push-T's layout only): it sees the
    agent, the velocities and the action in the block's frame and predicts the agent's and the block's moves
    in that frame (pushing is the same wherever the block lies and however it is turned)"""
    velocity_scale: float = 1.0
    """the last change ``s − s_prev`` enters the network in units of ``change_scale / velocity_scale``: below 1
    the network leans less on that noisy finite difference (Push-T: 0.1 takes the 16-step open-loop block error
    from ~20 to ~8 px, ``benchmarks/bench_state_model.py``); 1.0 is what bundles written before it hold"""
    rest_gate: tuple[int, ...] = ()
    """the passive objects' state dimensions (world frame; e.g. Push-T's block ``(2, 3, 4, 5)``) whose predicted
    change a learned *rest gate* multiplies: ``σ(g(·))`` (:meth:`StateModel.moves_logit`), the probability that
    the object moves this step,
    trained on the data's moved / rested labels (:meth:`StateModel.gate_loss`). Without it an object at rest
    drifts by the MLP's small bias every step (Push-T's shipped model: a block left at the goal drifts 11 px in
    50 steps, ``benchmarks/bench_rest_drift.py``). Empty: no gate (bundles written before it)"""
    rest_tol: float = 0.05
    """an object moved in a transition where a gated dimension changed by more than this many change scales"""
    pusher_position: tuple[int, ...] = ()
    """the pusher's position dimensions (both tasks: ``(0, 1)``): the rest gate also sees the pusher's offset
    from the object (the first as many ``rest_gate`` dimensions) in units of 100 px of Push-T's table, since
    whether the object moves is mostly a matter of contact"""
    idle_anchor: bool = False
    """the predicted change is ``f(s, s_prev, a) − f(s, s, 0)``: a scene at rest (``s_prev = s``) under the idle
    command (``a = 0``: Push-T's target where the agent is, the cube's zero velocity) does not move at all,
    where an unanchored MLP lets the pusher drift by its bias (Push-T's shipped model: the agent 29 px in 50
    idle steps, the cube's robot 0.32 m; ``benchmarks/bench_rest_drift.py``); costs a second network call"""

    def __post_init__(self) -> None:
        if min(self.state_dim, self.action_dim, self.hidden, self.layers, self.reward_hidden) < 1:
            raise ValueError(f"StateModelConfig: sizes must be positive, got {self}")
        if self.frame not in ("world", "block"):
            raise ValueError(f"StateModelConfig.frame must be 'world' or 'block', got {self.frame!r}")
        if not self.velocity_scale > 0:
            raise ValueError(f"StateModelConfig.velocity_scale must be > 0, got {self.velocity_scale}")
        if any(not 0 <= d < self.state_dim for d in self.rest_gate) or len(set(self.rest_gate)) != len(self.rest_gate):
            raise ValueError(f"StateModelConfig.rest_gate must hold distinct state dimensions in [0, {self.state_dim}), "
                             f"got {self.rest_gate}")
        if len(self.pusher_position) > len(self.rest_gate) or any(
                not 0 <= d < self.state_dim for d in self.pusher_position):
            raise ValueError(f"StateModelConfig.pusher_position must hold at most len(rest_gate) = "
                             f"{len(self.rest_gate)} state dimensions, got {self.pusher_position}")
        if not self.rest_tol > 0:
            raise ValueError(f"StateModelConfig.rest_tol must be > 0, got {self.rest_tol}")
        if self.frame == "block" and (self.state_dim, self.action_dim) != (6, 2):
            raise ValueError("StateModelConfig.frame='block' needs Push-T's layout (state_dim 6: agent xy, block xy, "
                             f"cos, sin; action_dim 2), got state_dim {self.state_dim}, action_dim {self.action_dim}")


def _mlp(inp: int, hidden: int, layers: int, out: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    for _ in range(layers):
        mods += [nn.Linear(inp, hidden), nn.SiLU()]
        inp = hidden
    return nn.Sequential(*mods, nn.Linear(inp, out))


BLOCK_FRAME_INPUTS = 15  #: agent offset 2, agent and block moves 2 + 2, turn 1, action 2 (block frame); state 6
BLOCK_FRAME_OUTPUTS = 5  #: the agent's and the block's moves (block frame) and the block's turn
GATE_HIDDEN = 256  #: width of the rest gate's MLP
AGENT_OFFSET_UNIT = 100.0 / 512.0  #: probe units (100 px) of the agent's offset from the block in the block frame


def _unit(cs: torch.Tensor) -> torch.Tensor:
    return cs / cs.norm(dim=-1, keepdim=True).clamp_min(1e-6)


class StateModel(nn.Module):
    """Dynamics ``step(s, s_prev, a) -> s'`` and reward ``reward(s')`` on probe-target states (module doc)."""

    def __init__(self, config: StateModelConfig) -> None:
        super().__init__()
        self.config = config
        s, a = config.state_dim, config.action_dim
        if config.frame == "block":
            self.dynamics = _mlp(BLOCK_FRAME_INPUTS, config.hidden, config.layers, BLOCK_FRAME_OUTPUTS)
        else:
            self.dynamics = _mlp(2 * s + a, config.hidden, config.layers, s)
        self.reward_head = _mlp(s, config.reward_hidden, 2, 1)
        n_gate = 2 * s + a + len(config.pusher_position)
        self.gate = _mlp(n_gate, GATE_HIDDEN, 2, 1) if config.rest_gate else None
        """logit of "the passive objects move this step" (:meth:`moves_logit`; None without ``rest_gate``)"""
        mask = torch.zeros(BLOCK_FRAME_OUTPUTS if config.frame == "block" else s, dtype=torch.bool)
        mask[self.gated_columns()] = True
        self.register_buffer("gate_mask", mask, persistent=False)
        """the dynamics output's columns the rest gate multiplies (:meth:`gated_columns`), built once"""
        self.register_buffer("change_scale", torch.ones(s))
        """typical one-step change per dimension (root mean square of s_{t+1} − s_t over the data; a median would
        be ~0 for objects that rest most of the time), set by :meth:`fit_scale`"""

    def fit_scale(self, changes: torch.Tensor) -> None:
        """Set :attr:`change_scale` from observed one-step changes (N, state_dim) (floored to stay positive)."""
        scale = changes.float().pow(2).mean(0).sqrt()
        self.change_scale.copy_(scale.clamp_min(1e-3 * float(scale.max().clamp_min(1e-6))))

    def _frame_scales(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Typical one-step moves of the agent, the block (probe units) and the block's turn (rad)."""
        c = self.change_scale
        return c[0:2].mean(), c[2:4].mean(), c[4:6].norm()

    def inputs(self, s: torch.Tensor, s_prev: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """The dynamics network's input: ``[s, v (s − s_prev) / change_scale, a]`` (world frame; v the config's
        ``velocity_scale``), or the agent's offset, both moves and the turn (each times v), the action in the
        block's frame followed by ``s`` (block frame)."""
        action = action.to(s.dtype)
        v = self.config.velocity_scale
        if self.config.frame == "world":
            return torch.cat([s, (s - s_prev) * (v / self.change_scale), action], -1)
        agent_scale, block_scale, turn_scale = self._frame_scales()
        agent_scale, block_scale, turn_scale = agent_scale / v, block_scale / v, turn_scale / v
        cs, cs_prev = _unit(s[..., 4:6]), _unit(s_prev[..., 4:6])
        turn = torch.atan2(cs_prev[..., 0] * cs[..., 1] - cs_prev[..., 1] * cs[..., 0],
                           (cs_prev * cs).sum(-1)).unsqueeze(-1)
        return torch.cat([to_frame(s[..., 0:2] - s[..., 2:4], cs) / AGENT_OFFSET_UNIT,
                          to_frame(s[..., 0:2] - s_prev[..., 0:2], cs) / agent_scale,
                          to_frame(s[..., 2:4] - s_prev[..., 2:4], cs) / block_scale,
                          turn / turn_scale, to_frame(action, cs), s], -1)

    def gated_columns(self) -> list[int]:
        """The dynamics output's columns the rest gate multiplies (world frame: ``rest_gate``; block frame: the
        block's move and turn)."""
        if not self.config.rest_gate:
            return []
        return list(self.config.rest_gate) if self.config.frame == "world" else [2, 3, 4]

    def moves_logit(self, s: torch.Tensor, s_prev: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """(...,) the rest gate's logit that the passive objects move this step. Its input is ``[s, (s − s_prev) /
        change_scale, a]`` (the last change at full scale whatever ``velocity_scale``: a block still sliding
        moves a fraction of a change scale per step) and the pusher's offset from the object."""
        assert self.gate is not None, "no rest gate (StateModelConfig.rest_gate is empty)"
        parts = [s, (s - s_prev) / self.change_scale, action.to(s.dtype)]
        if self.config.pusher_position:
            k = len(self.config.pusher_position)
            obj = list(self.config.rest_gate[:k])
            parts.append((s[..., list(self.config.pusher_position)] - s[..., obj]) / AGENT_OFFSET_UNIT)
        return self.gate(torch.cat(parts, -1)).squeeze(-1)

    def step(self, s: torch.Tensor, s_prev: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """The next state (..., state_dim); differentiable in every argument."""
        inp = self.inputs(s, s_prev, action)
        out = self.dynamics(inp)
        if self.config.idle_anchor:
            out = out - self.dynamics(self.inputs(s, s, torch.zeros_like(action)))
        if self.gate is not None:
            gate = torch.sigmoid(self.moves_logit(s, s_prev, action)).unsqueeze(-1)
            out = torch.where(self.gate_mask, out * gate, out)
        if self.config.frame == "world":
            return s + out * self.change_scale
        agent_scale, block_scale, turn_scale = self._frame_scales()
        cs = _unit(s[..., 4:6])
        turn = out[..., 4] * turn_scale
        turned = from_frame(torch.stack([torch.cos(turn), torch.sin(turn)], -1), cs)
        return torch.cat([s[..., 0:2] + from_frame(out[..., 0:2], cs) * agent_scale,
                          s[..., 2:4] + from_frame(out[..., 2:4], cs) * block_scale, turned], -1)

    def passive_outputs(self, out: torch.Tensor, passive_dims: tuple[int, ...]) -> torch.Tensor:
        """The columns of a dynamics output ``out`` (B, ·) that move the passive objects: ``passive_dims``
        (world frame) or the block's move and turn (block frame)."""
        return out[:, list(passive_dims)] if self.config.frame == "world" else out[:, 2:5]

    def reward(self, s: torch.Tensor) -> torch.Tensor:
        """The reward of arriving in ``s`` (...,)."""
        return self.reward_head(s).squeeze(-1)

    def moved(self, state: torch.Tensor, next_state: torch.Tensor) -> torch.Tensor:
        """(B,) bool: a gated dimension changed by more than ``rest_tol`` change scales from ``state`` to
        ``next_state``: the rest gate's label."""
        dims = list(self.config.rest_gate)
        change = ((next_state - state)[..., dims] / self.change_scale[dims]).abs()
        return change.amax(-1) > self.config.rest_tol

    def gate_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Binary cross-entropy of the rest gate against :meth:`moved` on ``batch``."""
        logit = self.moves_logit(batch["state"], batch["prev_state"], batch["action"])
        target = self.moved(batch["state"], batch["next_state"]).to(logit.dtype)
        return nn.functional.binary_cross_entropy_with_logits(logit, target)

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """One-step dynamics MSE in units of the change scale + reward MSE (``r_t`` labels ``s_{t+1}``) (the
        rest gate's loss is :meth:`gate_loss`, on clean inputs)."""
        pred = self.step(batch["state"], batch["prev_state"], batch["action"])
        dyn = ((pred - batch["next_state"]) / self.change_scale).pow(2).mean()
        rew = (self.reward(batch["next_state"]) - batch["reward"]).pow(2).mean()
        return dyn + rew, {"state_model/dynamics_mse": dyn.item(), "state_model/reward_mse": rew.item()}

    # --- bundles -------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, task: str, card: dict[str, Any]) -> Path:
        """Write a ``fog-state-model`` bundle directory (atomically)."""
        return write_bundle(path, _Header(task, self.config), dict(self.state_dict()), card)

    @classmethod
    def load(cls, name_or_path: str | os.PathLike, task: str | None = None,
             map_location: str | torch.device = "cpu") -> tuple["StateModel", dict[str, Any]]:
        """``(model, card)`` from a bundle; ``BundleError`` when missing, corrupt, another format or (with
        ``task``) trained for another task."""
        path, raw, tensors, card = read_bundle_files(name_or_path, FORMAT_NAME, FORMAT_VERSION)
        if task is not None and raw.get("task") != task:
            raise BundleError(f"state-model bundle {path} was trained for task {raw.get('task')!r}, not {task!r}")
        try:
            config = config_from_dict(StateModelConfig, raw["config"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"state-model bundle {path}: bad config ({exc})") from exc
        model = cls(config)
        load_state(model, {f"state_model.{k}": v for k, v in tensors.items()}, "state_model", str(path))
        return model.to(map_location).eval(), card


@dataclass(frozen=True)
class _Header:
    """What ``config.json`` holds for a state model (``write_bundle`` calls :meth:`to_dict`)."""

    task: str
    config: StateModelConfig

    def to_dict(self) -> dict[str, Any]:
        return {"format_name": FORMAT_NAME, "format_version": FORMAT_VERSION, "task": self.task,
                "config": config_to_dict(self.config)}

