"""The world-model backend of ``WMPushT-v0`` / ``WMPushCube-v0``.

Global step (no gradient): the EDM denoiser samples the next latent frame from the last L latents and
actions (``forward_model="diffusion"``), the reward model reads it, and the RSSM posterior filters it into
the next local state ``x = [deter, stoch]``. With ``forward_model="rssm"`` (the "no diffusion" ablation) the
RSSM prior dreams the next state and its decoder the next latent frame. With ``forward_model="state"`` (needs
``local_model="state"``) the state model dreams the next ``[ŝ_{t+1}, ŝ_t]`` and the task's formulas give its reward
and success: no frames are generated (latent observations only). A *state-guided* world model (its denoiser
conditioned on physical states, ``DenoiserConfig.state_dim``) needs ``local_model="state"``: the state model
steps ``[ŝ_t, ŝ_{t−1}]`` and the denoiser draws the frame of ``ŝ_{t+1}``; that state is the next local state.

Local step (differentiable): the RSSM prior mean ``[GRU(deter, stoch, a), mean p(stoch | deter')]`` and the
RSSM reward head; :class:`fog_envs.learned.diff.DifferentiableEnv` evaluates both at the global states. With
``local_model="state"`` the local state, step and reward are a state-space model's instead
(:mod:`fog_envs.learned.state_local`): the state probe reads each generated frame.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from fog_envs.learned.backend import GlobalStep
from fog_envs.learned.disagreement import freeze_members, next_states
from fog_envs.runtime import autocast
from fog_envs.wm.model import LocalModel, RSSMLocal, WorldModel

if TYPE_CHECKING:
    from fog_envs.learned.disagreement import EnsemblePenalty
    from fog_envs.learned.state_local import StateLocalModel, StateObserver
    from fog_envs.learned.state_filter import StateFilterConfig
    from fog_envs.wm.cube_finder import CubeTrack
    from fog_envs.wm.robot_finder import RobotTrack
    from fog_envs.wm.state_model import StateModel
    from fog_envs.wm.pusher_odometry import PusherOdometry
    from fog_envs.wm.readers import Reader


@dataclass(frozen=True)
class RefreshConfig:
    """Online refresh of the RSSM on the policy's imagined rollouts (plus real windows)."""

    history: int = 64  #: imagined steps kept per env
    seq_len: int = 16
    batch: int = 16
    lr: float = 1e-4


def _check_start_share(name: str, share: float, bounds: str, upper: float, forward_model: str, sampler: object,
                       task: str, kind: str, verb: str) -> None:
    """Refuse, by name, a share of episode starts outside ``[0, upper]`` (``bounds`` as the message shows it), one
    given to a world whose starts are not state-model states, or one of a task without the ``kind`` sampler."""
    if not 0.0 <= share <= upper:
        raise ValueError(f"{name} is a fraction of episode starts in {bounds}, got {share}")
    if share > 0 and forward_model != "state":
        raise ValueError(f"{name} {verb} a state-model world's start state; it needs forward_model='state' "
                         f"(got {forward_model!r}: its start frames would disagree)")
    if share > 0 and sampler is None:
        raise ValueError(f"task {task!r} has no {kind} sampler; use {name}=0")


