"""Fidelity of a world model on held-out real episodes: open-loop error of the diffusion model and of the
RSSM alone, read in pixels, rewards and physical state (through the state probe), plus gradient quality.

Open loop from real context: the model sees L real frames and the real actions, then predicts
``max(horizons)`` frames ahead feeding back its own outputs; errors are reported at each horizon. Next to
them, the "persist" reference: the last real context frame (through the autoencoder) copied forward, the
error of a model that predicts nothing moves. A forward model worth its cost beats it. Where the real
passive object (block, cube) moved, :func:`passive_response` asks whether the model moved it too: the gain of
the predicted displacement along the true one (1: as far, 0: not at all, like "persist") and their cosine.

Object permanence alone (:func:`hold_still`): a scene at rest (one real frame repeated as the whole context)
under zero actions, which on both reference systems means "stay" (Push-T: the agent's target is its
position; cube: zero body velocities). The true future is the start frame itself, so any change the model
makes is its own drift, read by the state probe against the probe's reading of the start frame (the
probe's bias cancels).

Gradient quality (:func:`gradient_cosine`, :func:`reference_gradient_cosine`): FoG's surrogate gradient of a
short-horizon return with respect to the actions against central differences through the diffusion model,
and, the measure that matters, against central differences through the reference system itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from fog_envs.wm.model import LocalModel, WorldModel
from fog_envs.wm.stages import PlayArrays, sample_window_starts

if TYPE_CHECKING:
    from fog_envs.learned.state_local import StateLocalModel


@dataclass(frozen=True)
class FidelityConfig:
    """What to measure and on how many windows."""

    horizons: tuple[int, ...] = (1, 4, 16)
    num_windows: int = 64
    batch: int = 32
    seed: int = 0
    denoising_steps: int | None = None
    grad_horizon: int = 4
    grad_windows: int = 32
    """held-out windows of the gradient cosine (8 proved too few: the v3 bundle read 0.18 on 8, 0.03 on 32)"""
    fd_eps: float = 0.05
    bf16: bool = False
    """sample the open-loop rollouts with the denoiser under bf16 autocast (as the learned envs do by default)"""


def _psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    mse = ((a.astype(np.float64) - b.astype(np.float64)) / 255.0) ** 2
    mse = mse.reshape(mse.shape[0], -1).mean(1)
    return 10 * np.log10(1.0 / np.maximum(mse, 1e-10))


def _windows(data: PlayArrays, context_len: int, horizon: int, cfg: FidelityConfig) -> np.ndarray:
    return sample_window_starts(data.episode_ends, context_len + horizon, cfg.num_windows, cfg.seed)


def _diffusion_open_loop(model: WorldModel, ctx: torch.Tensor, actions: torch.Tensor, horizon: int,
                         gen: torch.Generator, cfg: FidelityConfig, guide: "StateLocalModel | None" = None
                         ) -> torch.Tensor:
    """``horizon`` latents (B, H, C, h, w) sampled from context ``ctx`` (B, L, ...), each fed back as context;
    step k sees the actions ``actions[:, k:k + L]``. A state-guided model's states come from ``guide`` as in
    the learned envs: the probe reads the context's last two frames (decoded), the state model steps them
    open loop with the same actions."""
    L = ctx.shape[1]
    if model.state_guided and guide is None:
        raise ValueError("this world model's denoiser is state-guided: pass a state model (the guide) to measure it")
    x = guide.start_window(ctx, actions[:, :L]) if model.state_guided else None
    out, ctx_lat = [], ctx
    for k in range(horizon):
        state = None
        if x is not None:
            x_next = guide.step(x, actions[:, k + L - 1])
            state, x = guide.guide_states(x, x_next), x_next
        z = model.next_latent(ctx_lat, actions[:, k:k + L], gen, cfg.denoising_steps, bf16=cfg.bf16, state=state)
        out.append(z)
        ctx_lat = torch.cat([ctx_lat[:, 1:], z[:, None]], dim=1)
    return torch.stack(out, 1)


RESPONSE_TOL = 0.01
"""probe units: a window counts for :func:`passive_response` when its passive object's probe reading (Push-T:
position / 512 and cos, sin of the angle, so 5 px or 0.6°; the cube: metres and cos, sin of 4·yaw) moved
farther than this between the last context frame and the judged one"""


def passive_response(pred: np.ndarray, pred_start: np.ndarray, true: np.ndarray, true_start: np.ndarray,
                     dims: tuple[int, ...], tol: float = RESPONSE_TOL) -> tuple[np.ndarray, np.ndarray]:
    """Did the model move the passive object where the real one moved? For the rows (B, P) of probe readings
    whose true displacement ``d = (true − true_start)[dims]`` is longer than ``tol``: the gain
    ``⟨d̂, d⟩ / |d|²`` of the predicted displacement ``d̂ = (pred − pred_start)[dims]`` (1: as far as the real
    object along its direction, 0: not at all) and the cosine of ``d̂`` and ``d`` (0 where ``d̂ = 0``).
    Returns ``(gain, cosine)``, one entry per such row."""
    idx = list(dims)
    d = (np.asarray(true, np.float64) - np.asarray(true_start, np.float64))[:, idx]
    d_hat = (np.asarray(pred, np.float64) - np.asarray(pred_start, np.float64))[:, idx]
    norm = np.linalg.norm(d, axis=1)
    keep = norm > tol
    d, d_hat, norm = d[keep], d_hat[keep], norm[keep]
    dot = (d * d_hat).sum(1)
    norm_hat = np.linalg.norm(d_hat, axis=1)
    cos = np.where(norm_hat > 0, dot / np.maximum(norm * norm_hat, 1e-12), 0.0)
    return dot / norm**2, cos


def _summary(per: dict[str, dict[int, dict[str, list]]], stats: dict) -> dict[str, dict]:
    """``{kind: {str(h): {f"{metric}_{stat}": value}}}`` from the per-sample lists."""
    return {kind: {str(h): {f"{k}_{stat}": float(fn(v)) for k, v in m.items() for stat, fn in stats.items()}
                   for h, m in by_h.items()} for kind, by_h in per.items()}


@torch.no_grad()
def open_loop(model: WorldModel, data: PlayArrays, cfg: FidelityConfig = FidelityConfig(),
              guide: "StateLocalModel | None" = None) -> dict[str, dict]:
    """Errors of the diffusion model (``"diffusion"``) and of the RSSM alone (``"rssm"``) at each horizon,
    the copy-the-last-frame reference (``"persist"``), and two floors: the true future frame through the
    autoencoder (``"autoencoder"``: what a perfect latent model would score, every figure read the same way)
    and the probe on the real frame itself (``"real"``). With passive objects, ``passive_gain`` and
    ``passive_cos`` (:func:`passive_response`; displacements from the probe's reading of the last context
    frame as the same kind sees it: decoded for the models, real for ``"real"``) and, per horizon,
    ``passive_moving_windows`` under ``"windows_moved"``. ``guide``: the state model a state-guided world model
    needs (:func:`_diffusion_open_loop`)."""
    spec = model.task
    L, H = model.context_len, max(cfg.horizons)
    starts = _windows(data, L, H, cfg)
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    per: dict[str, dict[int, dict[str, list]]] = {m: {h: {} for h in cfg.horizons}
                                                  for m in ("diffusion", "rssm", "persist", "autoencoder", "real")}

    def add(kind: str, h: int, name: str, values: np.ndarray) -> None:
        per[kind][h].setdefault(name, []).extend(np.asarray(values, dtype=np.float64).tolist())

    moved = {h: 0 for h in cfg.horizons}
    for i in range(0, len(starts), cfg.batch):
        s = starts[i:i + cfg.batch]
        rows = s[:, None] + np.arange(L + H)[None]
        frames = torch.from_numpy(data.frames[rows]).to(device)
        actions = torch.from_numpy(data.actions[rows]).to(device)
        latents = model.autoencoder.encode(frames)
        ctx, ctx_act = latents[:, :L], actions[:, :L]
        diff_lat = _diffusion_open_loop(model, ctx, actions, H, gen, cfg, guide)
        rssm_lat = model.rssm_open_loop(ctx, ctx_act, actions[:, L - 1:L - 1 + H])
        persist = ctx[:, -1:].expand(-1, H, *ctx.shape[2:])
        true_start = data.probe[rows[:, L - 1]]
        start_read = {"real": model.probe(torch.from_numpy(data.frames[rows[:, L - 1]]).to(device)).cpu().numpy(),
                      "decoded": model.probe(model.autoencoder.decode(ctx[:, -1])).cpu().numpy()}

        def respond(kind: str, h: int, probe: np.ndarray, start: np.ndarray, true_probe: np.ndarray) -> None:
            if spec.passive_dims:
                gain, cos = passive_response(probe, start, true_probe, true_start, spec.passive_dims)
                add(kind, h, "passive_gain", gain)
                add(kind, h, "passive_cos", cos)

        for h in cfg.horizons:
            t = rows[:, L + h - 1]
            real = data.frames[t]
            true_probe = data.probe[t]
            if spec.passive_dims:
                moved[h] += len(passive_response(true_probe, true_start, true_probe, true_start, spec.passive_dims)[0])
            add("real", h, "ae_psnr", _psnr(model.autoencoder.decode(latents[:, L + h - 1]).cpu().numpy(), real))
            probe_real = model.probe(torch.from_numpy(real).to(device)).cpu().numpy()
            for name, err in spec.probe_errors(probe_real, true_probe).items():
                add("real", h, f"probe_{name}", err)
            respond("real", h, probe_real, start_read["real"], true_probe)
            for kind, lat in (("diffusion", diff_lat), ("rssm", rssm_lat), ("persist", persist),
                              ("autoencoder", latents[:, L:])):
                z = lat[:, h - 1]
                img = model.autoencoder.decode(z)
                pred = img.cpu().numpy()
                add(kind, h, "psnr", _psnr(pred, real))
                add(kind, h, "frame_mse", (((pred.astype(np.float64) - real) / 255.0) ** 2).reshape(len(s), -1).mean(1))
                rew = model.reward(z)["reward"].cpu().numpy()
                add(kind, h, "reward_abs_err", np.abs(rew - data.rewards[t - 1]))
                probe = model.probe(img).cpu().numpy()
                for name, err in spec.probe_errors(probe, true_probe).items():
                    add(kind, h, f"probe_{name}", err)
                if kind != "persist":  # persist's displacement is zero by construction
                    respond(kind, h, probe, start_read["decoded"], true_probe)
    out: dict[str, dict] = _summary(per, {"median": np.median, "mean": np.mean})
    out["windows"] = int(len(starts))
    if spec.passive_dims:
        out["windows_moved"] = {str(h): int(n) for h, n in moved.items()}
    return out


@torch.no_grad()
def reconstruction(autoencoder: torch.nn.Module, probe: torch.nn.Module, spec, frames: np.ndarray,
                   probe_targets: np.ndarray, batch: int = 256) -> dict[str, dict[str, list[float]]]:
    """Per-frame errors of the autoencoder alone, the floor of every latent model: ``"autoencoder"`` (the
    reconstruction: PSNR and the probe's errors read on it) and ``"real"`` (the probe on the real frame).

    ``spec`` is the task (:class:`fog_envs.wm.tasks.TaskSpec`); ``frames`` (N, H, W, 3) uint8 with their
    ``probe_targets`` (N, P).
    """
    device = next(probe.parameters()).device
    per: dict[str, dict[str, list[float]]] = {"autoencoder": {}, "real": {}}

    def add(kind: str, name: str, values: np.ndarray) -> None:
        per[kind].setdefault(name, []).extend(np.asarray(values, dtype=np.float64).tolist())

    for i in range(0, len(frames), batch):
        real = frames[i:i + batch]
        x = torch.from_numpy(real).to(device)
        recon = autoencoder.decode(autoencoder.encode(x))
        add("autoencoder", "psnr", _psnr(recon.cpu().numpy(), real))
        for kind, img in (("autoencoder", recon), ("real", x)):
            for name, err in spec.probe_errors(probe(img).cpu().numpy(), probe_targets[i:i + batch]).items():
                add(kind, f"probe_{name}", err)
    return per


@torch.no_grad()
def hold_still(model: WorldModel, data: PlayArrays, cfg: FidelityConfig = FidelityConfig(),
               guide: "StateLocalModel | None" = None) -> dict[str, dict]:
    """Drift of a scene at rest under zero actions, per horizon, for the diffusion model (``"diffusion"``) and
    the RSSM alone (``"rssm"``): the state probe on the generated frame against the probe on the start frame
    (through the autoencoder), and the PSNR between the two frames. Start frames: the last context frame of
    the same held-out windows as :func:`open_loop`."""
    spec = model.task
    L, H = model.context_len, max(cfg.horizons)
    starts = _windows(data, L, H, cfg)
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    per: dict[str, dict[int, dict[str, list]]] = {m: {h: {} for h in cfg.horizons} for m in ("diffusion", "rssm")}
    for i in range(0, len(starts), cfg.batch):
        s = starts[i:i + cfg.batch]
        frames = torch.from_numpy(data.frames[s + L - 1]).to(device)
        start = model.autoencoder.encode(frames)
        ctx = start[:, None].expand(-1, L, *start.shape[1:]).contiguous()
        zeros = torch.zeros(len(s), L + H, spec.action_dim, device=device)
        held = model.autoencoder.decode(start)
        probe_held = model.probe(held).cpu().numpy()
        held = held.cpu().numpy()
        lats = {"diffusion": _diffusion_open_loop(model, ctx, zeros, H, gen, cfg, guide),
                "rssm": model.rssm_open_loop(ctx, zeros[:, :L], zeros[:, :H])}
        for kind, lat in lats.items():
            for h in cfg.horizons:
                img = model.autoencoder.decode(lat[:, h - 1])
                bucket = per[kind][h]
                bucket.setdefault("psnr", []).extend(_psnr(img.cpu().numpy(), held).tolist())
                errs = spec.probe_errors(model.probe(img).cpu().numpy(), probe_held)
                for name, err in errs.items():
                    bucket.setdefault(f"probe_{name}", []).extend(np.asarray(err, dtype=np.float64).tolist())
    out: dict[str, dict] = _summary(per, {"median": np.median})
    out["windows"] = int(len(starts))
    return out


@dataclass(frozen=True)
class _GradientProblem:
    """Held-out windows for the gradient checks: real context, the real future actions, fixed sampler noise."""

    rows: np.ndarray  # (B, L + H) dataset rows
    ctx: torch.Tensor  # (B, L, C, h, w) encoded real context
    ctx_actions: torch.Tensor  # (B, L, A)
    future: torch.Tensor  # (B, H, A) the real actions from the last context frame on
    noise: torch.Tensor  # (H, B, C, h, w)
    ctx_noise: torch.Tensor  # (H, B, L, C, h, w)


def _gradient_problem(model: WorldModel, data: PlayArrays, cfg: FidelityConfig) -> _GradientProblem:
    L, H = model.context_len, cfg.grad_horizon
    starts = _windows(data, L, H, FidelityConfig(num_windows=cfg.grad_windows, seed=cfg.seed + 1))
    device = next(model.parameters()).device
    rows = starts[:, None] + np.arange(L + H)[None]
    frames = torch.from_numpy(data.frames[rows[:, :L]]).to(device)
    actions = torch.from_numpy(data.actions[rows]).to(device).float()
    with torch.no_grad():
        ctx = model.autoencoder.encode(frames)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    noise = torch.randn((H, len(starts)) + tuple(ctx.shape[2:]), generator=gen, device=device)
    ctx_noise = torch.randn((H,) + tuple(ctx.shape), generator=gen, device=device)
    return _GradientProblem(rows, ctx, actions[:, :L], actions[:, L - 1:L - 1 + H].clone(), noise, ctx_noise)


def _central_differences(total_return: Callable[[torch.Tensor], torch.Tensor], future: torch.Tensor,
                         eps: float) -> torch.Tensor:
    """(B, H·A) central differences of ``total_return`` ((B', H, A) -> (B',), B' = k·B stacked) at ``future``."""
    b, h, a_dim = future.shape
    dims = h * a_dim
    eye = torch.eye(dims, device=future.device).reshape(dims, h, a_dim)
    plus = (future[None] + eps * eye[:, None]).reshape(-1, h, a_dim)
    minus = (future[None] - eps * eye[:, None]).reshape(-1, h, a_dim)
    with torch.no_grad():
        fd = (total_return(plus) - total_return(minus)).reshape(dims, b) / (2 * eps)
    return fd.T


def _diffusion_return(model: WorldModel, p: _GradientProblem) -> Callable[[torch.Tensor], torch.Tensor]:
    """Sum of global rewards over H diffusion steps (fixed noise) for stacked action sequences (k·B, H, A)."""
    b = p.ctx.shape[0]

    def total_return(future: torch.Tensor) -> torch.Tensor:
        reps = future.shape[0] // b
        c = p.ctx.repeat(reps, 1, 1, 1, 1)
        acts = p.ctx_actions.repeat(reps, 1, 1).clone()
        total = torch.zeros(future.shape[0], device=future.device)
        for k in range(future.shape[1]):
            acts = torch.cat([acts[:, 1:], future[:, k:k + 1]], 1) if k else torch.cat([acts[:, :-1], future[:, :1]], 1)
            z = model.next_latent_fixed(c, acts, p.noise[k].repeat(reps, 1, 1, 1),
                                        p.ctx_noise[k].repeat(reps, 1, 1, 1, 1))
            total = total + model.reward(z)["reward"]
            c = torch.cat([c[:, 1:], z[:, None]], 1)
        return total

    return total_return


def _cosines(prefix: str, a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    cos = torch.nn.functional.cosine_similarity(a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1), dim=1)
    return {f"{prefix}_mean": float(cos.mean()), f"{prefix}_median": float(cos.median())}


def gradient_cosine(model: WorldModel, data: PlayArrays, cfg: FidelityConfig = FidelityConfig()) -> dict[str, float]:
    """Cosine between the RSSM-surrogate gradient of an H-step return w.r.t. the actions and a central
    finite-difference estimate through the diffusion model with fixed noise (same start windows)."""
    p = _gradient_problem(model, data, cfg)
    fd = _central_differences(_diffusion_return(model, p), p.future, cfg.fd_eps)
    surrogate = model.surrogate_action_gradient(p.ctx, p.ctx_actions, p.future, p.noise, p.ctx_noise)
    return {**_cosines("grad_cosine", surrogate, fd), "grad_windows": int(len(p.rows)),
            "grad_horizon": int(cfg.grad_horizon)}


def _reference_differences(model: WorldModel, data: PlayArrays, p: _GradientProblem,
                           cfg: FidelityConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Central differences (B, H·A) of the H-step true return through the reference system, restarted at rest
    from each window's true state at its last context frame; the encoded frames (B, H, C, h, w) of the
    unperturbed rollouts and their true states in probe units (B, H + 1, P), the start included."""
    import gymnasium as gym

    b, horizon = len(p.rows), p.future.shape[1]
    starts = data.state[p.rows[:, model.context_len - 1]]
    env = gym.make(model.task.real_env_id, disable_env_checker=True).unwrapped
    frames: list[np.ndarray] = []
    states: list[np.ndarray] = []

    def reference_return(future: torch.Tensor, keep_frames: bool = False) -> torch.Tensor:
        total = np.zeros(len(future))
        for j, seq in enumerate(future.cpu().numpy()):
            _, info = env.reset(options={"reset_to_state": starts[j % b]})
            if keep_frames:
                states.append(info["state"])
            for a in seq:
                obs, rew, _, _, info = env.step(np.clip(a, -1.0, 1.0))
                total[j] += rew
                if keep_frames:
                    frames.append(obs)
                    states.append(info["state"])
        return torch.as_tensor(total, dtype=torch.float32, device=future.device)

    try:
        true_fd = _central_differences(reference_return, p.future, cfg.fd_eps)
        reference_return(p.future, keep_frames=True)
    finally:
        env.close()
    with torch.no_grad():
        latents = model.autoencoder.encode(torch.from_numpy(np.stack(frames)).to(p.ctx.device))
    true_states = torch.from_numpy(model.task.probe_targets(np.stack(states))).to(p.ctx.device)
    return true_fd, latents.reshape(b, horizon, *p.ctx.shape[2:]), true_states.reshape(b, horizon + 1, -1)


OBJECT_MOVED_TOL = 2e-3
"""probe units (px / 512 for Push-T, ~1 px; m for the cube): a passive object that moved more than this in a
window was pushed in it"""


def object_moved(states: torch.Tensor, passive_dims: tuple[int, ...]) -> torch.Tensor:
    """(B,) bool: whether any passive dimension of states (B, T, P) left its first value by more than
    :data:`OBJECT_MOVED_TOL` within the window."""
    if not passive_dims:
        return torch.zeros(states.shape[0], dtype=torch.bool, device=states.device)
    passive = states[..., list(passive_dims)]
    return (passive - passive[:, :1]).abs().amax(dim=(1, 2)) > OBJECT_MOVED_TOL


class _TrueStateReadings:
    """A state-space local model whose readings are the reference system's true states instead of the
    probe's (the local model's Jacobians alone, with perfect state estimation)."""

    def __init__(self, local: LocalModel, states: torch.Tensor) -> None:
        self.local, self.states, self.k = local, states, 0

    def start_window(self, latents: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        self.k = 0  # restarted from the true state at rest, as the reference rollouts are
        return self.local.start(self.states[:, 0])  # type: ignore[attr-defined]

    def filter_latent(self, x: torch.Tensor, action: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        self.k += 1
        return self.local.advance(x, self.states[:, self.k])  # type: ignore[attr-defined]

    def step(self, x: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.local.step(x, action)

    def reward(self, x: torch.Tensor) -> torch.Tensor:
        return self.local.reward(x)


def reference_gradient_cosine(model: WorldModel, data: PlayArrays, cfg: FidelityConfig = FidelityConfig(),
                              local: LocalModel | None = None) -> dict[str, float]:
    """Gradient quality against the truth. The true gradient of the H-step return w.r.t. the actions is taken
    by central differences through the reference system itself (deterministic physics restarted from each
    window's true state with ``reset_to_state``, at rest: the data holds no velocities) and compared with

    * ``true_cos_fog``: the RSSM surrogate along the diffusion model's frames (the gradient FoG trains with);
    * ``true_cos_rssm_on_reference``: the RSSM surrogate along the reference system's own frames (what an
      agent trained with ``forward_model="reference"`` gets: the local model's Jacobians alone);
    * ``true_cos_diffusion_fd``: central differences through the diffusion model (fixed noise);
    * ``true_cos_state_on_true_states`` (state-space local models only): that model's gradient along the
      true rollout with the true states as its readings (perfect state estimation).

    ``local``: the local model whose Jacobians are judged (default: the bundle's RSSM; e.g. a
    :class:`fog_envs.learned.state_local.StateLocalModel`). Same windows, noise and actions as
    :func:`gradient_cosine` (whose figure it also returns for the RSSM)."""
    p = _gradient_problem(model, data, cfg)
    true_fd, ref_latents, true_states = _reference_differences(model, data, p, cfg)
    diffusion_fd = _central_differences(_diffusion_return(model, p), p.future, cfg.fd_eps)
    fog = model.surrogate_gradient_along(
        p.ctx, p.ctx_actions, p.future,
        lambda k, c, a: model.next_latent_fixed(c, a, p.noise[k], p.ctx_noise[k]), local)
    on_reference = model.surrogate_gradient_along(p.ctx, p.ctx_actions, p.future,
                                                  lambda k, c, a: ref_latents[:, k], local)
    b = len(p.rows)
    extra: dict[str, float] = {}
    if hasattr(local, "advance"):  # a state-space local model: also with perfect state readings
        truth = _TrueStateReadings(local, true_states)
        on_truth = model.surrogate_gradient_along(p.ctx, p.ctx_actions, p.future,
                                                  lambda k, c, a: ref_latents[:, k], truth)
        extra = _cosines("true_cos_state_on_true_states", on_truth, true_fd)
        moving = object_moved(true_states, model.task.passive_dims)
        extra["windows_object_moved"] = int(moving.sum())
        for name, rows in (("moving", moving), ("resting", ~moving)):
            if rows.any():  # contact windows (the object was pushed) and the rest, judged apart
                extra.update(_cosines(f"true_cos_state_on_true_states_{name}", on_truth[rows], true_fd[rows]))
    return {**extra, **_cosines("true_cos_fog", fog, true_fd),
            **_cosines("true_cos_rssm_on_reference", on_reference, true_fd),
            **_cosines("true_cos_diffusion_fd", diffusion_fd, true_fd),
            **_cosines("grad_cosine", fog, diffusion_fd),
            "true_grad_norm_median": float(true_fd.norm(dim=1).median()),
            "grad_windows": int(b), "grad_horizon": int(cfg.grad_horizon)}
