"""``fog-eval``: zero-shot evaluation of a trained DMO-SAPO agent on a reference system.

    fog-eval --run-dir runs/fog_pusht --env-id RealPushT-v0 --episodes 50 --seed 100000

The agent's local model filters the real frames (the RSSM, or the state probe with ``local_model='state'``), the actor acts deterministically (tanh μ; ``--stochastic`` samples its actions as in training;
``--plan`` chooses each action with the cross-entropy planner of :mod:`fog_agent.planner` in the local model, or in
another state model with ``--plan-state-model`` (Push-T: the shipped block-frame ``pusht_state_block``);
``--readers pusht_agent_finder pusht_local_reader pusht_goal_reader`` reads the Push-T agent and block finer than the probe alone,
:mod:`fog_envs.wm.readers`; ``--odometry pusht_odometry`` dead-reckons the pusher from its actions,
:mod:`fog_envs.wm.pusher_odometry`; ``--filter-gains`` fuses the readings with the state model's prediction,
:mod:`fog_envs.learned.state_filter`; ``--cube-finder`` finds the cube in the robot's ego frame and remembers it out of
view, ``--search-action 0 0 1`` turns the robot until it first sees it, :mod:`fog_envs.wm.cube_finder`;
``--cube-unseen-pixels 20`` forgets a cube carried on to where the frame should show it and does not;
``--robot-finder`` finds the robot's pose in what the frame shows of the arena, :mod:`fog_envs.wm.robot_finder`);
``--deployment pusht`` (or ``cube``) sets these as the best deployment of the task here does,
:mod:`fog_agent.deployments`).
Writes ``<run-dir>/eval_<env-id>.json``, mp4 videos of the first episodes and the learning-curve plot.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import torch

import fog_envs  # noqa: F401
from fog_agent.config import SAPOConfig
from fog_agent.controller import FogController
from fog_agent.deployments import deployment_settings, fill_defaults
from fog_agent.ensemble import HandoverConfig, MeanPolicy, StallHandover
from fog_agent.planner import PlannerConfig, PolicyCEM
from fog_agent.run_io import atomic_write_json, checkpoint_path, plot_learning_curve
from fog_agent.sapo import DMOSAPO
from fog_agent.train import local_model_kwargs
from fog_envs.evaluation import evaluate
from fog_envs.learned.state_filter import StateFilterConfig
from fog_envs.wm.cube_finder import CubeFinderConfig, CubeTrack
from fog_envs.wm.robot_finder import RobotTrack
from fog_envs.wm.pusher_odometry import PusherOdometry
from fog_envs.wm.readers import load_reader


@dataclass(frozen=True)
class EvalConfig:
    """Evaluate a run directory (or one checkpoint file) on a reference system."""

    run_dir: str = "runs/fog_pusht"
    checkpoint: str | None = None
    """a checkpoint file (default: <run-dir>/checkpoints/latest.pt)"""
    env_id: str | None = None
    """reference system (default: the one the learned env stands for)"""
    episodes: int = 50
    seed: int = 100_000
    episode_seeds: tuple[int, ...] = ()
    """play exactly these seeded episodes instead of --episodes from --seed (e.g. the starts of one kind, as
    benchmarks/cube_wall_gap.py --list-near lists them); empty: episode i uses seed + i"""
    video_episodes: int = 3
    stochastic: bool = False
    """sample the actions from the policy as in training instead of tanh(μ) (a diagnostic; writes
    eval_<env-id>_stochastic.json)"""
    plan: bool = False
    """choose each action by decision-time planning in the agent's local model, seeded by the policy
    (fog_agent.planner; writes eval_<env-id>_plan.json)"""
    planner: PlannerConfig = PlannerConfig()
    """with --plan: the planner's budget and objective"""
    world_model: str | None = None
    """deploy with this world-model bundle (name or path) in place of the one the agent trained with: its
    probe (local_model='state') or its RSSM filters the real frames; it must be a bundle of the same task, e.g.
    one whose probe was retrained (fog-train-wm --warm-start probe)"""
    tag: str | None = None
    """appended to the output names: eval_<env-id>[_stochastic|_plan]_<tag>.json, videos..._<tag>"""
    plan_state_model: str | None = None
    """with --plan: plan in this state-model bundle (name or path) instead of the agent's own (agents trained
    with local_model='state' only)"""
    readers: tuple[str, ...] = ()
    """refine the probe's readings of the real frames with these reader bundles in turn (names or paths; the
    shipped pusht_agent_finder locates the agent anywhere on the frame, pusht_local_reader reads agent and block
    again around the reading so far, pusht_goal_reader the block near its goal: fog-fit-agent-finder,
    fog-fit-local-reader, fog-fit-goal-reader; Push-T agents with local_model='state')"""
    odometry: str | None = None
    """dead-reckon the pusher from the actions with this odometry bundle (name or path; the shipped
    pusht_odometry, fog-fit-odometry), its start pooled from the readers' readings of every frame
    (fog_envs.wm.pusher_odometry; Push-T agents with local_model='state')"""
    companions: tuple[str, ...] = ()
    """run directories (or checkpoint files) of other agents trained in the same learned env. With --plan their
    critics and policies join the planner's (fog_agent.planner.PolicyCEM: the value is the agents' mean, each
    policy's sequences are candidates; the first agent still acts wherever the planner does not); without it the
    agents act together: with the mean of their tanh(μ) (fog_agent.ensemble.MeanPolicy), or one at a time with
    --handover-patience (README item 35)"""
    handover_patience: int = 0
    """with --companions and without --plan: one agent acts at a time, the next taking over after this many steps
    in which the local reward of the filtered state has not risen by 0.01 above its best
    (fog_agent.ensemble.StallHandover); 0: the agents act with their mean tanh(μ)"""
    deployment: str | None = None
    """a named deployment (fog_agent.deployments; 'pusht': the best zero-shot Push-T deployment here, README
    item 29; 'cube': the cube finder, the robot finder and a search turn, items 31 and 34): its settings fill every
    field, planner's included, still at its default"""
    cube_finder: bool = False
    """find the cube in each real frame by its colour and silhouette and the camera's geometry; out of view, hold it
    where it was placed, moved by the state model's prediction while the robot is beside it
    (fog_envs.wm.cube_finder; cube agents with local_model='state')"""
    cube_unseen_pixels: int = 0
    """with --cube-finder: out of view, forget a cube placed where the camera would see at least this many of its
    pixels (the frame contradicts it), and search again (fog_envs.wm.cube_finder.CubeFinderConfig.unseen_pixels);
    0: never"""
    robot_finder: bool = False
    """find the robot's pose in each real frame from what it shows of the arena (the walls' colours, the floor's
    checker) and the camera's geometry, searched around the state model's prediction of the pose found before
    (fog_envs.wm.robot_finder; cube agents with local_model='state')"""
    search_action: tuple[float, ...] = ()
    """with --cube-finder: the action taken until the cube is first seen (e.g. 0 0 1: turn on the spot); empty:
    the agent acts on the probe's guess meanwhile"""
    filter_gains: tuple[float, ...] = ()
    """fuse each reading with the state model's one-step prediction, ŝ = p + K·(r − p), with these gains K in
    (0, 1] (one, or one per state column; fog_envs.learned.state_filter, chosen with
    benchmarks/bench_state_filter.py); empty: the readings alone (agents with local_model='state')"""

    def __post_init__(self) -> None:
        if self.plan and self.stochastic:
            raise ValueError("EvalConfig: --plan and --stochastic exclude each other (the planner chooses the actions)")
        if self.plan_state_model is not None and not self.plan:
            raise ValueError("EvalConfig: --plan-state-model needs --plan")
        if self.companions and self.stochastic:
            raise ValueError("EvalConfig: --companions and --stochastic exclude each other (the agents act with "
                             "their mean tanh(μ), or join the planner)")
        if self.handover_patience < 0:
            raise ValueError(f"EvalConfig: --handover-patience must be >= 0 steps, got {self.handover_patience}")
        if self.handover_patience and (self.plan or not self.companions):
            raise ValueError("EvalConfig: --handover-patience needs --companions and no --plan (the agents take "
                             "turns acting)")
        finder = self.cube_finder or (self.deployment is not None
                                      and deployment_settings(self.deployment).get("cube_finder", False))
        if self.cube_unseen_pixels and not finder:
            raise ValueError("EvalConfig: --cube-unseen-pixels needs --cube-finder (it forgets the cube it tracks)")
        if self.search_action and not finder:
            raise ValueError("EvalConfig: --search-action needs --cube-finder (it acts until the cube is first seen)")
        if self.deployment is not None:
            deployment_settings(self.deployment)  # an unknown name fails here, before any work