class WorldModelBackend:
    """``num_envs`` imagined episodes of one :class:`~fog_envs.wm.model.WorldModel` (see the module doc)."""

    obs_size = 64

    def __init__(self, model: WorldModel, num_envs: int, forward_model: str = "diffusion",
                 denoising_steps: int | None = None, refresh: RefreshConfig | None = None,
                 bf16: bool = False, state_local: "StateLocalModel | None" = None, goal_starts: float = 0.0,
                 penalty: "EnsemblePenalty | None" = None, reset_starts: float = 0.0,
                 forward_members: "Sequence[StateModel]" = (), wall_starts: float = 0.0) -> None:
        """``goal_starts``: the fraction of episode starts (``forward_model="state"`` only) whose object the task
        moves near its goal (:attr:`fog_envs.wm.tasks.TaskSpec.goal_start`), so that imagined episodes also
        practise the last few pixels; 0: every start is a real window as read by the probe. ``reset_starts``: the
        fraction of starts (``forward_model="state"`` only, disjoint from ``goal_starts``) drawn as the reference
        system draws its resets (:attr:`fog_envs.wm.tasks.TaskSpec.reset_start`). ``wall_starts``: the fraction of
        starts (``forward_model="state"`` only, disjoint from both) drawn as those resets with the object next to a
        wall (:attr:`fog_envs.wm.tasks.TaskSpec.wall_start`). ``penalty``
        (``forward_model="state"`` only): subtracted from every step's reward, value and gradient
        (:mod:`fog_envs.learned.disagreement`). ``forward_members`` (``forward_model="state"`` only): other state
        models the world also dreams with; each imagined episode draws, at its start and uniformly, which of the
        K = 1 + len(members) models (the local model's own first) steps it (after ME-TRPO's model ensembles, Kurutach
        et al. 2018: a policy cannot fit one model's quirks); the local model, and so the gradient, stays the own
        model's."""
        if len(model.start_latents) == 0:
            raise ValueError("the world model has no real start windows (start_latents is empty)")
        if state_local is not None and forward_model == "rssm":
            raise ValueError("local_model='state' needs frames to read (forward_model 'diffusion' or 'reference'); "
                             "forward_model='rssm' dreams with the RSSM")
        if forward_model == "state" and state_local is None:
            raise ValueError("forward_model='state' steps the state model of local_model='state'; pass it")
        if forward_model == "state" and (model.task.state_reward is None or model.task.state_outcome is None):
            raise ValueError(f"forward_model='state' needs the task's reward and success as functions of the state; "
                             f"task {model.task.name!r} has none")
        if model.state_guided and forward_model == "diffusion" and state_local is None:
            raise ValueError("this world model's denoiser is state-guided: it needs local_model='state' (the state "
                             "model supplies the states its frames are drawn from)")
        task = model.task
        _check_start_share("goal_starts", goal_starts, "[0, 1]", 1.0, forward_model, task.goal_start, task.name,
                           "near-goal start", "moves the object of")
        room = 1.0 - goal_starts
        _check_start_share("reset_starts", reset_starts, f"[0, 1 - goal_starts] = [0, {room:g}]", room, forward_model,
                           task.reset_start, task.name, "reset-start", "replaces")
        room -= reset_starts
        _check_start_share("wall_starts", wall_starts, f"[0, 1 - goal_starts - reset_starts] = [0, {room:g}]", room,
                           forward_model, task.wall_start, task.name, "near-wall start", "replaces")
        if penalty is not None and forward_model != "state":
            raise ValueError(f"an ensemble penalty applies to forward_model='state' (the ensemble's members are state "
                             f"models); got forward_model={forward_model!r}")
        if forward_members and forward_model != "state":
            raise ValueError(f"forward_members are state models a state-model world dreams with; they need "
                             f"forward_model='state', got {forward_model!r}")
        if forward_members:
            freeze_members(forward_members, state_local.state_model, "forward member")
        self.forward_members = tuple(forward_members)
        self._penalty_takes_predictions = bool(forward_members) and \
            getattr(penalty, "members", None) == list(forward_members)
        """the penalty is an ensemble's over the forward members: it takes the forward step's predictions"""
        self.goal_starts = float(goal_starts)
        self.reset_starts = float(reset_starts)
        self.wall_starts = float(wall_starts)
        self.penalty = penalty
        self.model = model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        self.num_envs = num_envs
        self.forward_model = forward_model
        self.denoising_steps = denoising_steps
        self.bf16 = bf16
        """the denoiser's network calls and the pixel decoder run under bf16 autocast (no-grad paths only)"""
        self.device = model.start_latents.device
        self.action_dim = model.task.action_dim
        self.state_local = state_local
        """``local_model="state"``: the state-space local model (:mod:`fog_envs.learned.state_local`); None: the RSSM"""
        self.local: LocalModel = state_local if state_local is not None else RSSMLocal(model)
        self.state_dim = model.local_state_dim if state_local is None else state_local.dim
        self.control_hz = model.task.control_hz
        self.reference_env_id = model.task.real_env_id
        L, (c, h, w) = model.context_len, model.latent_shape
        self.ctx = torch.zeros(num_envs, L, c, h, w, device=self.device)
        self.ctx_act = torch.zeros(num_envs, L, self.action_dim, device=self.device)
        self.x = torch.zeros(num_envs, self.state_dim, device=self.device)
        self.member = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        """which model steps each env (0: the own state model, k: ``forward_members[k - 1]``)"""
        self.refresh_config = refresh if refresh is not None else RefreshConfig()
        self._history: deque[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = deque(
            maxlen=self.refresh_config.history)
        self._fresh = torch.ones(num_envs, dtype=torch.bool, device=self.device)
        self._refresh_opt: torch.optim.Optimizer | None = None
        self._refresh_rng = torch.Generator().manual_seed(0)

    # --- episode starts --------------------------------------------------------------------------------
    def reset(self, env_ids: torch.Tensor, generators: list[torch.Generator]) -> None:
        ids = env_ids.tolist()
        n_start = len(self.model.start_latents)
        picks = [int(torch.randint(n_start, (1,), generator=generators[i])) for i in ids]
        lat = self.model.start_latents[picks].float()
        act = self.model.start_actions[picks].float()
        idx = torch.as_tensor(ids, device=self.device)
        self.ctx[idx] = lat
        self.ctx_act[idx] = act
        with torch.no_grad():
            self.x[idx] = self.local.start_window(lat, act)
            if self.goal_starts > 0 or self.reset_starts > 0 or self.wall_starts > 0:
                self._redraw_starts(ids, generators)
        if self.forward_members:
            k = len(self.forward_members) + 1
            self.member[idx] = torch.as_tensor([int(torch.randint(k, (1,), generator=generators[i])) for i in ids],
                                               device=self.device)
        self._fresh[idx] = True

    def _redraw_starts(self, ids: list[int], generators: list[torch.Generator]) -> None:
        """Per env, with probability ``goal_starts`` restart it at rest with its object near the goal, else with
        probability ``reset_starts`` at rest from a reference-reset state, else with probability ``wall_starts`` from
        one with the object next to a wall; one uniform draw decides."""
        sdim = self.state_local.sdim
        task = self.model.task
        for i in ids:
            u = float(torch.rand(1, generator=generators[i]))
            sampler = (task.goal_start if u < self.goal_starts else
                       task.reset_start if u < self.goal_starts + self.reset_starts else
                       task.wall_start if u < self.goal_starts + self.reset_starts + self.wall_starts else None)
            if sampler is not None:
                s = sampler(self.x[i:i + 1, :sdim].cpu(), generators[i]).to(self.x)
                self.x[i] = self.state_local.start(s)[0]

    def state(self) -> torch.Tensor:
        return self.x.clone()

    # --- the two faces -------------------------------------------------------------------------------
    @torch.no_grad()
    def global_step(self, action: torch.Tensor, generators: list[torch.Generator]) -> GlobalStep:
        action = action.to(self.device, torch.float32)
        self.ctx_act[:, -1] = action
        if self.forward_model == "diffusion":
            noise = torch.stack([torch.randn(self.ctx.shape[2:], generator=g) for g in generators]).to(self.device)
            ctx_noise = torch.stack([torch.randn(self.ctx.shape[1:], generator=g) for g in generators]).to(self.device)
            guide = None
            if self.model.state_guided:
                x_next = self.state_local.step(self.x, action)
                guide = self.state_local.guide_states(self.x, x_next)
            z = self.model.next_latent_fixed(self.ctx, self.ctx_act, noise, ctx_noise, self.denoising_steps,
                                             bf16=self.bf16, state=guide)
            if guide is None:
                x_next = self.filter(action, z)
        elif self.forward_model == "state":
            x_next = self.state_local.step(self.x, action)
            own = x_next[:, :self.state_local.sdim]
            preds = self._member_predictions(action, own) if self.forward_members else None
            s_next = own
            if preds is not None:  # each env's from the model it drew
                s_next = preds.gather(0, self.member.view(1, -1, 1).expand(1, -1, own.shape[1]))[0]
            x_next = self.state_local.advance(self.x, s_next)
            success, aux = self.model.task.state_outcome(s_next)
            reward = self.model.task.state_reward(s_next)
            if self.penalty is not None:
                reward = reward - (self.penalty.of_predictions(preds) if self._penalty_takes_predictions
                                   else self.penalty(self.x, action, own))
            step = GlobalStep(x_next.clone(), reward, success, aux)
            return self._advance(self.ctx[:, -1], x_next, action, step)
        else:
            x_next = self.model.local_step(self.x, action)
            z = self.model.decode_local(x_next)
        out = self.model.reward(z)
        aux = {name: out["aux"][:, k] for k, name in enumerate(self.model.task.aux_names)}
        return self._advance(z, x_next, action, GlobalStep(x_next.clone(), out["reward"],
                                                           torch.sigmoid(out["success_logit"]) > 0.5, aux))

    def _member_predictions(self, action: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
        """(K, N, S) every model's next states, the own model's (``own``, already computed) first; an ensemble
        penalty over the same members takes them as they are."""
        sdim = self.state_local.sdim
        return next_states(own, self.forward_members, self.x[:, :sdim], self.x[:, sdim:], action)

    def _advance(self, z: torch.Tensor, x_next: torch.Tensor, action: torch.Tensor, step: GlobalStep) -> GlobalStep:
        """Record the transition for the online refresh, shift the context to ``z`` and the state to ``x_next``."""
        # (frame before the step, action, reward, is_first) for the local model's online refresh
        self._history.append((self.ctx[:, -1].clone(), action.clone(), step.reward.clone(), self._fresh.clone()))
        self._fresh[:] = False
        self.ctx = torch.cat([self.ctx[:, 1:], z[:, None]], dim=1)
        self.ctx_act = torch.cat([self.ctx_act[:, 1:], torch.zeros_like(self.ctx_act[:, :1])], dim=1)
        self.x = x_next
        return step

    @torch.no_grad()
    def filter(self, action: torch.Tensor, z: torch.Tensor, frames: np.ndarray | None = None) -> torch.Tensor:
        """The local state after ``action`` led to the latent frame ``z`` (pixels ``frames`` when at hand)."""
        if self.state_local is not None and frames is not None:
            return self.state_local.advance(self.x, self.state_local.read_frames(frames))
        return self.local.filter_latent(self.x, action, z)

    def local_step(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.local.step(state, action)

    def local_reward(self, state: torch.Tensor) -> torch.Tensor:
        return self.local.reward(state)

    def local_penalty(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor | None:
        """The differentiable penalty (N,) of a step from ``state`` under ``action`` that the global reward
        subtracts (None: no penalty)."""
        return None if self.penalty is None else self.penalty(state, action)

    # --- observations, checkpoints, deployment --------------------------------------------------------
    @torch.no_grad()
    def render_obs(self, obs_type: str) -> np.ndarray:
        if obs_type == "latent":
            return self.x.float().cpu().numpy().copy()  # never a view of the live state
        if self.forward_model == "state":
            raise ValueError("forward_model='state' generates no frames: use obs_type='latent'")
        ae = self.model.autoencoder
        with autocast(self.device, self.bf16):  # the decoder is the costliest part of a pixel step
            out = ae.decode_float(self.ctx[:, -1])
        return ae.output_to_frames(out.float()).cpu().numpy()

    def snapshot(self) -> dict:
        """Per-env state plus what the online refresh changed (RSSM weights, optimiser, history)."""
        return {"ctx": self.ctx.clone(), "ctx_act": self.ctx_act.clone(), "x": self.x.clone(),
                "member": self.member.clone(), "fresh": self._fresh.clone(), "history": list(self._history),
                "rssm": {k: v.clone() for k, v in self.model.rssm.state_dict().items()},
                "refresh_opt": self._refresh_opt.state_dict() if self._refresh_opt is not None else None,
                "refresh_rng": self._refresh_rng.get_state()}

    def restore(self, snapshot: dict) -> None:
        self.ctx = snapshot["ctx"].to(self.device).clone()
        self.ctx_act = snapshot["ctx_act"].to(self.device).clone()
        self.x = snapshot["x"].to(self.device).clone()
        if "member" in snapshot:
            self.member = snapshot["member"].to(self.device).clone()
        if "rssm" in snapshot:
            self._fresh = snapshot["fresh"].clone()
            self._history.clear()
            self._history.extend(snapshot["history"])
            self.model.rssm.load_state_dict(snapshot["rssm"])
            self._refresh_rng.set_state(snapshot["refresh_rng"])
            if snapshot["refresh_opt"] is not None:
                self._refresh_opt = torch.optim.Adam(self.model.rssm.parameters(), lr=self.refresh_config.lr)
                self._refresh_opt.load_state_dict(snapshot["refresh_opt"])

    def refresh_local_model(self, steps: int) -> dict[str, float]:
        """``steps`` RSSM updates on recent imagined sequences of the current policy, mixed with the real
        start windows shipped with the model (reconstruction + KL there; their rewards are unknown). Nothing
        with ``local_model="state"``: imagination has no true states to learn the state model from."""
        cfg = self.refresh_config
        if len(self._history) < 2 or self.state_local is not None:
            return {}
        seq_len = min(cfg.seq_len, len(self._history))
        rssm = self.model.rssm
        if self._refresh_opt is None:
            self._refresh_opt = torch.optim.Adam(rssm.parameters(), lr=cfg.lr)
        hist = list(self._history)
        lat = torch.stack([h[0] for h in hist], 1)  # (N, K, C, h, w)
        act, rew, first = (torch.stack([h[i] for h in hist], 1) for i in (1, 2, 3))
        k = lat.shape[1]
        losses = []
        rssm.train()
        for p in rssm.parameters():
            p.requires_grad_(True)
        for _ in range(steps):
            env = torch.randint(self.num_envs, (cfg.batch,), generator=self._refresh_rng)
            start = torch.randint(k - seq_len + 1, (cfg.batch,), generator=self._refresh_rng)
            rows = start[:, None] + torch.arange(seq_len)[None]
            mask = torch.ones(cfg.batch, seq_len, dtype=torch.bool)
            loss, _ = rssm.loss(lat[env[:, None], rows], act[env[:, None], rows], rew[env[:, None], rows],
                                first[env[:, None], rows], mask, generator=self._refresh_rng)
            real = torch.randint(len(self.model.start_latents), (cfg.batch,), generator=self._refresh_rng)
            r_lat = self.model.start_latents[real].float()
            r_act = self.model.start_actions[real].float()
            r_mask = torch.ones(r_lat.shape[:2], dtype=torch.bool)
            real_loss, _ = rssm.loss(r_lat, r_act, torch.zeros(r_lat.shape[:2]), torch.zeros_like(r_mask), r_mask,
                                     reward_mask=torch.zeros_like(r_mask), generator=self._refresh_rng)
            total = loss + real_loss
            self._refresh_opt.zero_grad(set_to_none=True)
            total.backward()
            torch.nn.utils.clip_grad_norm_(rssm.parameters(), 100.0)
            self._refresh_opt.step()
            losses.append(total.item())
        for p in rssm.parameters():
            p.requires_grad_(False)
        rssm.eval()
        return {"refresh/rssm_loss": sum(losses) / len(losses)}

    def make_observer(self, readers: "Sequence[Reader]" = (), state_filter: "StateFilterConfig | None" = None,
                      odometry: "PusherOdometry | None" = None,
                      cube_track: "CubeTrack | None" = None,
                      robot_track: "RobotTrack | None" = None) -> "LatentObserver | StateObserver":
        """The deployment filter of real frames; ``readers`` (Push-T with ``local_model="state"`` only) refine
        the probe's readings in turn (:mod:`fog_envs.wm.readers`); ``state_filter`` (``local_model="state"``
        only) fuses them with the state model's prediction (:mod:`fog_envs.learned.state_filter`); ``odometry``
        (Push-T with ``local_model="state"``) dead-reckons the pusher (:mod:`fog_envs.wm.pusher_odometry`);
        ``cube_track`` (the cube task with ``local_model="state"``) finds the cube in the frame and remembers it
        while out of view (:mod:`fog_envs.wm.cube_finder`), and ``robot_track`` (the same) finds the robot's pose
        in what the frame shows of the arena (:mod:`fog_envs.wm.robot_finder`)."""
        if state_filter is not None and self.state_local is None:
            raise ValueError("state_filter needs local_model='state' (the RSSM filters the frames itself)")
        if (readers or odometry is not None) and (self.state_local is None or self.model.config.task != "pusht"):
            raise ValueError(f"readers and odometry need the Push-T task with local_model='state'; this env is "
                             f"{self.model.config.task!r} with local_model="
                             f"{'state' if self.state_local is not None else 'rssm'!r}")
        if (cube_track is not None or robot_track is not None) and (
                self.state_local is None or self.model.config.task != "cube"):
            raise ValueError(f"cube_track and robot_track need the cube task with local_model='state'; this env is "
                             f"{self.model.config.task!r} with local_model="
                             f"{'state' if self.state_local is not None else 'rssm'!r}")
        if self.state_local is not None:
            from fog_envs.learned.state_local import StateObserver

            return StateObserver(self.state_local, readers, state_filter, odometry, cube_track, robot_track)
        return LatentObserver(self.model)


class LatentObserver:
    """Deployment filter: the RSSM posterior over real frames (encoded by the autoencoder)."""

    def __init__(self, model: WorldModel) -> None:
        self.model = model
        self.device = model.start_latents.device
        self.x: torch.Tensor | None = None

    @torch.no_grad()
    def _encode(self, obs: np.ndarray) -> torch.Tensor:
        return self.model.autoencoder.encode(torch.as_tensor(np.asarray(obs), device=self.device)[None])

    @torch.no_grad()
    def reset(self, obs: np.ndarray) -> torch.Tensor:
        z = self._encode(obs)
        a = torch.zeros(1, 1, self.model.task.action_dim, device=self.device)
        self.x = self.model.filter_window(z[:, None], a)
        return self.x[0]

    @torch.no_grad()
    def update(self, action: np.ndarray, obs: np.ndarray) -> torch.Tensor:
        a = torch.as_tensor(np.asarray(action, dtype=np.float32), device=self.device)[None]
        self.x = self.model.filter_step(self.x, a, self._encode(obs))
        return self.x[0]
