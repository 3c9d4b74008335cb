"""``fog-eval-imagined``: evaluate trained agents inside a learned world instead of on the reference system.

    fog-eval-imagined --run-dirs runs/a runs/b runs/c --episodes 500 --out runs/ranking.json

Each agent acts deterministically (tanh μ, as ``fog-eval`` deploys it; ``--stochastic``: sampled as in training)
for the reference system's episode length in ``episodes`` copies of its own learned env (the forward and local
model it trained with, read from the run's ``config.json``), or with ``--state-model`` in another state model's
world. With ``--starts reset`` (the default; state worlds only) every imagined episode starts as the reference
system's resets do (``reset_starts=1``, README item 36), otherwise from the world's own start windows. Nothing
touches the reference system, so the figures can choose between agents trained with one recipe before any is
deployed (README item 37 measures how well they predict the deployed success). Writes
``<run-dir>/eval_imagined[_<tag>].json`` per agent and, with ``--out``, the agents ranked by imagined success.
With ``--pass-rate 0.85`` it is item 37's check before a Push-T deployment: it exits with status 1 when no agent
reaches 85 % imagined success, e.g. ``fog-eval-imagined --run-dirs RUN --pass-rate 0.85 && fog-eval --run-dir RUN
--deployment pusht``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import fog_envs  # noqa: F401
from fog_agent.run_io import atomic_write_json, checkpoint_path
from fog_agent.train import local_model_kwargs
from fog_envs.wm.tasks import TASKS

STARTS = ("reset", "world", "wall")
#: the state-world start share each kind of judged start sets to 1 ('world': none, the world's own windows)
_START_SHARES = {"reset": "reset_starts", "wall": "wall_starts"}
#: the seed of the imagined starts by default, and of ``fog-train --imagined-eval-every``'s fixed starts
JUDGE_SEED = 7


@dataclass(frozen=True)
class ImaginedEvalConfig:
    """Evaluate agents (run directories or checkpoint files) in a learned world."""

    run_dirs: tuple[str, ...] = ()
    episodes: int = 500
    seed: int = JUDGE_SEED
    """the world's start draws: env i is seeded with ``seed + i``"""
    starts: str = "reset"
    """'reset': every episode starts as the reference system's resets do (state worlds); 'world': the world's own
    start windows (the real play windows of the training data); 'wall': as those resets with the object next to a
    wall (state worlds of a task with such starts, the cube: README item 46)"""
    state_model: str | None = None
    """judge in this state model's world (name or path) instead of each agent's own (agents trained with
    local_model='state'; their observations, probe-unit states, mean the same in any state model)"""
    episode_steps: int | None = None
    """default: the reference system's episode length (Push-T 300, the cube 200)"""
    stochastic: bool = False
    """sample the actions as in training (from the agent's generator, seeded with ``seed``) instead of tanh(μ)"""
    tag: str | None = None
    """appended to the per-agent output name: eval_imagined_<tag>.json"""
    out: str | None = None
    """also write the agents ranked by imagined success here"""
    threads: int = 0
    """torch threads (0: leave torch's default)"""
    pass_rate: float | None = None
    """the check of README item 37: mark each agent whose imagined success rate is at least this (Push-T: 0.85)
    as passing, and exit with status 1 when none passes, so that a script deploys a passing agent or trains
    another seed; None: no check"""

    def __post_init__(self) -> None:
        if not self.run_dirs:
            raise ValueError("ImaginedEvalConfig: give at least one --run-dirs")
        if self.pass_rate is not None and not 0.0 < self.pass_rate <= 1.0:
            raise ValueError(f"ImaginedEvalConfig: pass_rate must lie in (0, 1], got {self.pass_rate}")
        if self.episodes < 1:
            raise ValueError(f"ImaginedEvalConfig: episodes must be >= 1, got {self.episodes}")
        if self.starts not in STARTS:
            raise ValueError(f"ImaginedEvalConfig: unknown starts {self.starts!r}; choose one of {STARTS}")
        if self.episode_steps is not None and self.episode_steps < 1:
            raise ValueError(f"ImaginedEvalConfig: episode_steps must be >= 1, got {self.episode_steps}")


