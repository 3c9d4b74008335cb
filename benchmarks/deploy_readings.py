"""How much a ``local_model="state"`` agent loses at deployment to the state probe's readings of real frames.

    python benchmarks/deploy_readings.py --run-dir runs/fog_state_fwd [--run-dir runs/other ...] [--episodes 50]

For each run (an agent trained with ``local_model="state"``): its zero-shot score on the run's reference system
(Push-T: mean max coverage; cube: return) over the same seeded episodes, once as deployed (the probe reads each
real frame, :class:`fog_envs.learned.state_local.StateObserver`) and once with the true state in place of the
probe's reading (``info["state"]`` in the task's probe-target units), plus the reading's median error on the
frames the agent visits. With ``--plan`` the actions come from decision-time planning in the agent's local model
(:mod:`fog_agent.planner`, as ``fog-eval --plan``) every time, in another state model with
``--plan-state-model B`` (as ``fog-eval --plan-state-model``); ``--plan-set KEY=VALUE,...`` sets any other
:class:`~fog_agent.planner.PlannerConfig` field. ``--filter-gains`` fuses the readings with the
state model's one-step prediction (as ``fog-eval --filter-gains``). With ``--reader B`` (repeatable) a third
deployment refines the probe's readings with those readers in turn (:mod:`fog_envs.wm.readers`). ``--readings``
picks which to run, among them two that tell the agent's reading from the block's (Push-T): ``true-agent`` (the
agent's true position, the block as read, refined by the ``--reader`` chain) and ``true-block`` (the block's true
pose, the agent as the probe reads it). Where the true readings score much higher, the reading's error, not the
world the agent trained in, is what the deployment loses. Prints a table and writes JSON (default
``benchmarks/results/deploy_readings.json``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fog_envs  # noqa: E402,F401
from benchmarks.agent_runs_cli import parse_run_dirs, run_dirs_parser, write_results  # noqa: E402
from benchmarks.bench_planner_finish import parse_variant  # noqa: E402
from fog_agent.controller import FogController  # noqa: E402
from fog_agent.evaluate import learned_env_for, load_agent  # noqa: E402
from fog_agent.planner import PlannerConfig, PolicyCEM  # noqa: E402
from fog_agent.run_io import checkpoint_path  # noqa: E402
from fog_envs.evaluation import evaluate  # noqa: E402
from fog_envs.learned.state_filter import StateFilterConfig, fuse  # noqa: E402
from fog_envs.learned.state_local import StateLocalModel  # noqa: E402
from fog_envs.wm.readers import Reader, load_reader, refine_all  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "deploy_readings.json"
READINGS = ("probe", "refined", "true", "true-agent", "true-block")
#: which readings use the goal reader, and which columns they take from the true state (Push-T's probe targets:
#: agent 0:2, block 2:6; the hybrids are Push-T's)
READING_SOURCES = {"probe": (False, slice(0, 0)), "refined": (True, slice(0, 0)), "true": (False, slice(None)),
                   "true-agent": (True, slice(0, 2)), "true-block": (False, slice(2, 6))}


class ReadingObserver:
    """``[s_t, s_{t−1}]`` from the probe's reading of the frame (refined by ``readers`` in turn, and fused with the
    state model's prediction where ``gains`` are given) with the columns ``true_columns`` of the state taken from
    the true state instead (all of them: the true state), recording the reading's error against the true state at
    every step."""

    def __init__(self, local: StateLocalModel, spec: Any, true_columns: slice = slice(0, 0),
                 readers: Sequence[Reader] = (), gains: torch.Tensor | None = None) -> None:
        self.local, self.spec, self.true_columns, self.readers = local, spec, true_columns, tuple(readers)
        self.gains = gains
        self.errors: dict[str, list[float]] = {}

    def read(self, obs: np.ndarray, info: dict[str, Any], prediction: torch.Tensor | None = None) -> torch.Tensor:
        """The reading of one frame (1, S); ``prediction``: the state model's (1, S) for it, fused in with the
        gains (none at an episode's start)."""
        true = self.spec.probe_targets(np.asarray(info["state"])[None]).astype(np.float32)
        frames = np.asarray(obs)[None]
        probe = refine_all(self.readers, frames, self.local.read_frames(frames))
        if self.gains is not None and prediction is not None:
            probe = fuse(prediction, probe, self.gains)
        for k, v in self.spec.probe_errors(probe.double().numpy(), true).items():
            self.errors.setdefault(k, []).extend(np.asarray(v, dtype=float).tolist())
        reading = probe.clone()
        reading[:, self.true_columns] = torch.from_numpy(true)[:, self.true_columns].to(reading)
        return reading


class ReadingController(FogController):
    """:class:`FogController` whose observer reads ``info`` (the true state) as well as the frame."""

    def __init__(self, agent: Any, observer: ReadingObserver, planner: PolicyCEM | None = None) -> None:
        super().__init__(agent, observer, planner=planner)  # type: ignore[arg-type]
        self.reader = observer

    def reset(self, obs: np.ndarray, info: dict[str, Any]) -> None:
        self.start(self.reader.local.start(self.reader.read(obs, info))[0])

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        if self._last_action is not None:
            x = self._latent[None]
            predicted = self.reader.local.predict(x, self._last_action[None]) if self.reader.gains is not None else None
            self._latent = self.reader.local.advance(x, self.reader.read(obs, info, predicted))[0]
        self._last_action = self.choose(self._latent)
        return self._last_action


def measure(run_dir: str, episodes: int, seed: int, plan: PlannerConfig | None = None,
            reader_names: Sequence[str] = (), readings: tuple[str, ...] = READINGS,
            plan_state_model: str | None = None, state_filter: StateFilterConfig | None = None) -> dict[str, Any]:
    if plan_state_model is not None and plan is None:
        raise ValueError("deploy_readings: --plan-state-model needs --plan")
    agent, ckpt = load_agent(checkpoint_path(run_dir))
    envs = learned_env_for(ckpt)
    local = getattr(envs.backend, "state_local", None)
    if not isinstance(local, StateLocalModel):
        raise ValueError(f"{run_dir}: the agent was not trained with local_model='state'")
    plan_envs = envs if plan_state_model is None else learned_env_for({**ckpt, "state_model": plan_state_model})
    spec = envs.backend.model.task
    out: dict[str, Any] = {"run_dir": run_dir, "imagined_steps": agent.imagined_steps}
    if "refined" in readings and not reader_names:
        raise ValueError("deploy_readings: the 'refined' readings need readers (--reader)")
    if {"true-agent", "true-block"} & set(readings) and spec.name != "pusht":
        raise ValueError(f"deploy_readings: the true-agent / true-block readings are Push-T's, not {spec.name!r}'s")
    readers = [load_reader(r) for r in reader_names]
    for name in readings:
        refine, columns = READING_SOURCES[name]
        t0 = time.perf_counter()
        observer = ReadingObserver(local, spec, columns, readers if refine else (),
                                   None if state_filter is None else state_filter.vector(local.sdim))
        # a fresh planner (its own seeded generator) per deployment: each figure is the same whichever run first
        planner = (PolicyCEM(agent, plan_envs.diff.local_step, plan_envs.diff.local_reward, plan)
                   if plan is not None else None)
        result = evaluate(lambda: ReadingController(agent, observer, planner), envs.reference_env_id,
                          episodes=episodes, seed=seed, video_dir=None)
        out[name] = {"mean_max_coverage": result.mean_max_coverage, "mean_return": result.mean_return,
                     "success_rate": result.success_rate,
                     # per episode, so that two deployments of the same seeded episodes can be compared in pairs
                     "successes": result.successes, "max_coverages": result.max_coverages, "returns": result.returns,
                     "probe_error_median": {k: float(np.median(v)) for k, v in observer.errors.items()},
                     "seconds": round(time.perf_counter() - t0, 1)}
    return out


def main() -> None:
    parser = run_dirs_parser(__doc__, RESULTS)
    parser.add_argument("--plan", action="store_true", help="choose the actions with fog_agent.planner's "
                        "default planner in the agent's own local model (as fog-eval --plan)")
    parser.add_argument("--plan-engage-reward", type=float, default=None,
                        help="with --plan: plan only where the local reward is at least this")
    parser.add_argument("--plan-horizon", type=int, default=PlannerConfig.horizon, help="with --plan: steps planned")
    parser.add_argument("--plan-samples", type=int, default=PlannerConfig.samples,
                        help="with --plan: Gaussian candidates per round")
    parser.add_argument("--plan-iterations", type=int, default=PlannerConfig.iterations, help="with --plan: rounds")
    parser.add_argument("--plan-set", default="", metavar="KEY=VALUE,...",
                        help="with --plan: any other PlannerConfig fields, on top of the --plan-* flags (e.g. "
                        "finish_reward=0.9,init_std=0.5,noise_beta=2,keep_elites=4,act=best)")
    parser.add_argument("--plan-state-model", default=None,
                        help="with --plan: plan in this state-model bundle (name or path) instead of the agent's own")
    parser.add_argument("--reader", action="append", default=[],
                        help="also deploy with the probe's readings refined by this reader bundle (repeatable, "
                        "applied in order; Push-T: pusht_local_reader, pusht_goal_reader): a third column")
    parser.add_argument("--filter-gains", type=float, nargs="+", default=None,
                        help="fuse every deployment's readings (but the true columns) with the state model's "
                        "prediction, fog_envs.learned.state_filter (one gain, or one per state column)")
    parser.add_argument("--readings", nargs="+", choices=READINGS, default=None,
                        help="which deployments to run (default: probe and true, and refined with --reader; "
                        "true-agent and true-block take that part of the state from the truth)")
    args = parse_run_dirs(parser)
    readings = tuple(args.readings or [n for n in READINGS if n != "refined" or args.reader])
    if args.plan_set and not args.plan:
        parser.error("--plan-set needs --plan")
    plan = PlannerConfig(engage_reward=args.plan_engage_reward, horizon=args.plan_horizon, samples=args.plan_samples,
                         iterations=args.plan_iterations) if args.plan else None
    if plan is not None and args.plan_set:
        try:
            plan = parse_variant(f"plan:{args.plan_set}", base=plan)[1]
        except ValueError as err:
            parser.error(str(err))
    state_filter = StateFilterConfig(tuple(args.filter_gains)) if args.filter_gains else None
    rows = [measure(r, args.episodes, args.seed, plan, args.reader, readings, args.plan_state_model, state_filter)
            for r in args.run_dir]
    names = list(readings)
    header = " | ".join(f"{n + ' readings':>26s}" for n in names)
    print(f"{'run':32s} | {header} | reading errors on visited frames")
    for r in rows:
        score = "mean_max_coverage" if r[names[0]]["mean_max_coverage"] is not None else "mean_return"
        cells = " | ".join(f"{r[n][score]:13.3f} / {r[n]['success_rate']:4.0%} success" for n in names)
        err = "; ".join(n + " " + ", ".join(f"{k} {v:.2f}" for k, v in r[n]["probe_error_median"].items())
                        for n in names if n != "true")
        print(f"{r['run_dir']:32s} | {cells} | {err}")
    write_results(args.out, {"episodes": args.episodes, "seed": args.seed, "readers": args.reader,
                             "planner": asdict(plan) if plan is not None else None,
                             "plan_state_model": args.plan_state_model, "filter_gains": args.filter_gains,
                             "rows": rows})


if __name__ == "__main__":
    main()
