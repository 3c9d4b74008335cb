"""Train a :class:`~fog_envs.wm.state_model.StateModel` on a play dataset's true states (CLI: ``fog-train-state``,
:mod:`fog_envs.wm.state_cli`).

    fog-train-state --task pusht --data datasets/pusht_play.h5 --out runs/state_pusht \
        [--heldout datasets/pusht_heldout.h5] [--steps 8000]

Resumable (rerun the same command after a kill: the generic stage loop's checkpoints); writes the bundle to
``<out>/bundle`` with a card holding the dataset, its fingerprint, steps, wall time and, with ``--heldout``,
the one-step errors on held-out episodes in the task's units (next to copying the last state) and the
reward model's error.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fog_envs.wm.distributed import DistContext
from fog_envs.wm.stages import sample_window_starts, valid_window_starts
from fog_envs.wm.state_model import StateModel, StateModelConfig
from fog_envs.wm.tasks import TaskSpec, get_task
from fog_envs.wm.trainer import StageConfig, stage_progress, train_stage


@dataclass(frozen=True)
class StateModelTrainConfig:
    """Train a state-space local model on a play dataset's true states."""

    task: str = "pusht"
    data: str = "datasets/pusht_play.h5"
    out: str = "runs/state_pusht"
    extra_data: tuple[str, ...] = ()
    """more datasets of the same task trained on together with ``data`` (e.g. one collected with a trained agent,
    ``fog-collect-agent``); every transition of every file is drawn with the same probability"""
    heldout: str | None = None
    """a held-out dataset (another seed) for the card's one-step errors"""
    steps: int = 8000
    batch: int = 512
    lr: float = 1e-3
    hidden: int = 256
    layers: int = 3
    frame: str = "world"
    """``world`` or ``block`` (Push-T: the model works in the block's frame, :class:`StateModelConfig`)"""
    velocity_scale: float = 1.0
    """:attr:`StateModelConfig.velocity_scale` (the shipped ``pusht_state``: 0.1)"""
    still_jacobian: float = 1.0
    """weight of the resting-object penalty (:func:`still_jacobian_penalty`; 0: off): without it the MLP lets the
    block respond to the agent's action from across the table, a spurious gradient larger than the true ones"""
    still_tol: float = 0.05
    """an object rests where its passive dimensions change by less than this many change scales, before and after"""
    rollout_steps: int = 1
    """K > 1: the dynamics loss is the mean over a K-step open-loop rollout from (s_{t−1}, s_t) with the real
    actions, back-propagated through the model's own predictions (1: the one-step loss)"""
    input_noise: float = 0.0
    """std (probe-target units; Push-T: 1 px = 1/512) of Gaussian noise added to the training inputs s_t and
    s_{t−1} (the same draw to both, plus 0.3× as much drawn apart for s_{t−1}), the targets left clean: the model
    learns to pull a state that is slightly off back onto the data, so its own open-loop errors do not compound
    (:func:`noisy_inputs`; 0: off)"""
    rest_gate: bool = False
    """give the model a learned rest gate on the task's passive dimensions (:attr:`StateModelConfig.rest_gate`):
    an object at rest stays put instead of drifting by the network's bias"""
    idle_anchor: bool = False
    """:attr:`StateModelConfig.idle_anchor`: a scene at rest under the idle command does not move"""
    still_rows: int | None = None
    """at most this many resting rows of each batch enter the still-Jacobian penalty (None: all; its double
    backward pass is most of a step's cost)"""
    init_from: str | None = None
    """start from this state-model bundle (a shipped name or a path) instead of a fresh model: fine-tune it on the
    data given here, its change scales kept (its architecture must be the one these flags build)"""
    weight_decay: float = 1e-2
    grad_clip: float = 1.0
    final_lr_fraction: float = 0.1
    """the learning rate decays (cosine) from ``lr`` to this fraction of it (:class:`StageConfig`)"""
    seed: int = 0
    threads: int = 0
    checkpoint_every: int = 1000
    stop_after: int | None = None
    """stop (as if killed) after this many steps in this call; for tests"""
    progress: bool = True

    def __post_init__(self) -> None:
        if self.still_jacobian < 0 or self.still_tol <= 0:
            raise ValueError(f"still_jacobian must be >= 0 and still_tol > 0, got {self.still_jacobian}, "
                             f"{self.still_tol}")
        if self.rollout_steps < 1:
            raise ValueError(f"rollout_steps must be >= 1, got {self.rollout_steps}")
        if self.weight_decay < 0 or self.grad_clip <= 0 or not 0 <= self.final_lr_fraction <= 1:
            raise ValueError("weight_decay must be >= 0, grad_clip > 0 and final_lr_fraction in [0, 1], got "
                             f"{self.weight_decay}, {self.grad_clip}, {self.final_lr_fraction}")
        if self.input_noise < 0:
            raise ValueError(f"input_noise must be >= 0, got {self.input_noise}")
        if self.rest_gate and not get_task(self.task).passive_dims:
            raise ValueError(f"rest_gate needs a task with passive objects; task {self.task!r} has none")
        if self.still_rows is not None and self.still_rows < 1:
            raise ValueError(f"still_rows must be >= 1 or None, got {self.still_rows}")


