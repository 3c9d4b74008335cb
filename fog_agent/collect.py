"""``fog-collect-agent``: collect a dataset on a reference system with a trained agent instead of the play policy.

    fog-collect-agent --run-dir runs/fog_pusht --out datasets/pusht_agent.h5 --num-episodes 200 --seed 300000

The agent is deployed as in ``fog-eval`` (its local model filters the real frames; with ``--deployment``, through
that named deployment's perception, e.g. ``cube``'s cube finder and search turn) and, by default, samples its
actions as in training, so the data covers where the agent goes (near the goal, small corrective pushes) with the
spread its training noise gives. The dataset has the play data's format, seeding, resume and safety
(:mod:`fog_envs.data.collect`); its ``collector_policy`` names the run and the checkpoint's iteration. Use a
seed range that neither the evaluation (100,000 + i) nor the held-out data (1,000,000 + i) uses.

The agent never trains on the reference system: this data is for the *world model* (a second round of data
collection, as model-based RL does between rounds), and the agent is still evaluated zero-shot.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fog_agent.controller import FogController
from fog_agent.deployments import deployment_settings, fill_defaults
from fog_agent.evaluate import EvalConfig, learned_env_for, load_agent, observer_kwargs
from fog_agent.run_io import checkpoint_path
from fog_envs.data.collect import CollectConfig, CollectReport, collect


@dataclass(frozen=True)
class AgentPolicyConfig:
    """Which trained agent plays, and how."""

    run_dir: str
    checkpoint: str | None = None
    """a checkpoint file (default: <run-dir>/checkpoints/latest.pt)"""
    stochastic: bool = True
    """sample the actions as in training (False: tanh(μ), the deployed actions)"""
    iteration: int | None = None
    """the checkpoint's training iteration (filled in when the policy is built; part of the provenance)"""
    deployment: str | None = None
    """perceive as this named deployment does (fog_agent.deployments: its readers, odometry, cube finder and search
    action); one that plans is refused, since the actor plays here"""

    def __post_init__(self) -> None:
        if self.deployment is not None and deployment_settings(self.deployment).get("plan"):
            raise ValueError(f"deployment {self.deployment!r} plans its actions; fog-collect-agent plays the agent's "
                             f"actor, so choose a deployment that does not plan (or none)")

    def eval_config(self) -> EvalConfig:
        """The perception flags of ``deployment`` as ``fog-eval`` would resolve them (defaults without one)."""
        cfg = EvalConfig(run_dir=self.run_dir)
        return cfg if self.deployment is None else fill_defaults(cfg, deployment_settings(self.deployment))

    @property
    def checkpoint_path(self) -> Path:
        return checkpoint_path(self.checkpoint or self.run_dir)


class AgentPlayPolicy:
    """A trained DMO-SAPO agent behind the play-policy interface (``reset``/``observe``/``__call__``).

    Each episode reseeds the agent's action sampler from the collector's per-episode generator, so an episode
    is reproducible on its own, whichever worker plays it."""

    def __init__(self, agent: Any, observer: Any, reference_env_id: str, config: AgentPolicyConfig,
                 search_action: tuple[float, ...] | None = None) -> None:
        self.config = config
        self.reference_env_id = reference_env_id
        self._agent = agent
        self._controller = FogController(agent, observer, deterministic=not config.stochastic,
                                         search_action=search_action)
        self._obs: np.ndarray | None = None
        self._started = False

    def reset(self, info: dict[str, Any], rng: np.random.Generator) -> None:
        self._agent.generator.manual_seed(int(rng.integers(0, 2**63 - 1)))
        self._obs = None
        self._started = False

    def observe(self, obs: np.ndarray) -> None:
        self._obs = obs

    def __call__(self, info: dict[str, Any]) -> np.ndarray:
        if self._obs is None:
            raise RuntimeError("AgentPlayPolicy acts on observations: call observe(obs) before each action")
        if not self._started:
            self._controller.reset(self._obs, info)
            self._started = True
        return self._controller.act(self._obs, info)


def load_agent_policy(config: AgentPolicyConfig) -> AgentPlayPolicy:
    """Load the agent of ``config`` with the observer it was trained with (and its deployment's perception)."""
    agent, ckpt = load_agent(config.checkpoint_path)
    envs = learned_env_for(ckpt)
    if envs.reference_env_id is None:
        raise ValueError(f"{ckpt['env_id']} has no reference system to collect on")
    perception = config.eval_config()
    observer = envs.make_observer(**observer_kwargs(perception, envs, ckpt["env_id"]))
    config = AgentPolicyConfig(config.run_dir, config.checkpoint, config.stochastic, int(agent.iteration_count),
                               config.deployment)
    return AgentPlayPolicy(agent, observer, envs.reference_env_id, config, perception.search_action or None)


def make_agent_policy(env_id: str, config: AgentPolicyConfig) -> AgentPlayPolicy:
    """Policy factory for :func:`fog_envs.data.collect.collect` (picklable through ``functools.partial``)."""
    policy = load_agent_policy(config)
    if env_id.split(":")[-1] != policy.reference_env_id:
        raise ValueError(f"the agent in {config.run_dir} was trained for {policy.reference_env_id}, "
                         f"not {env_id!r}")
    return policy


@dataclass(frozen=True)
class AgentCollectConfig:
    """Collect a dataset on the reference system with a trained agent."""

    run_dir: str = "runs/fog_pusht"
    checkpoint: str | None = None
    """a checkpoint file (default: <run-dir>/checkpoints/latest.pt)"""
    out: Path = Path("datasets/pusht_agent.h5")
    num_episodes: int = 200
    seed: int = 300_000
    """episode i uses env seed SEED+i (keep clear of the evaluation's 100,000+i and the held-out 1,000,000+i)"""
    workers: int = 2
    stochastic: bool = True
    """sample the actions as in training (False: the deployed tanh(μ))"""
    max_episode_steps: int | None = None
    deployment: str | None = None
    """perceive as this named deployment does (e.g. 'cube': the cube finder and the search turn; one that plans is
    refused)"""
    wall_start_band_m: float | None = None
    """RealPushCube-v0: every episode starts with the cube within this of its reset limit, next to a wall
    (:attr:`fog_envs.data.collect.CollectConfig.wall_start_band_m`)"""


def collect_with_agent(cfg: AgentCollectConfig, progress: bool = True, stop_after: int | None = None) -> CollectReport:
    """Collect (or resume) the dataset of ``cfg``; ``stop_after`` as in :func:`collect`."""
    policy_config = AgentPolicyConfig(cfg.run_dir, cfg.checkpoint, cfg.stochastic, deployment=cfg.deployment)
    env_id = load_agent_policy(policy_config).reference_env_id
    factory = functools.partial(make_agent_policy, config=policy_config)
    collect_cfg = CollectConfig(env_id=env_id, out=Path(cfg.out), num_episodes=cfg.num_episodes, seed=cfg.seed,
                                workers=cfg.workers, max_episode_steps=cfg.max_episode_steps,
                                wall_start_band_m=cfg.wall_start_band_m)
    return collect(collect_cfg, progress=progress, policy_factory=factory, stop_after=stop_after)


def main() -> None:
    import tyro

    report = collect_with_agent(tyro.cli(AgentCollectConfig, description=__doc__))
    print(f"{report.path}: {report.episodes} episodes, {report.frames} frames, {report.new_frames} new in "
          f"{report.wall_s:.0f} s ({report.frames_per_s:.0f} frames/s), moved fraction {report.moved_fraction}, "
          f"success fraction {report.success_fraction:.2f}")


if __name__ == "__main__":
    main()