def load_agent(checkpoint: Path) -> tuple[DMOSAPO, dict[str, Any]]:
    """Rebuild the agent stored in a training checkpoint."""
    if not checkpoint.is_file():
        raise FileNotFoundError(f"no agent checkpoint at {checkpoint}")
    ckpt = torch.load(checkpoint, weights_only=False, map_location="cpu")
    sapo = SAPOConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in ckpt["sapo"].items()})
    agent = DMOSAPO(ckpt["obs_dim"], ckpt["action_dim"], sapo)
    agent.restore(ckpt["agent"])
    return agent, ckpt


def load_companions(ckpt: dict[str, Any], paths: tuple[str, ...]) -> list[DMOSAPO]:
    """The agents at ``paths`` (run directories or checkpoints), each refused by name unless it was trained in the
    same learned env with the same local model as ``ckpt``'s agent (so their critics read the same local state)."""
    keys = ("env_id", "local_model", "state_model") + (() if ckpt.get("local_model") == "state" else ("world_model",))
    agents = []
    for path in paths:
        agent, other = load_agent(checkpoint_path(path))
        differ = [k for k in keys if other.get(k) != ckpt.get(k)]
        if differ:
            raise ValueError(f"companion {path}: trained with another {', '.join(differ)} "
                             f"({', '.join(f'{k}={other.get(k)!r} vs {ckpt.get(k)!r}' for k in differ)})")
        agents.append(agent)
    return agents