def rollout_outcomes(act: Any, envs: Any, steps: int, seed: int) -> dict[str, np.ndarray]:
    """Run ``act`` (observations (N, D) tensor → actions (N, A) tensor) in the vector env ``envs`` (no autoreset)
    for ``steps`` steps from ``envs.reset(seed=seed)``; per episode: success at any step, the summed reward and,
    for every aux value the env reports, its maximum and its minimum over the episode."""
    obs, _ = envs.reset(seed=seed)
    n = obs.shape[0]
    success = np.zeros(n, bool)
    ret = np.zeros(n)
    highs: dict[str, np.ndarray] = {}
    lows: dict[str, np.ndarray] = {}
    for _ in range(steps):
        with torch.no_grad():
            action = act(torch.as_tensor(obs)).cpu().numpy()
        obs, reward, _, _, info = envs.step(action)
        ret += reward
        success |= np.asarray(info["is_success"], bool)
        for name, value in info.items():
            if name == "is_success" or name.startswith("_") or name.startswith("final"):
                continue
            value = np.asarray(value, float)
            highs[name] = np.maximum(highs.get(name, value), value)
            lows[name] = np.minimum(lows.get(name, value), value)
    out = {"successes": success, "returns": ret}
    out.update({f"max_{k}": v for k, v in highs.items()})
    out.update({f"min_{k}": v for k, v in lows.items()})
    return out


def run_dir_of(source: str | Path) -> Path:
    """The run directory that holds ``source`` (a run directory, or a checkpoint file in its ``checkpoints/``)."""
    path = Path(source)
    return path if path.is_dir() else path.parent.parent


def run_config(source: str | Path) -> dict[str, Any]:
    """The ``train`` section of the ``config.json`` of the run that holds ``source``."""
    config = run_dir_of(source) / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"{source}: no config.json at {config} (the run's forward model is read from it)")
    return json.loads(config.read_text())["train"]


def judge_env(env_id: str, forward_model: str, episodes: int, starts: str = "reset", episode_steps: int | None = None,
              world_model: str | None = None, local_model: str | None = None, state_model: str | None = None,
              fallback_steps: int | None = None, reward_options: dict[str, Any] | None = None):
    """``episodes`` copies of the learned env ``env_id`` (latent observations, no autoreset, no reward penalties)
    for judging agents in, and the episode length (default: the reference system's, else ``fallback_steps``);
    ``starts='reset'`` starts every episode as the reference system's resets do, ``'wall'`` as those with the
    object next to a wall (state worlds only)."""
    if starts not in STARTS:
        raise ValueError(f"unknown starts {starts!r}; choose one of {STARTS}")
    if starts in _START_SHARES and forward_model != "state":
        raise ValueError(f"starts={starts!r} needs a state world (forward_model='state'); this agent trained with "
                         f"forward_model={forward_model!r}: use --starts world")
    kwargs: dict[str, Any] = {"world_model": world_model} if world_model else {}
    kwargs.update(local_model_kwargs(local_model, state_model, reward_options))
    if starts in _START_SHARES:
        kwargs[_START_SHARES[starts]] = 1.0
    task = next((t for t in TASKS.values() if t.wm_env_id == env_id), None)
    steps = episode_steps or (task.max_episode_steps if task is not None else fallback_steps)
    if steps is None:
        raise ValueError(f"{env_id} stands for no reference system: give episode_steps")
    with torch.random.fork_rng():  # building the models draws their initial weights: leave the caller's RNG be
        envs = gym.make_vec(env_id, num_envs=episodes, vectorization_mode="vector_entry_point", obs_type="latent",
                            forward_model=forward_model, max_episode_steps=steps, autoreset=False, **kwargs).unwrapped
    return envs, steps


def summarise(outcomes: dict[str, np.ndarray]) -> dict[str, float]:
    """Success rate, mean return and the episodes' mean of every aux maximum and minimum of
    :func:`rollout_outcomes`."""
    return {"success_rate": float(outcomes["successes"].mean()), "mean_return": float(outcomes["returns"].mean()),
            **{f"mean_{k}": float(v.mean()) for k, v in outcomes.items() if k.startswith(("max_", "min_"))}}


