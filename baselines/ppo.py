"""SB3 PPO inside a learned env, zero-shot evaluation on the reference system, resumable run directory.

Run directory (``run_dir``)::

    config.json                  resolved configuration
    tb/                          TensorBoard: SB3's own scalars + the FoG agent's tags (train/*, time/*, eval/*)
    metrics.jsonl                one row per PPO rollout (see ``baselines.callbacks``)
    evals.jsonl                  one row per zero-shot evaluation
    checkpoints/ppo_<steps>.zip, latest.zip   (+ vecnormalize_<steps>.pkl, vecnormalize_latest.pkl)
    eval.json, videos/, learning_curve.png    the final report

Rerunning the same command after a kill loads ``checkpoints/latest.zip`` and trains on to the same budget.
The budget counts imagined env steps; SB3 finishes the rollout in progress, so a run ends at the first
multiple of ``n_steps × num_envs`` at or above ``total_timesteps``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import VecEnv, VecFrameStack, VecMonitor, VecNormalize

from baselines.callbacks import RunCallback
from baselines.controller import LatentPPOController, PPOController
from baselines.run_io import append_jsonl, atomic_write_json, plot_learning_curve, read_jsonl, truncate_jsonl
from baselines.vec_env import make_learned_vec_env
from fog_agent.controller import FogController
from fog_envs.evaluation import evaluate
from fog_envs.runtime import resolve_device

#: config fields that may differ when a run is resumed (everything else must match config.json)
RESUMABLE_FIELDS = ("total_timesteps", "device", "eval_every", "eval_episodes", "final_eval_episodes",
                    "video_episodes", "checkpoint_every", "stop_after_steps", "threads", "progress")


@dataclass(frozen=True)
class PPOConfig:
    """PPO baseline in a learned env. Hyperparameters start from rl-baselines3-zoo's ``CarRacing-v3``
    (64×64 pixels, continuous actions; research/ecosystem.md §4.4); changes are noted per field."""

    env_id: str = "WMPushT-v0"
    """learned env id (WMPushT-v0, WMPushCube-v0, WMToy-v0)"""
    obs_type: Literal["pixels", "latent"] = "pixels"
    """'pixels' (64×64×3 uint8 through SB3's NatureCNN) or 'latent' (RSSM features through an MLP)"""
    total_timesteps: int = 614_400
    """budget in imagined env steps (all envs together). Default: the FoG agent's ``cpu`` preset
    (600 iterations × 64 envs × horizon 16). Zoo: 4e6 env steps"""
    num_envs: int = 64
    """parallel imagined envs, stepped in one model call. Zoo: 8. More envs amortise each world-model call
    (the binding cost) and match the FoG agent's 64"""
    max_episode_steps: int | None = 64
    """imagined episode length before re-spawning from a real window (the FoG agent's episode_steps);
    None: the env id's registered length. World-model rollouts drift over long horizons; truncations are
    bootstrapped (TimeLimit.truncated), so the task is still the discounted infinite-horizon one"""
    seed: int = 0
    run_dir: str = "runs/ppo_pusht"
    device: str = "auto"
    """torch device of the policy and the world model ('auto': CUDA if available)"""
    world_model: str | None = None
    """bundle name or path (default: the env's shipped bundle)"""
    forward_model: str = "diffusion"
    """'diffusion', 'rssm' (the 'no diffusion' ablation) or 'reference' (the reference system itself)"""
    denoising_steps: int | None = None

    # --- zero-shot evaluation and checkpoints ---------------------------------------------------------
    eval_env_id: str | None = "auto"
    """reference system for zero-shot evaluation ('auto': the learned env's, none for WMToy-v0; None: skip)"""
    eval_every: int = 102_400
    """imagined steps between zero-shot evaluations (0: only the final one); default as the FoG agent's
    (every 100 iterations of 64 × 16 steps)"""
    eval_episodes: int = 10
    final_eval_episodes: int = 50
    video_episodes: int = 3
    """videos of the final evaluation's first episodes (run_dir/videos)"""
    checkpoint_every: int = 50_000
    """imagined steps between checkpoints (one is always written at the end)"""
    stop_after_steps: int | None = None
    """checkpoint and stop (as if killed) once this call has taken this many steps; for tests"""
    threads: int = 0
    """torch CPU threads (0: torch's default)"""
    progress: bool = True
    """show a progress bar"""

    # --- PPO (zoo CarRacing-v3 unless noted) ------------------------------------------------------------
    n_steps: int = 64
    """steps per env per rollout. Zoo: 512 with 8 envs; 64 × 64 envs keeps the zoo's 4096-step rollout
    while each env's segment matches the 64-step imagined episode"""
    batch_size: int = 256
    """minibatch size. Zoo: 128; 256 halves the CPU update cost per rollout (16 minibatches × 10 epochs)"""
    n_epochs: int = 10
    gamma: float = 0.99
    gae_lambda: float = 0.95
    learning_rate: float = 1e-4
    lr_schedule: Literal["linear", "constant"] = "linear"
    """zoo: lin_1e-4 (linear decay to 0 over the budget; continues correctly across resumes)"""
    clip_range: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    use_sde: bool = True
    sde_sample_freq: int = 4
    normalize_reward: bool = True
    """VecNormalize(norm_reward=True) as in the zoo; its statistics are checkpointed with the model"""
    normalize_obs: bool = False
    """VecNormalize(norm_obs); zoo: False for images. Worth trying for latent obs (zoo's MuJoCo setting)"""
    frame_stack: int = 2
    """stacked frames, pixel obs only (latent RSSM features already carry the history). Zoo also uses
    FrameSkip(2), grayscale and a resize; dropped: the learned env's control rate, colours and 64×64 frames
    must be the reference system's so the policy runs there unchanged"""
    log_std_init: float = -2.0
    ortho_init: bool = False
    activation_fn: Literal["gelu", "relu", "tanh"] = "gelu"
    net_arch: tuple[int, ...] = (256,)
    """hidden layers of both the policy and the value head (zoo: pi=[256], vf=[256])"""


class LinearDecay:
    """``progress_remaining × initial`` (SB3 schedule; picklable by reference, unlike a lambda)."""

    def __init__(self, initial: float) -> None:
        self.initial = initial

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.initial


def env_kwargs(cfg: PPOConfig) -> dict[str, Any]:
    """Keyword arguments of the learned env, as the FoG agent builds them."""
    kwargs: dict[str, Any] = {"device": str(resolve_device(cfg.device)), "forward_model": cfg.forward_model}
    if cfg.world_model is not None:
        kwargs["world_model"] = cfg.world_model
    if cfg.denoising_steps is not None:
        kwargs["denoising_steps"] = cfg.denoising_steps
    return kwargs


def make_env(cfg: PPOConfig) -> VecEnv:
    """Learned env → ``VecMonitor`` → ``VecFrameStack`` (pixels) → ``VecNormalize`` (if any normalisation)."""
    env: VecEnv = make_learned_vec_env(cfg.env_id, cfg.num_envs, obs_type=cfg.obs_type,
                                       max_episode_steps=cfg.max_episode_steps, **env_kwargs(cfg))
    env = VecMonitor(env)
    if cfg.obs_type == "pixels" and cfg.frame_stack > 1:
        env = VecFrameStack(env, cfg.frame_stack)
    if cfg.normalize_obs or cfg.normalize_reward:
        env = VecNormalize(env, norm_obs=cfg.normalize_obs, norm_reward=cfg.normalize_reward, gamma=cfg.gamma)
    return env


def policy_kwargs(cfg: PPOConfig) -> dict[str, Any]:
    act = {"gelu": torch.nn.GELU, "relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}[cfg.activation_fn]
    return {"log_std_init": cfg.log_std_init, "ortho_init": cfg.ortho_init, "activation_fn": act,
            "net_arch": {"pi": list(cfg.net_arch), "vf": list(cfg.net_arch)}}


def make_model(cfg: PPOConfig, env: VecEnv) -> PPO:
    """A fresh PPO with ``cfg``'s hyperparameters."""
    lr = LinearDecay(cfg.learning_rate) if cfg.lr_schedule == "linear" else cfg.learning_rate
    return PPO("CnnPolicy" if cfg.obs_type == "pixels" else "MlpPolicy", env, learning_rate=lr,
               n_steps=cfg.n_steps, batch_size=cfg.batch_size, n_epochs=cfg.n_epochs, gamma=cfg.gamma,
               gae_lambda=cfg.gae_lambda, clip_range=cfg.clip_range, ent_coef=cfg.ent_coef, vf_coef=cfg.vf_coef,
               max_grad_norm=cfg.max_grad_norm, use_sde=cfg.use_sde, sde_sample_freq=cfg.sde_sample_freq,
               policy_kwargs=policy_kwargs(cfg), seed=cfg.seed, device=resolve_device(cfg.device))


def env_seed(cfg: PPOConfig) -> int:
    """The seed of the first reset: env i gets ``seed·num_envs + i``, so runs with seeds 0, 1, 2 share no env
    stream (SB3 would seed env i with ``seed + i``: N − 1 streams in common between consecutive seeds)."""
    return cfg.seed * cfg.num_envs


def eval_env_for(cfg: PPOConfig, env: VecEnv) -> str | None:
    """The reference system to evaluate on (``None``: no evaluation)."""
    if cfg.eval_env_id != "auto":
        return cfg.eval_env_id
    return env.unwrapped.get_attr("reference_env_id", [0])[0]


def make_controller(model: PPO, cfg: PPOConfig, env: VecEnv,
                    vec_norm: VecNormalize | None) -> PPOController | FogController:
    """A zero-shot controller for the reference system: pixel policies read its frames directly, latent
    policies read the learned env's RSSM filter over them (as the FoG agent does)."""
    norm = vec_norm.normalize_obs if vec_norm is not None and vec_norm.norm_obs else None
    if cfg.obs_type == "pixels":
        return PPOController(model, cfg.frame_stack, norm)
    return LatentPPOController(model, make_observer(env), norm)


def make_observer(env: VecEnv):
    """The learned env's filter over reference-system frames (``NotImplementedError`` if it has none)."""
    return env.unwrapped.venv.unwrapped.make_observer()


class Checkpoints:
    """``checkpoints/ppo_<steps>.zip`` + ``latest.zip`` (and VecNormalize statistics), written atomically."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.latest = self.dir / "latest.zip"

    def save(self, model: PPO) -> None:
        """Write the model (and its VecNormalize statistics) at ``model.num_timesteps``; ``latest`` last."""
        steps = model.num_timesteps
        vec_norm = model.get_vec_normalize_env()
        if vec_norm is not None:
            self._atomic(lambda p: vec_norm.save(p), f"vecnormalize_{steps}.pkl", "vecnormalize_latest.pkl")
        self._atomic(lambda p: model.save(p), f"ppo_{steps}.zip", "latest.zip")

    def load(self, env: VecEnv, device: torch.device) -> PPO:
        """The latest model, attached to ``env`` (whose VecNormalize, if any, gets the saved statistics)."""
        model = PPO.load(self.latest, env=None, device=device)
        if isinstance(env, VecNormalize):
            exact = self.dir / f"vecnormalize_{model.num_timesteps}.pkl"
            path = exact if exact.exists() else self.dir / "vecnormalize_latest.pkl"
            env = VecNormalize.load(str(path), env.venv)
        model.set_env(env)
        return model

    def _atomic(self, write: Callable[[Path], None], *names: str) -> None:
        tmp = self.dir / f"tmp-{names[0]}"
        write(tmp)
        for name in names[1:]:
            copy = self.dir / f"tmp-copy-{name}"
            shutil.copyfile(tmp, copy)
            os.replace(copy, self.dir / name)
        os.replace(tmp, self.dir / names[0])


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def _check_resumable(run: Path, cfg: PPOConfig) -> None:
    saved = read_json(run / "config.json") if (run / "config.json").exists() else {}
    given = json.loads(json.dumps(asdict(cfg)))
    diff = {k: (saved[k], v) for k, v in given.items()
            if k not in RESUMABLE_FIELDS and k in saved and saved[k] != v}
    if diff:
        raise ValueError(f"{run} holds a run with another configuration, {{field: (saved, given)}} = {diff}; "
                         "use another run_dir, or the same settings to resume")


def train_ppo(cfg: PPOConfig, on_rollout: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train (or resume) PPO; return the final zero-shot evaluation, or the last metrics row without one.

    ``on_rollout`` receives each rollout's metrics row (e.g. for a progress bar). The result has
    ``stopped=True`` when ``stop_after_steps`` ended the call early.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    run = Path(cfg.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    ckpts = Checkpoints(run / "checkpoints")
    env = make_env(cfg)
    eval_env_id = eval_env_for(cfg, env)
    if eval_env_id is not None and cfg.obs_type == "latent":
        try:  # fail before training, not at the first evaluation
            make_observer(env)
        except NotImplementedError:
            env.close()
            raise
    wall_offset = 0.0
    if ckpts.latest.exists():
        _check_resumable(run, cfg)
        model = ckpts.load(env, device)
        model.set_random_seed(cfg.seed + model.num_timesteps)  # fresh episodes, reproducible resumes
        env.seed(env_seed(cfg) + model.num_timesteps)
        rows = truncate_jsonl(run / "metrics.jsonl", model.num_timesteps, key="imagined_steps")
        truncate_jsonl(run / "evals.jsonl", model.num_timesteps, key="imagined_steps")
        wall_offset = max((r.get("time/wall_s", 0.0) for r in rows), default=0.0)
    else:
        model = make_model(cfg, env)
        env.seed(env_seed(cfg))
        for name in ("metrics.jsonl", "evals.jsonl", "eval.json"):
            (run / name).unlink(missing_ok=True)
    atomic_write_json(run / "config.json", asdict(cfg))
    model.set_logger(configure(str(run / "tb"), ["tensorboard"]))
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run / "tb"), purge_step=model.num_timesteps or None)
    vec_norm = model.get_vec_normalize_env()

    def zero_shot(episodes: int, video_dir: Path | None) -> dict[str, Any]:
        result = evaluate(lambda: make_controller(model, cfg, env, vec_norm), eval_env_id, episodes=episodes,
                          seed=100_000, video_dir=video_dir, video_episodes=cfg.video_episodes if video_dir else 0)
        row = {"imagined_steps": model.num_timesteps, "wall_s": callback.wall_s(), **asdict(result)}
        append_jsonl(run / "evals.jsonl", row)
        for k in ("success_rate", "mean_return", "mean_max_coverage"):
            if row.get(k) is not None:
                writer.add_scalar(f"eval/{k}", row[k], model.num_timesteps)
        writer.flush()
        return row

    callback = RunCallback(
        writer, run / "metrics.jsonl", checkpoint=lambda: ckpts.save(model),
        evaluate=(lambda: zero_shot(cfg.eval_episodes, None)) if eval_env_id else None,
        checkpoint_every=cfg.checkpoint_every, eval_every=cfg.eval_every, wall_offset=wall_offset,
        stop_after_steps=cfg.stop_after_steps, on_rollout=on_rollout)
    remaining = cfg.total_timesteps - model.num_timesteps
    if remaining > 0:
        model.learn(remaining, callback=callback, reset_num_timesteps=False)
    result: dict[str, Any] = {"imagined_steps": model.num_timesteps, "stopped": callback.stopped}
    if not callback.stopped:
        if eval_env_id is not None:
            if remaining > 0 or not (run / "eval.json").exists():
                atomic_write_json(run / "eval.json", zero_shot(cfg.final_eval_episodes, run / "videos"))
            result = {**read_json(run / "eval.json"), "stopped": False}
        else:
            rows = read_jsonl(run / "metrics.jsonl")
            result = {**(rows[-1] if rows else {}), **result}
        plot_learning_curve(run / "metrics.jsonl", run / "evals.jsonl", run / "learning_curve.png",
                            f"PPO ({cfg.obs_type} obs) on {cfg.env_id}")
    writer.close()
    model.get_env().close()
    return result