def learned_env_for(ckpt: dict[str, Any]):
    """The learned env (one copy, latent observations) a training checkpoint's agent was trained in: the same
    world model and local model, so that its ``make_observer()`` filters real frames as in training."""
    kwargs = {"world_model": ckpt["world_model"]} if ckpt.get("world_model") else {}
    kwargs.update(local_model_kwargs(ckpt.get("local_model"), ckpt.get("state_model"), ckpt.get("reward_options")))
    return gym.make_vec(ckpt["env_id"], num_envs=1, vectorization_mode="vector_entry_point", obs_type="latent",
                        **kwargs).unwrapped


def make_planner(agent: DMOSAPO, ckpt: dict[str, Any], envs: Any, cfg: EvalConfig,
                 companions: Sequence[DMOSAPO] = ()) -> PolicyCEM:
    """The planner in the agent's local model, or in ``cfg.plan_state_model`` (the learned env's Jacobian hook
    either way), with ``companions``' critics and policies joining the agent's."""
    if cfg.plan_state_model is not None:
        if ckpt.get("local_model") != "state":
            raise ValueError(f"--plan-state-model needs an agent trained with local_model='state'; this one used "
                             f"{ckpt.get('local_model') or 'rssm'!r}")
        envs = learned_env_for({**ckpt, "state_model": cfg.plan_state_model})
    return PolicyCEM(agent, envs.diff.local_step, envs.diff.local_reward, cfg.planner, companions)


def ensemble_actor(agent: DMOSAPO, companions: Sequence[DMOSAPO], envs: Any, cfg: EvalConfig) -> Any:
    """What acts without a planner: the agent alone, or with ``companions`` their mean or, with
    ``cfg.handover_patience``, one at a time, handed over on the learned env's local reward
    (:mod:`fog_agent.ensemble`)."""
    if not companions or cfg.plan:
        return agent
    if cfg.handover_patience:
        return StallHandover([agent, *companions], envs.diff.local_reward, HandoverConfig(cfg.handover_patience))
    return MeanPolicy([agent, *companions])