def own_world(source: str | Path, ckpt: dict[str, Any], episodes: int, starts: str = "reset",
              episode_steps: int | None = None, state_model: str | None = None):
    """``(envs, steps, forward_model)``: :func:`judge_env` for the agent checkpointed in ``ckpt`` (of the run that
    holds ``source``): its world, local model and reward options, or another ``state_model``'s world; errors name
    ``source``."""
    if state_model is not None and ckpt.get("local_model") != "state":
        raise ValueError(f"{source}: --state-model needs an agent trained with local_model='state'; this one used "
                         f"{ckpt.get('local_model') or 'rssm'!r}")
    forward = run_config(source).get("forward_model", "diffusion")
    try:
        envs, steps = judge_env(ckpt["env_id"], forward, episodes, starts, episode_steps, ckpt.get("world_model"),
                                ckpt.get("local_model"), state_model or ckpt.get("state_model"),
                                reward_options=ckpt.get("reward_options"))
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from None
    return envs, steps, forward


def evaluate_imagined(source: str | Path, cfg: ImaginedEvalConfig) -> dict[str, Any]:
    """One agent's imagined evaluation (see the module docstring); also written next to its run."""
    from fog_agent.evaluate import load_agent

    t0 = time.perf_counter()
    agent, ckpt = load_agent(checkpoint_path(source))
    envs, steps, forward = own_world(source, ckpt, cfg.episodes, cfg.starts, cfg.episode_steps, cfg.state_model)
    agent.generator.manual_seed(cfg.seed)
    outcomes = rollout_outcomes(lambda x: agent.act(x, deterministic=not cfg.stochastic), envs, steps, cfg.seed)
    envs.close()
    out: dict[str, Any] = {
        "run": str(source), "checkpoint_iteration": agent.iteration_count, "imagined_steps": agent.imagined_steps,
        "env_id": ckpt["env_id"], "forward_model": forward, "state_model": cfg.state_model or ckpt.get("state_model"),
        "starts": cfg.starts, "stochastic": cfg.stochastic, "episodes": cfg.episodes, "episode_steps": steps,
        "seed": cfg.seed,
        **summarise(outcomes), "wall_s": time.perf_counter() - t0, "successes": outcomes["successes"].tolist()}
    atomic_write_json(run_dir_of(source) / f"eval_imagined{'_' + cfg.tag if cfg.tag else ''}.json", out)
    return out


def rank(results: list[dict[str, Any]], pass_rate: float | None = None) -> list[dict[str, Any]]:
    """The agents' summaries (run, success rate and every mean), best first by imagined success, ties broken by
    mean return; with ``pass_rate``, each also says whether its success rate reaches it (``passes``)."""
    rows = [{k: v for k, v in r.items() if k in ("run", "success_rate") or k.startswith("mean_")} for r in results]
    if pass_rate is not None:
        rows = [{**r, "passes": bool(r["success_rate"] >= pass_rate)} for r in rows]
    return sorted(rows, key=lambda r: (-r["success_rate"], -r["mean_return"]))


def run_imagined(cfg: ImaginedEvalConfig) -> list[dict[str, Any]]:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    results = [evaluate_imagined(source, cfg) for source in cfg.run_dirs]
    ranked = rank(results, cfg.pass_rate)
    if cfg.out is not None:
        Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(Path(cfg.out), {"config": asdict(cfg), "ranking": ranked})
    return ranked


def main() -> None:
    import tyro

    cfg = tyro.cli(ImaginedEvalConfig)
    ranked = run_imagined(cfg)
    for i, row in enumerate(ranked, 1):
        print(i, {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
    if cfg.pass_rate is not None:
        passing = [r["run"] for r in ranked if r["passes"]]
        print(f"{len(passing)} of {len(ranked)} agents reach {cfg.pass_rate:.0%} imagined success"
              + (f": {', '.join(passing)}" if passing else ": train another seed"))
        if not passing:
            raise SystemExit(1)