@dataclass(frozen=True)
class StateEpisodes:
    """A play dataset's states in probe-target units, with its actions, rewards and episode ends."""

    state: np.ndarray  # (N, S) float32
    action: np.ndarray  # (N, A) float32
    reward: np.ndarray  # (N,) float32
    episode_ends: np.ndarray  # (E,) int64


def load_episodes(path: str | os.PathLike, spec: TaskSpec) -> StateEpisodes:
    """A play dataset's states (probe-target units), actions, rewards and episode ends (frames are not read)."""
    from fog_envs.data.format import open_dataset

    with open_dataset(path) as f:
        if f.attrs["env_id"] != spec.real_env_id:
            raise ValueError(f"dataset {path} was collected on {f.attrs['env_id']}, but task {spec.name!r} needs "
                             f"{spec.real_env_id}")
        return StateEpisodes(spec.probe_targets(f["state"][()]).astype(np.float32),
                             f["actions"][()].astype(np.float32), f["rewards"][()].astype(np.float32),
                             f["episode_ends"][()].astype(np.int64))


@dataclass(frozen=True)
class StateTransitions:
    """(s_{t−1}, s_t, a_t, r_t, s_{t+1}) for every row t with its predecessor and ``rollout`` successors in its
    episode; with ``rollout`` K > 1 also the next K − 1 actions ``future_action`` (N, K−1, A) and states
    ``future_state`` (N, K−1, S) after s_{t+1}."""

    prev_state: np.ndarray
    state: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    next_state: np.ndarray
    future_action: np.ndarray | None = None
    future_state: np.ndarray | None = None

    def batch(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        # fields() rather than asdict(): asdict deep-copies every array on each call
        return {f.name: torch.from_numpy(np.ascontiguousarray(getattr(self, f.name)[idx])) for f in fields(self)
                if getattr(self, f.name) is not None}


def load_transitions(path: str | os.PathLike, spec: TaskSpec, rollout: int = 1) -> StateTransitions:
    """The transitions of a play dataset in probe-target units (frames are not read), each with ``rollout``
    real steps after it (:class:`StateTransitions`)."""
    ep = load_episodes(path, spec)
    rows = valid_window_starts(ep.episode_ends, 2 + rollout) + 1
    if len(rows) == 0:
        raise ValueError(f"dataset {path} has no episode of {2 + rollout} or more frames")
    future: dict[str, np.ndarray] = {}
    if rollout > 1:
        ahead = rows[:, None] + np.arange(1, rollout)[None]
        future = {"future_action": ep.action[ahead], "future_state": ep.state[ahead + 1]}
    return StateTransitions(ep.state[rows - 1], ep.state[rows], ep.action[rows], ep.reward[rows], ep.state[rows + 1],
                            **future)


def concat_transitions(parts: list[StateTransitions]) -> StateTransitions:
    """The transitions of several datasets as one set (windows never cross files: each part is built alone)."""
    if not parts:
        raise ValueError("no transitions to concatenate")
    if len({p.future_state is None for p in parts}) > 1:
        raise ValueError("cannot concatenate transitions built with different rollout lengths")
    return StateTransitions(**{f.name: None if getattr(parts[0], f.name) is None
                               else np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(StateTransitions)})


def resting_rows(model: StateModel, batch: dict[str, torch.Tensor], passive_dims: tuple[int, ...],
                 tol: float) -> torch.Tensor:
    """(B,) bool: rows whose passive dimensions moved by less than ``tol`` change scales on both sides of s_t."""
    dims = list(passive_dims)
    scale = model.change_scale[dims]
    before = ((batch["state"] - batch["prev_state"])[:, dims] / scale).abs().amax(-1)
    after = ((batch["next_state"] - batch["state"])[:, dims] / scale).abs().amax(-1)
    return (before < tol) & (after < tol)


def still_jacobian_penalty(model: StateModel, batch: dict[str, torch.Tensor], passive_dims: tuple[int, ...],
                           tol: float, max_rows: int | None = None) -> torch.Tensor:
    """Mean over resting rows (:func:`resting_rows`; the first ``max_rows`` of them when given) of the squared
    Frobenius norm of the Jacobian of the predicted change of the passive dimensions (in change scales) w.r.t. the
    dynamics input; 0 when no row rests.

    A resting object (far from the pusher) does not respond to small changes of the action, the pusher's
    position or its own pose: its true local Jacobian is zero, and this teaches the model so."""
    rest = resting_rows(model, batch, passive_dims, tol)
    if max_rows is not None:
        rest = rest & (torch.cumsum(rest.long(), 0) <= max_rows)
    if not rest.any():
        return torch.zeros((), device=batch["state"].device)
    inp = model.inputs(batch["state"][rest], batch["prev_state"][rest], batch["action"][rest]).detach().requires_grad_(True)
    change = model.passive_outputs(model.dynamics(inp), passive_dims)
    total = torch.zeros((), device=inp.device)
    for k in range(change.shape[1]):
        (grad,) = torch.autograd.grad(change[:, k].sum(), inp, create_graph=True)
        total = total + grad.pow(2).sum(-1).mean()
    return total


def rollout_mse(model: StateModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """(K,) the dynamics MSE (in change scales) at each step of the model's open-loop rollout from
    ``(prev_state, state)`` under ``action`` then ``future_action``, against ``next_state`` then ``future_state``;
    differentiable through the model's own predictions (back-propagation through time)."""
    actions = torch.cat([batch["action"][:, None], batch["future_action"]], 1)
    targets = torch.cat([batch["next_state"][:, None], batch["future_state"]], 1)
    s_prev, s, out = batch["prev_state"], batch["state"], []
    for k in range(actions.shape[1]):
        s_prev, s = s, model.step(s, s_prev, actions[:, k])
        out.append(((s - targets[:, k]) / model.change_scale).pow(2).mean())
    return torch.stack(out)


def noisy_inputs(batch: dict[str, torch.Tensor], std: float, generator: torch.Generator | None = None
                 ) -> dict[str, torch.Tensor]:
    """A copy of ``batch`` whose ``state`` is moved by ε ~ N(0, std²) and ``prev_state`` by the same ε plus
    N(0, (0.3·std)²); every other entry (the targets) is left as it is."""
    eps = torch.randn(batch["state"].shape, generator=generator, dtype=batch["state"].dtype) * std
    apart = torch.randn(batch["state"].shape, generator=generator, dtype=batch["state"].dtype) * (0.3 * std)
    return {**batch, "state": batch["state"] + eps, "prev_state": batch["prev_state"] + eps + apart}


def resting_targets_follow(model: StateModel, clean: dict[str, torch.Tensor], noisy: dict[str, torch.Tensor]
                           ) -> dict[str, torch.Tensor]:
    """``noisy`` with the targets of the gated dimensions moved by the input noise in rows where the object rests
    over every target step (:meth:`StateModel.moved`): an object at rest stays where it is, on the data or off it,
    so a gated model is not asked to pull it back (which its closed gate could not do)."""
    dims = list(model.config.rest_gate)
    targets = [clean["next_state"][:, None]] + ([clean["future_state"]] if "future_state" in clean else [])
    seq = torch.cat([clean["state"][:, None], *targets], 1)
    rest = ~model.moved(seq[:, :-1], seq[:, 1:]).any(1)
    shift = torch.zeros_like(clean["state"])
    shift[:, dims] = (noisy["state"] - clean["state"])[:, dims]
    shift = shift * rest[:, None].to(shift.dtype)
    out = {**noisy, "next_state": clean["next_state"] + shift}
    if "future_state" in clean:
        out["future_state"] = clean["future_state"] + shift[:, None]
    return out


def training_loss(model: StateModel, batch: dict[str, torch.Tensor], passive_dims: tuple[int, ...], weight: float,
                  tol: float, noise: float = 0.0, still_rows: int | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The model's one-step loss (with rollouts in the batch: the mean of :func:`rollout_mse` in place of its
    dynamics term) plus ``weight`` × :func:`still_jacobian_penalty` (when weight > 0 and the task has passive
    dimensions). ``noise`` > 0 perturbs the inputs of the dynamics terms (:func:`noisy_inputs`); the penalty
    reads the clean batch, at most ``still_rows`` of its resting rows."""
    clean = batch
    if noise > 0:
        batch = noisy_inputs(batch, noise)
        if model.gate is not None:
            batch = resting_targets_follow(model, clean, batch)
    loss, metrics = model.loss(batch)
    if model.gate is not None:
        gate = model.gate_loss(clean)
        loss = loss + gate
        metrics["state_model/gate_bce"] = gate.item()
    if "future_state" in batch:
        rollout = rollout_mse(model, batch)
        loss = loss - rollout[0] + rollout.mean()  # the one-step term becomes the rollout's mean
        metrics["state_model/rollout_mse"] = rollout.mean().item()
    if weight > 0 and passive_dims:
        penalty = still_jacobian_penalty(model, clean, passive_dims, tol, still_rows)
        loss = loss + weight * penalty
        metrics["state_model/still_jacobian"] = penalty.item()
    return loss, metrics


@torch.no_grad()
def one_step_errors(model: StateModel, data: StateTransitions, spec: TaskSpec) -> dict[str, float]:
    """Median one-step errors of the model and of copying the state, in the task's units, and the reward MAE."""
    b = data.batch(np.arange(len(data.state)))
    pred = model.step(b["state"], b["prev_state"], b["action"]).numpy()
    out: dict[str, float] = {}
    for name, guess in (("model", pred), ("copy", data.state)):
        for k, v in spec.probe_errors(guess, data.next_state).items():
            out[f"{name}_{k}_median"] = float(np.median(v))
    out["reward_abs_err_mean"] = float((model.reward(b["next_state"]) - b["reward"]).abs().mean())
    out["transitions"] = int(len(data.state))
    return out


@torch.no_grad()
def open_loop_errors(model: StateModel, episodes: StateEpisodes, spec: TaskSpec, horizons: tuple[int, ...] = (1, 4, 16),
                     num_windows: int = 128, context_len: int = 4, seed: int = 0,
                     readings: np.ndarray | None = None) -> dict[str, dict[str, float]]:
    """Median errors (task units) of the model's open-loop rollout from true states with the real actions, and of
    copying the last state, ``h`` steps ahead; where the passive objects moved, the median gain and cosine of
    the model's displacement of them along the true one (:func:`fog_envs.wm.fidelity.passive_response`), and the
    errors split by whether they moved (``{h}_{metric}_moved_median`` / ``_rest_median``; the share of windows in
    which they moved is ``windows[f"{h}_moved_fraction"]``): on an agent's own data, where the object rests most of the time, the overall median
    hides the pushes.

    The windows (:func:`fog_envs.wm.stages.sample_window_starts`) are those of
    :func:`fog_envs.wm.fidelity.open_loop` with the same ``num_windows``, ``seed`` and ``context_len`` (the rollout starts from the last two context rows), so the figures sit next to the
    world models' on the same held-out windows. ``readings`` (N, S): per-row estimates of the states (e.g. the
    state probe's readings of the frames) to start the rollout and the copy from instead of the true states, as a
    world model that reads its start from frames does; the errors are always against the true states. Returns
    ``{"model"|"copy": {f"{h}_{metric}": value}}`` plus ``"windows"`` (their count and moved fractions)."""
    from fog_envs.wm.fidelity import RESPONSE_TOL, passive_response

    if context_len < 2:
        raise ValueError(f"context_len must be >= 2 (the state model needs s_prev and s), got {context_len}")
    H = max(horizons)
    starts = sample_window_starts(episodes.episode_ends, context_len + H, num_windows, seed)
    rows = starts[:, None] + np.arange(context_len + H)[None]
    if readings is not None and readings.shape != episodes.state.shape:
        raise ValueError(f"readings must have the held-out states' shape {episodes.state.shape}, got {readings.shape}")
    begin = episodes.state if readings is None else np.asarray(readings, dtype=episodes.state.dtype)
    dtype = next(model.parameters()).dtype
    s_prev = torch.from_numpy(begin[rows[:, context_len - 2]]).to(dtype)
    s = torch.from_numpy(begin[rows[:, context_len - 1]]).to(dtype)
    preds = []
    for k in range(H):
        s_prev, s = s, model.step(s, s_prev, torch.from_numpy(episodes.action[rows[:, context_len - 1 + k]]).to(dtype))
        preds.append(s.double().numpy())
    start = begin[rows[:, context_len - 1]]
    out: dict[str, dict[str, float]] = {"model": {}, "copy": {}}
    windows = {"count": float(len(starts))}
    for h in horizons:
        true = episodes.state[rows[:, context_len + h - 1]]
        moved = None
        if spec.passive_dims:  # did the passive objects move over these h steps (as passive_response counts it)?
            dims = list(spec.passive_dims)
            moved = np.linalg.norm(true[:, dims] - episodes.state[rows[:, context_len - 1]][:, dims], axis=1) \
                > RESPONSE_TOL
            windows[f"{h}_moved_fraction"] = float(moved.mean())
        for name, guess in (("model", preds[h - 1]), ("copy", start)):
            for k, v in spec.probe_errors(guess, true).items():
                out[name][f"{h}_{k}_median"] = float(np.median(v))
                for part, keep in (("moved", moved), ("rest", None if moved is None else ~moved)):
                    if keep is not None and keep.any():
                        out[name][f"{h}_{k}_{part}_median"] = float(np.median(np.asarray(v)[keep]))
        if spec.passive_dims:
            gain, cos = passive_response(preds[h - 1], start, true, episodes.state[rows[:, context_len - 1]],
                                         spec.passive_dims)
            if len(gain):
                out["model"][f"{h}_passive_gain_median"] = float(np.median(gain))
                out["model"][f"{h}_passive_cos_median"] = float(np.median(cos))
    out["windows"] = windows
    return out


def start_from(model: StateModel, name_or_path: str, task: str) -> None:
    """Load the weights and change scales of the bundle ``name_or_path`` into ``model``; ``ValueError`` naming the
    difference when the bundle's architecture is not ``model``'s."""
    base, _ = StateModel.load(name_or_path, task=task)
    if base.config != model.config:
        diffs = [f"{k}: {getattr(base.config, k)!r} (bundle) vs {v!r} (flags)"
                 for k, v in vars(model.config).items() if getattr(base.config, k) != v]
        raise ValueError(f"init_from {name_or_path!r} is another architecture ({'; '.join(diffs)}); "
                         f"give the flags it was trained with")
    model.load_state_dict(base.state_dict())


def train_state_model(cfg: StateModelTrainConfig) -> Path:
    """Train (or resume) and write ``<out>/bundle``; returns its path."""
    from fog_envs.data.format import dataset_fingerprint

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    spec = get_task(cfg.task)
    data = concat_transitions([load_transitions(path, spec, cfg.rollout_steps) for path in (cfg.data, *cfg.extra_data)])
    out = Path(cfg.out)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    model = StateModel(StateModelConfig(state_dim=spec.probe_dim, action_dim=spec.action_dim, hidden=cfg.hidden,
                                        layers=cfg.layers, frame=cfg.frame,
                                        velocity_scale=cfg.velocity_scale,
                                        rest_gate=spec.passive_dims if cfg.rest_gate else (),
                                        pusher_position=spec.pusher_position if cfg.rest_gate else (),
                                        idle_anchor=cfg.idle_anchor))
    if cfg.init_from is None:
        model.fit_scale(torch.from_numpy(data.next_state - data.state))
    else:
        start_from(model, cfg.init_from, cfg.task)
    n = len(data.state)
    stage = StageConfig(steps=cfg.steps, batch=cfg.batch, lr=cfg.lr, warmup=min(200, cfg.steps),
                        weight_decay=cfg.weight_decay, grad_clip=cfg.grad_clip,
                        final_lr_fraction=cfg.final_lr_fraction)
    t0 = time.perf_counter()
    with stage_progress("state_model", f"{cfg.task}/state_model", cfg.steps, cfg.progress) as on_step:
        metrics = train_stage("state_model", model,
                              lambda m, b: training_loss(m, b, spec.passive_dims, cfg.still_jacobian, cfg.still_tol,
                                                         cfg.input_noise, cfg.still_rows),
                              lambda rng, size: data.batch(rng.integers(0, n, size)), stage, out / "checkpoints",
                              cfg.seed, DistContext(), bf16=False, progress=on_step,
                              checkpoint_every=cfg.checkpoint_every, stop_after=cfg.stop_after)
    card: dict[str, Any] = {
        "task": cfg.task, "dataset": str(cfg.data), "dataset_fingerprint": dataset_fingerprint(cfg.data),
        **({"extra_datasets": [{"dataset": str(p), "dataset_fingerprint": dataset_fingerprint(p)}
                               for p in cfg.extra_data]} if cfg.extra_data else {}),
        "transitions": n, "steps": cfg.steps, "train": asdict(cfg), "wall_time_s_last_call": round(time.perf_counter() - t0, 1),
        "final_metrics": {k: v for k, v in metrics.items() if np.isfinite(v)},
    }
    if cfg.heldout is not None:
        card["heldout"] = {"dataset": str(cfg.heldout), **one_step_errors(model, load_transitions(cfg.heldout, spec), spec),
                           "open_loop": open_loop_errors(model, load_episodes(cfg.heldout, spec), spec)}
    return model.save(out / "bundle", cfg.task, card)