def observer_kwargs(cfg: EvalConfig, envs: Any, env_id: str) -> dict[str, Any]:
    """The keyword arguments of ``envs.make_observer`` that ``cfg``'s perception flags ask for (readers, odometry,
    filter gains, the cube finder); ``cfg.search_action`` is checked against the action space here."""
    observe: dict[str, Any] = {"readers": [load_reader(r) for r in cfg.readers]} if cfg.readers else {}
    if cfg.odometry is not None:
        observe["odometry"] = PusherOdometry.load(cfg.odometry)[0]
    if cfg.filter_gains:
        observe["state_filter"] = StateFilterConfig(tuple(cfg.filter_gains))
    if cfg.cube_finder:
        observe["cube_track"] = CubeTrack(CubeFinderConfig(unseen_pixels=cfg.cube_unseen_pixels))
    if cfg.robot_finder:
        observe["robot_track"] = RobotTrack()
    if cfg.search_action and len(cfg.search_action) != envs.single_action_space.shape[0]:
        raise ValueError(f"--search-action has {len(cfg.search_action)} values; {env_id}'s actions have "
                         f"{envs.single_action_space.shape[0]}")
    return observe


def run_evaluation(cfg: EvalConfig) -> dict[str, Any]:
    if cfg.deployment is not None:
        cfg = fill_defaults(cfg, deployment_settings(cfg.deployment))
    run = Path(cfg.run_dir)
    agent, ckpt = load_agent(checkpoint_path(cfg.checkpoint or run))
    companions = load_companions(ckpt, cfg.companions)
    if cfg.world_model is not None:
        ckpt = {**ckpt, "world_model": cfg.world_model}
    envs = learned_env_for(ckpt)
    env_id = cfg.env_id or envs.reference_env_id
    if env_id is None:
        raise ValueError(f"{ckpt['env_id']} has no reference system; pass --env-id")
    suffix = ("_stochastic" if cfg.stochastic else "_plan" if cfg.plan else "") + (f"_{cfg.tag}" if cfg.tag else "")
    planner = make_planner(agent, ckpt, envs, cfg, companions) if cfg.plan else None
    observe = observer_kwargs(cfg, envs, ckpt["env_id"])
    actor = ensemble_actor(agent, companions, envs, cfg)
    result = evaluate(lambda: FogController(actor, envs.make_observer(**observe), deterministic=not cfg.stochastic,
                                            planner=planner, search_action=cfg.search_action or None), env_id,
                      episodes=cfg.episodes, seed=cfg.seed, video_dir=run / f"videos{suffix}",
                      video_episodes=cfg.video_episodes, episode_seeds=cfg.episode_seeds or None)
    out = {"checkpoint_iteration": agent.iteration_count, "imagined_steps": agent.imagined_steps,
           "deployment": cfg.deployment, "stochastic": cfg.stochastic, "world_model": ckpt.get("world_model"),
           "readers": list(cfg.readers), "odometry": cfg.odometry, "filter_gains": list(cfg.filter_gains),
           "cube_finder": cfg.cube_finder, "cube_unseen_pixels": cfg.cube_unseen_pixels,
           "robot_finder": cfg.robot_finder,
           "search_action": list(cfg.search_action),
           "companions": list(cfg.companions), "handover_patience": cfg.handover_patience,
           **asdict(result)}
    if cfg.plan:
        out["planner"] = {**asdict(cfg.planner), "state_model": cfg.plan_state_model,
                          "companions": list(cfg.companions)}
    atomic_write_json(run / f"eval_{env_id}{suffix}.json", out)
    if (run / "metrics.jsonl").exists():
        plot_learning_curve(run / "metrics.jsonl", run / "evals.jsonl", run / "learning_curve.png",
                            f"DMO-SAPO on {ckpt['env_id']}")
    return out


def main() -> None:
    import tyro

    result = run_evaluation(tyro.cli(EvalConfig))
    keys = ("env_id", "episodes", "success_rate", "mean_max_coverage", "mean_return", "imagined_steps")
    print({k: result[k] for k in keys})


if __name__ == "__main__":
    main()
