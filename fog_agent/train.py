"""Train DMO-SAPO inside a learned env, evaluate zero-shot on the reference system, write a report.

Run directory layout (``--run-dir``)::

    config.json          resolved configuration
    tb/                  TensorBoard scalars (train/*, time/*, eval/*)
    metrics.jsonl        one row per iteration (reward, imagined steps, wall time, ...)
    evals.jsonl          one row per zero-shot evaluation
    checkpoints/latest.pt  agent + optimisers + RNG + imagined-env state: rerun the command to resume
    imagined.jsonl, checkpoints/best_imagined.pt   with --imagined-eval-every: the policy judged in the learned
                         world, and the checkpoint it judged best
    eval.json, videos/, learning_curve.png   the final report
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

import fog_envs  # noqa: F401  (registers the env ids)
from fog_agent.config import SAPOConfig, make_preset
from fog_agent.controller import FogController
from fog_agent.run_io import (append_jsonl, atomic_torch_save, atomic_write_json, checkpoint_path,
                              plot_learning_curve, truncate_jsonl)
from fog_agent.sapo import DMOSAPO
from fog_envs.evaluation import evaluate


@dataclass(frozen=True)
class AgentTrainConfig:
    """Train the FoG agent (DMO-SAPO) in a learned env."""

    env_id: str = "WMPushT-v0"
    """learned env id (WMPushT-v0, WMPushCube-v0, WMToy-v0)"""
    preset: str = "cpu"
    """debug | cpu | cpu-long | gpu"""
    run_dir: str = "runs/fog_pusht"
    seed: int = 0
    device: str = "cpu"
    world_model: str | None = None
    """bundle name or path (default: the env's shipped bundle)"""
    forward_model: str = "diffusion"
    """'diffusion' (FoG), 'rssm' (the 'no diffusion' ablation), 'reference' (diagnostic upper bound: the
    reference system itself produces the trajectories and rewards; the local model still supplies the gradients)
    or 'state' (the state model of local_model='state' dreams in physical-state space)"""
    gradient_model: str = "rssm"
    """'rssm' (FoG's decoupled gradient) or 'diffusion' (ablation: back-propagate through the sampler)"""
    local_model: str = "rssm"
    """'rssm' (FoG's RSSM) or 'state' (a state-space model on the probe's readings: observations and Jacobians
    in physical-state space, see fog_envs.learned.state_local)"""
    state_model: str | None = None
    """the state model of local_model='state' (bundle name or path; default: the task's shipped one)"""
    goal_starts: float = 0.0
    """forward_model='state' only: the fraction of imagined episodes that start with the object near its goal
    (the rest from real windows; see fog_envs.learned.wm_backend.WorldModelBackend). Push-T at γ 0.98, 0.25: the
    actors alone finish far more, deployed 96 % for one agent and no change for another (README item 28); the cube:
    the cube near the goal and the robot beside it on any side (README item 44)"""
    reset_starts: float = 0.0
    """forward_model='state' only: the fraction of imagined episodes that start as the reference system's resets
    do (the cube: the robot anywhere, at least 0.6 m from the cube; play's windows keep it within 0.5 m; README item
    36), disjoint from --goal-starts"""
    wall_starts: float = 0.0
    """forward_model='state' only: the fraction of imagined episodes that start as those resets do with the cube
    next to a wall, where the robot may not fit behind it (the cube; README item 46), disjoint from the two above"""
    state_ensemble: tuple[str, ...] = ()
    """forward_model='state' only: other state-model bundles (names or paths) whose disagreement with the world's
    own, times --disagreement-weight, each imagined step's reward loses (fog_envs.learned.disagreement)"""
    disagreement_weight: float = 0.0
    """λ of the ensemble penalty, in reward per unit of disagreement (the probe targets' units: metres on the cube)"""
    disagreement_dims: tuple[int, ...] = ()
    """the state columns the ensemble's disagreement is measured over (empty: all; the cube's positions: 0 1 4 5)"""
    ensemble_forward: bool = False
    """forward_model='state' only: each imagined episode is dreamt by one of the world's own state model and
    --state-ensemble's, drawn at its start (ME-TRPO's model ensembles; the gradient stays the own model's;
    fog_envs.learned.wm_backend.WorldModelBackend, README item 45)"""
    wall_penalty: float = 0.0
    """forward_model='state' only: w, each imagined step's reward loses up to w for the task's object within
    --wall-margin of a wall (the cube: from where a pushing robot cannot bring it back; fog_envs.learned.wall_penalty,
    README item 35); 0: none"""
    wall_margin: float = 0.2
    """with --wall-penalty: the distance from a wall (m) inside which the penalty grows from 0 to w"""
    coverage_cap: float | None = None
    """local_model='state', Push-T: the coverage up to which the reward's coverage term grows (None: the success
    threshold 0.95, as the reference system's reward; 1.0: the agent is paid for the pixels past success too)"""
    denoising_steps: int | None = None
    start_sigma: float | None = None
    """override the world model's sampler start (0: from pure noise; > 0: from the last latent noised to
    this σ, see fog_envs.wm.edm.EDMConfig.start_sigma)"""
    iterations: int | None = None
    """override the preset's iteration count"""
    local_refresh_steps: int | None = None
    """override the preset's RSSM refresh steps per iteration (0: off)"""
    reward_scale: float | None = None
    """override the preset's reward scale (see SAPOConfig.reward_scale)"""
    alpha_init: float | None = None
    """override the preset's initial entropy temperature"""
    target_entropy_scale: float | None = None
    """override the preset's target entropy, H̄ = −scale·|A| (larger: a less noisy policy in training)"""
    episode_steps: int | None = None
    """override the preset's imagined episode length (steps before re-spawning from a real window)"""
    horizon: int | None = None
    """override the preset's back-propagation horizon H"""
    gamma: float | None = None
    """override the preset's discount γ (the critics' targets, the actor's objective and a planner's scores)"""
    bootstrap: bool | None = None
    """override whether the actor objective adds the critics' value at segment ends"""
    state_grad_clip: float | None = None
    """override the preset's per-step state-gradient clip (see SAPOConfig.state_grad_clip)"""
    zeroth_order_weight: float | None = None
    """override the share of the likelihood-ratio estimate in the actor gradient (see
    SAPOConfig.zeroth_order_weight; 0: pure first order)"""
    init_from: str | None = None
    """a run directory (or its checkpoint) whose actor, critics, observation normaliser and temperature this
    fresh run starts from (fine-tuning, e.g. in another world of the same env): optimisers, counters, the
    learning-rate schedule and the RNG start fresh. Ignored when the run resumes from its own checkpoint"""
    eval_env_id: str | None = "auto"
    """reference system for zero-shot evaluation ('auto': the learned env's; None: skip)"""
    eval_every: int = 100
    """iterations between zero-shot evaluations"""
    eval_episodes: int = 10
    """episodes of each periodic zero-shot evaluation (0: none)"""
    final_eval_episodes: int = 50
    """episodes of the zero-shot evaluation after the last iteration (0: none, no eval.json)"""
    video_episodes: int = 3
    imagined_eval_every: int = 0
    """iterations between evaluations of the deterministic policy inside the learned world (fog_agent.imagined:
    --imagined-eval-episodes episodes of the reference system's length, the same starts every time, started as
    the reference system's resets start in a state world, else from the world's own windows; no reward
    penalties): logged as imagined/* and to imagined.jsonl, and the best checkpoint so far (success rate, then
    mean return) kept as checkpoints/best_imagined.pt (README item 37); 0: none"""
    imagined_eval_episodes: int = 100
    checkpoint_every: int = 10
    threads: int = 0
    stop_after: int | None = None
    """stop (as if killed) after this many iterations in this call; for tests"""

    def __post_init__(self) -> None:
        for name in ("eval_every", "eval_episodes", "final_eval_episodes", "video_episodes", "imagined_eval_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"AgentTrainConfig: {name} must be >= 0, got {getattr(self, name)}")
        if self.imagined_eval_every and self.imagined_eval_episodes < 1:
            raise ValueError(f"AgentTrainConfig: imagined_eval_episodes must be >= 1 with imagined_eval_every, got "
                             f"{self.imagined_eval_episodes}")


#: AgentTrainConfig fields that override the SAPOConfig field of the same name when set
SAPO_OVERRIDES = ("iterations", "local_refresh_steps", "reward_scale", "alpha_init", "target_entropy_scale",
                  "episode_steps", "horizon", "gamma", "bootstrap", "state_grad_clip", "zeroth_order_weight")


def resolve_sapo_config(cfg: AgentTrainConfig) -> SAPOConfig:
    """The preset with every override that is set."""
    overrides = {k: getattr(cfg, k) for k in SAPO_OVERRIDES if getattr(cfg, k) is not None}
    return replace(make_preset(cfg.preset), **overrides)


def make_envs(cfg: AgentTrainConfig, sapo: SAPOConfig):
    kwargs: dict[str, Any] = {"obs_type": "latent", "forward_model": cfg.forward_model, "device": cfg.device}
    if cfg.world_model is not None:
        kwargs["world_model"] = cfg.world_model
    if cfg.denoising_steps is not None:
        kwargs["denoising_steps"] = cfg.denoising_steps
    if cfg.start_sigma is not None:
        kwargs["start_sigma"] = cfg.start_sigma
    if cfg.gradient_model != "rssm":
        kwargs["gradient_model"] = cfg.gradient_model
    if cfg.goal_starts:
        kwargs["goal_starts"] = cfg.goal_starts
    if cfg.reset_starts:
        kwargs["reset_starts"] = cfg.reset_starts
    if cfg.wall_starts:
        kwargs["wall_starts"] = cfg.wall_starts
    if cfg.state_ensemble or cfg.disagreement_weight or cfg.disagreement_dims:
        kwargs.update(state_ensemble=tuple(cfg.state_ensemble), disagreement_weight=cfg.disagreement_weight,
                      disagreement_dims=tuple(cfg.disagreement_dims))
    if cfg.ensemble_forward:
        kwargs["ensemble_forward"] = True
    if cfg.wall_penalty:
        kwargs.update(wall_penalty=cfg.wall_penalty, wall_margin=cfg.wall_margin)
    kwargs.update(local_model_kwargs(cfg.local_model, cfg.state_model, reward_options_of(cfg)))
    return gym.make_vec(cfg.env_id, num_envs=sapo.num_envs, vectorization_mode="vector_entry_point",
                        max_episode_steps=sapo.episode_steps, **kwargs).unwrapped


def local_model_kwargs(local_model: str | None, state_model: str | None,
                       reward_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The learned-env keyword arguments that select the local model (none for the default RSSM) and the options of
    its reward formula (none when empty)."""
    out: dict[str, Any] = {}
    if local_model not in (None, "rssm"):
        out["local_model"] = local_model
    if state_model is not None:
        out["state_model"] = state_model
    if reward_options:
        out["reward_options"] = dict(reward_options)
    return out


def reward_options_of(cfg: AgentTrainConfig) -> dict[str, Any]:
    """The learned env's ``reward_options`` that ``cfg`` asks for (recorded in every checkpoint, so that evaluation
    builds the same env)."""
    return {} if cfg.coverage_cap is None else {"coverage_cap": cfg.coverage_cap}


def eval_env_for(cfg: AgentTrainConfig, envs) -> str | None:
    if cfg.eval_env_id != "auto":
        return cfg.eval_env_id
    return getattr(envs, "reference_env_id", None)


def warm_start(agent: DMOSAPO, source: str | Path, env_id: str) -> Path:
    """Load the actor, critics, observation normaliser and temperature of the agent checkpointed at ``source``
    (a run directory or a ``latest.pt``) into ``agent``; returns the checkpoint's path. Its env id, observation
    and action sizes and network widths must match."""
    path = checkpoint_path(source)
    if not path.is_file():
        raise FileNotFoundError(f"init_from: no agent checkpoint at {path}")
    ckpt = torch.load(path, weights_only=False, map_location=agent.device)
    if ckpt["env_id"] != env_id:
        raise ValueError(f"init_from: {path} holds an agent for {ckpt['env_id']}, this run trains in {env_id}")
    model = ckpt["agent"]["model"]
    ours = agent.state_dict()
    shapes = {k: (tuple(v.shape), tuple(ours[k].shape)) for k, v in model.items()
              if k in ours and v.shape != ours[k].shape}
    if set(model) != set(ours) or shapes:
        detail = f"shapes differ (theirs, ours): {shapes}" if shapes else \
            f"parameters differ: {sorted(set(model) ^ set(ours))}"
        raise ValueError(f"init_from: {path}'s agent does not fit this run's (observation size, action size or "
                         f"network widths): {detail}")
    agent.load_state_dict(model)
    return path


def make_judge(cfg: AgentTrainConfig, sapo: SAPOConfig):
    """The imagined evaluation of ``--imagined-eval-every``: ``agent -> summary`` over a fixed set of episodes."""
    from fog_agent.imagined import JUDGE_SEED, judge_env, rollout_outcomes, summarise

    envs, steps = judge_env(cfg.env_id, cfg.forward_model, cfg.imagined_eval_episodes,
                            "reset" if cfg.forward_model == "state" else "world", None, cfg.world_model,
                            cfg.local_model, cfg.state_model, fallback_steps=sapo.episode_steps,
                            reward_options=reward_options_of(cfg))
    return lambda agent: summarise(rollout_outcomes(lambda x: agent.act(x, deterministic=True), envs, steps,
                                                    JUDGE_SEED))


def better(row: dict[str, Any], best: dict[str, Any]) -> bool:
    """Whether an imagined evaluation beats the best so far: more successes, or as many and more return."""
    return (row["success_rate"], row["mean_return"]) > (best["success_rate"], best["mean_return"])


def train_agent(cfg: AgentTrainConfig, progress: bool = True) -> dict[str, Any]:
    """Train (or resume) the agent; returns the final evaluation (or the last metrics if no evaluation)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    sapo = resolve_sapo_config(cfg)
    run = Path(cfg.run_dir)
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    envs = make_envs(cfg, sapo)
    diff = envs.diff
    agent = DMOSAPO(diff.state_dim, diff.action_dim, sapo, seed=cfg.seed, device=cfg.device)
    ckpt_path = run / "checkpoints" / "latest.pt"
    wall_offset = 0.0
    best_imagined: dict[str, Any] | None = None
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, weights_only=False)
        agent.restore(ckpt["agent"])
        diff.set_state(ckpt["env"])
        wall_offset = ckpt["wall_s"]
        best_imagined = ckpt.get("best_imagined")
        for log in ("metrics.jsonl", "evals.jsonl", "imagined.jsonl"):
            truncate_jsonl(run / log, agent.iteration_count)
    else:
        # env i gets seed·N + i (Gymnasium gives env i the seed + i): runs with seeds 0, 1, 2 then share
        # no env stream, where seed + i would give them N − 1 streams in common
        diff.reset(seed=cfg.seed * sapo.num_envs)
        if cfg.init_from is not None:
            warm_start(agent, cfg.init_from, cfg.env_id)
        atomic_write_json(run / "config.json", {"train": asdict(cfg), "sapo": asdict(sapo)})
    eval_env_id = eval_env_for(cfg, envs)
    judge = make_judge(cfg, sapo) if cfg.imagined_eval_every else None
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run / "tb"))
    refresh = (lambda: envs.refresh_local_model(sapo.local_refresh_steps)) if sapo.local_refresh_steps else None
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sapo.iterations, initial=agent.iteration_count, desc=f"DMO-SAPO {cfg.env_id}",
                   dynamic_ncols=True)
    t0 = time.perf_counter()
    done_here = 0

    def zero_shot(episodes: int, video_dir: Path | None) -> dict[str, Any]:
        result = evaluate(lambda: FogController(agent, envs.make_observer()), eval_env_id, episodes=episodes,
                          seed=100_000, video_dir=video_dir, video_episodes=cfg.video_episodes if video_dir else 0)
        row = {"iteration": agent.iteration_count, "imagined_steps": agent.imagined_steps,
               "wall_s": wall_offset + time.perf_counter() - t0, **asdict(result)}
        append_jsonl(run / "evals.jsonl", row)
        for k in ("success_rate", "mean_return", "mean_max_coverage"):
            if row.get(k) is not None:
                writer.add_scalar(f"eval/{k}", row[k], agent.imagined_steps)
        return row

    def state(wall: float) -> dict[str, Any]:
        return {"agent": agent.checkpoint(), "env": diff.get_state(), "wall_s": wall, "obs_dim": diff.state_dim,
                "action_dim": diff.action_dim, "sapo": asdict(sapo), "env_id": cfg.env_id,
                "world_model": cfg.world_model, "start_sigma": cfg.start_sigma, "local_model": cfg.local_model,
                "state_model": cfg.state_model, "reward_options": reward_options_of(cfg),
                "best_imagined": best_imagined}

    while agent.iteration_count < sapo.iterations:
        t_it = time.perf_counter()
        metrics = agent.iteration(diff, refresh)
        done_here += 1
        wall = wall_offset + time.perf_counter() - t0
        metrics.update({"time/wall_s": wall, "iteration": agent.iteration_count,
                        "time/imagined_steps_per_s": sapo.num_envs * sapo.horizon / (time.perf_counter() - t_it)})
        append_jsonl(run / "metrics.jsonl", metrics)
        for k, v in metrics.items():
            if k != "iteration":
                writer.add_scalar(k, v, agent.imagined_steps)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(reward=f"{metrics['train/reward']:.3f}",
                            steps_s=f"{metrics['time/imagined_steps_per_s']:.0f}", refresh=False)
        if eval_env_id and cfg.eval_every and cfg.eval_episodes and agent.iteration_count % cfg.eval_every == 0 \
                and agent.iteration_count < sapo.iterations:
            zero_shot(cfg.eval_episodes, None)
        if judge is not None and agent.iteration_count % cfg.imagined_eval_every == 0:
            row = {"iteration": agent.iteration_count, "imagined_steps": agent.imagined_steps, **judge(agent)}
            append_jsonl(run / "imagined.jsonl", row)
            for k, v in row.items():
                if k.startswith(("success_rate", "mean_")):
                    writer.add_scalar(f"imagined/{k}", v, agent.imagined_steps)
            if best_imagined is None or better(row, best_imagined):
                best_imagined = {k: row[k] for k in ("iteration", "success_rate", "mean_return")}
                atomic_torch_save(state(wall), run / "checkpoints" / "best_imagined.pt")
        if agent.iteration_count % cfg.checkpoint_every == 0 or agent.iteration_count == sapo.iterations \
                or (cfg.stop_after is not None and done_here >= cfg.stop_after):
            atomic_torch_save(state(wall), ckpt_path)
        if cfg.stop_after is not None and done_here >= cfg.stop_after and agent.iteration_count < sapo.iterations:
            break
    if bar is not None:
        bar.close()
    writer.flush()
    final: dict[str, Any] = {"iteration": agent.iteration_count, "imagined_steps": agent.imagined_steps}
    if agent.iteration_count >= sapo.iterations:
        if eval_env_id and cfg.final_eval_episodes:
            final = zero_shot(cfg.final_eval_episodes, run / "videos")
            atomic_write_json(run / "eval.json", final)
        plot_learning_curve(run / "metrics.jsonl", run / "evals.jsonl", run / "learning_curve.png",
                            f"DMO-SAPO on {cfg.env_id}")
    writer.close()
    return final


def main() -> None:
    import tyro

    cfg = tyro.cli(AgentTrainConfig)
    result = train_agent(cfg)
    keys = ("success_rate", "mean_max_coverage", "mean_return", "imagined_steps")
    print({k: result[k] for k in keys if k in result})


if __name__ == "__main__":
    main()
