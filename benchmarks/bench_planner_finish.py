"""Which planner finishes Push-T when it knows the true state? Planner variants side by side.

    python benchmarks/bench_planner_finish.py --run-dir runs/base_s1 --plan-state-model pusht_state_block \\
        --variant default --variant value0:value_weight=0 --variant wide:samples=256,elites=16 [--episodes 30]

With the probe's readings out of the way (the observer is handed ``RealPushT-v0``'s true state, ``obs_type="state"``,
nothing is drawn), what is left between a deployed planner and success is the planner itself and the model it
plans in. Each variant plays the same ``--episodes`` seeded ``RealPushT-v0`` episodes (default seeds from
200,000: not the standard evaluation's 100,000 ones, so nothing is tuned on those): the actor alone (``actor``)
and each ``NAME[:key=value,...]`` variant of :class:`fog_agent.planner.PlannerConfig` (overrides on top of
``engage_reward=0.6``, the deployed default), planning in the agent's own local model or in
``--plan-state-model``. The actor is deterministic, so every variant reaches the same states until the planner
engages (where the model's reward, a soft coverage within ~1e-3 of the exact one, reaches 0.6); an episode ends
``--steps-after`` steps after the first step whose exact coverage reaches ``--engage-coverage`` (0.6) (or at 300),
which spends the time where the variants differ. Per variant: success (coverage ≥ 0.95 at some step), mean
max coverage, the block's median position and angle error at the best step, the share of episodes that reached
the engage coverage, seconds per step. Prints a table and writes JSON (default
``benchmarks/results/planner_finish.json``).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fog_envs  # noqa: E402,F401
from benchmarks.agent_runs_cli import parse_run_dirs, run_dirs_parser, write_results  # noqa: E402
from benchmarks.final_approach import best_step_errors  # noqa: E402
from benchmarks.goal_approach import load_pusht_state_agent, summary  # noqa: E402
from fog_agent.controller import FogController  # noqa: E402
from fog_agent.evaluate import learned_env_for, load_agent  # noqa: E402
from fog_agent.planner import PlannerConfig, PolicyCEM  # noqa: E402
from fog_agent.run_io import checkpoint_path  # noqa: E402
from fog_envs.learned.state_local import StateLocalModel  # noqa: E402
from fog_envs.real.pusht import MAX_TARGET_DELTA, TABLE_SIZE  # noqa: E402
from fog_envs.real.pusht_reward import SUCCESS_COVERAGE, coverage  # noqa: E402
from fog_envs.real.pusht_reward_torch import reward as pusht_reward  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "planner_finish.json"
BASE = PlannerConfig(engage_reward=0.6)


def parse_variant(text: str, base: PlannerConfig = BASE) -> tuple[str, PlannerConfig | None]:
    """``NAME`` or ``NAME:key=value,...`` → (NAME, the base config with those fields replaced); ``actor``: None
    (the actor alone). Unknown fields and unparsable values are refused by name."""
    name, _, spec = text.partition(":")
    if not name:
        raise ValueError(f"variant {text!r}: needs a name before ':'")
    if name == "actor":
        if spec:
            raise ValueError(f"variant {text!r}: 'actor' takes no planner settings")
        return name, None
    fields = {f.name: f for f in dataclasses.fields(PlannerConfig)}
    changes: dict[str, Any] = {}
    for item in filter(None, spec.split(",")):
        key, eq, value = item.partition("=")
        if not eq or key not in fields:
            raise ValueError(f"variant {text!r}: {item!r} is not key=value with a PlannerConfig field "
                             f"({', '.join(fields)})")
        current = getattr(base, key)
        declared = str(fields[key].type)  # for fields whose default is None: "int | None", "float | None"
        kind = (str if isinstance(current, str) else int if isinstance(current, int) else
                int if current is None and declared.startswith("int") else float)
        try:
            changes[key] = None if value.lower() == "none" else kind(value)
        except ValueError:
            raise ValueError(f"variant {text!r}: {key} takes {kind.__name__} values, got {value!r}") from None
    return name, dataclasses.replace(base, **changes)


def finish_coverage_score(sdim: int, cap: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """Push-T's reward of local states ``[s_t, s_{t−1}]`` with the coverage term growing up to coverage ``cap``."""
    return lambda x: pusht_reward(x[..., :sdim], coverage_cap=cap)


class TrueStateObserver:
    """The local state ``[s_t, s_{t−1}]`` built from the true state the env returns as its observation
    (``obs_type="state"``) instead of a reading of a frame."""

    def __init__(self, local: StateLocalModel, spec: Any) -> None:
        self.local, self.spec = local, spec
        self._x: torch.Tensor | None = None

    def _reading(self, obs: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self.spec.probe_targets(np.asarray(obs)[None]).astype(np.float32))

    def reset(self, obs: np.ndarray) -> torch.Tensor:
        self._x = self.local.start(self._reading(obs))
        return self._x[0]

    def update(self, action: np.ndarray, obs: np.ndarray) -> torch.Tensor:
        self._x = self.local.advance(self._x, self._reading(obs))
        return self._x[0]


class TrueDynamics:
    """A planning model that is the reference system itself: ``step(x, a)`` steps copies of the real env's physics.

    A rollout that starts from the planner's root state (rows that are not this model's last output) copies the
    real env's bodies, velocities included, into a pool of envs; later steps of the same rollout step those copies
    on. Each step applies gym-pusht's control law (the agent's target ``position + MAX_TARGET_DELTA·a``, a PD
    acceleration towards it at every 0.01 s physics step) without computing the env's reward or observation; the
    local state's previous half is the input's current one, as the state model's is."""

    def __init__(self, real: Any, spec: Any) -> None:
        self.real, self.spec = real, spec
        self.pool: list[Any] = []
        self._last: torch.Tensor | None = None

    def _copy(self, env: Any) -> None:
        for name in ("agent", "block"):  # the angle first: pymunk turns a body about its centre of gravity
            src, dst = getattr(self.real, name), getattr(env, name)
            dst.angle, dst.angular_velocity = src.angle, src.angular_velocity
            dst.position, dst.velocity = src.position, src.velocity

    @staticmethod
    def _physics(env: Any, action: np.ndarray) -> None:
        target = np.clip(np.asarray(env.agent.position) + action * MAX_TARGET_DELTA, 0.0, TABLE_SIZE)
        for _ in range(int(round(1 / (env.dt * env.control_hz)))):
            position, velocity = np.asarray(env.agent.position), np.asarray(env.agent.velocity)
            acceleration = env.k_p * (target - position) - env.k_v * velocity
            env.agent.velocity = tuple(velocity + acceleration * env.dt)
            env.space.step(env.dt)

    def __call__(self, x: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        while len(self.pool) < n:
            env = gym.make("RealPushT-v0", obs_type="state", disable_env_checker=True).unwrapped
            env.reset(seed=len(self.pool))
            self.pool.append(env)
        fresh = self._last is None or self._last.shape != x.shape or not torch.equal(self._last, x)
        actions = action.detach().cpu().double().numpy()
        for i in range(n):
            if fresh:
                self._copy(self.pool[i])
            self._physics(self.pool[i], actions[i])
        states = np.stack([env.true_state() for env in self.pool[:n]])
        s = torch.from_numpy(self.spec.probe_targets(states)).to(x)
        self._last = torch.cat([s, x[:, :s.shape[1]]], -1)
        return self._last


def play(controller: FogController, env: gym.Env, episodes: int, seed: int, engage_coverage: float,
         steps_after: int) -> list[dict[str, float]]:
    """Seeded episodes ``seed, seed + 1, ...`` of ``env`` (``RealPushT-v0``, ``obs_type="state"``), each ended
    ``steps_after`` steps after its coverage first reaches ``engage_coverage``; per episode
    :func:`best_step_errors`, whether it engaged, and its length."""
    rows = []
    for ep in range(episodes):
        obs, info = env.reset(seed=seed + ep)
        controller.reset(obs, info)
        states, done, engaged_at = [np.asarray(info["state"])], False, None
        while not done:
            obs, _, terminated, truncated, info = env.step(controller.act(obs, info))
            states.append(np.asarray(info["state"]))
            if engaged_at is None and info["coverage"] >= engage_coverage:
                engaged_at = len(states) - 1
            done = terminated or truncated or (engaged_at is not None and len(states) - 1 - engaged_at >= steps_after)
        traj = np.stack(states)
        rows.append({**best_step_errors(traj, np.array([coverage(s[2:5]) for s in traj])),
                     "engaged": float(engaged_at is not None), "length": len(states) - 1})
    return rows


def main() -> None:
    parser = run_dirs_parser(__doc__, RESULTS, episodes=30, seed=200_000)
    parser.add_argument("--engage-coverage", type=float, default=0.6)
    parser.add_argument("--steps-after", type=int, default=100)
    parser.add_argument("--plan-state-model", default=None, help="plan in this state-model bundle (name or path)")
    parser.add_argument("--variant", action="append", default=None,
                        help="NAME[:key=value,...] PlannerConfig overrides, or 'actor' (repeatable; default: "
                             "actor and default)")
    parser.add_argument("--oracle", action="append", default=[],
                        help="NAME[:key=value,...]: a planner variant that plans in the reference system's own "
                             "physics (TrueDynamics) instead of a model (repeatable)")
    parser.add_argument("--finish-coverage-cap", type=float, default=None, metavar="C",
                        help="variants with finish_reward score their finish phase with the Push-T reward whose "
                        "coverage term grows up to coverage C (the task's caps it at 0.95): aim past the threshold")
    parser.add_argument("--companion", action="append", default=[],
                        help="RUN_DIR of another agent whose critics and policy join every planner variant's "
                             "(PolicyCEM's companions; repeatable)")
    args = parse_run_dirs(parser)
    if args.finish_coverage_cap is not None and not SUCCESS_COVERAGE <= args.finish_coverage_cap <= 1:
        parser.error(f"--finish-coverage-cap must lie in [{SUCCESS_COVERAGE}, 1], got {args.finish_coverage_cap}")
    if args.steps_after < 1:
        parser.error(f"--steps-after must be >= 1, got {args.steps_after}")
    try:
        variants = [(*parse_variant(v), False) for v in (args.variant or ["actor", "default"])]
        variants += [(f"{name}@physics", cfg, True) for name, cfg in map(parse_variant, args.oracle)]
        if any(cfg is None for _, cfg, oracle in variants if oracle):
            raise ValueError("--oracle 'actor': the actor plans nothing")
    except ValueError as e:
        parser.error(str(e))
    out: dict[str, Any] = {"episodes": args.episodes, "seed": args.seed, "engage_coverage": args.engage_coverage,
                           "steps_after": args.steps_after, "plan_state_model": args.plan_state_model,
                           "companions": args.companion, "finish_coverage_cap": args.finish_coverage_cap,
                           "runs": {}}
    companions = [load_agent(checkpoint_path(r))[0] for r in args.companion]
    print(f"{args.episodes} episodes from seed {args.seed}, ended {args.steps_after} steps after coverage "
          f"{args.engage_coverage:g}, true state")
    print(f"{'run':22s} | {'variant':18s} | success | max cov | pos px | ang ° | engaged | s/step")
    for run_dir in args.run_dir:
        agent, ckpt, envs, local = load_pusht_state_agent(run_dir)
        plan_envs = envs if args.plan_state_model is None else learned_env_for(
            {**ckpt, "state_model": args.plan_state_model})
        observer = TrueStateObserver(local, envs.backend.model.task)
        env = gym.make("RealPushT-v0", obs_type="state")
        oracle = TrueDynamics(env.unwrapped, envs.backend.model.task)
        out["runs"][run_dir] = {}
        for name, cfg, in_physics in variants:
            step = oracle if in_physics else plan_envs.diff.local_step
            finish_score = (None if cfg is None or cfg.finish_reward is None or args.finish_coverage_cap is None
                            else finish_coverage_score(local.sdim, args.finish_coverage_cap))
            planner = None if cfg is None else PolicyCEM(agent, step, plan_envs.diff.local_reward, cfg, companions,
                                                         finish_score)
            t0 = time.perf_counter()
            rows = play(FogController(agent, observer, planner=planner), env, args.episodes, args.seed,
                        args.engage_coverage, args.steps_after)
            s = {**summary(rows), "engaged": float(np.mean([r["engaged"] for r in rows])),
                 "seconds_per_step": (time.perf_counter() - t0) / sum(r["length"] for r in rows)}
            out["runs"][run_dir][name] = {"planner": None if cfg is None else dataclasses.asdict(cfg),
                                          "model": "reference physics" if in_physics else
                                          args.plan_state_model or "the agent's own",
                                          "summary": s, "episodes": rows}
            print(f"{Path(run_dir).name:22s} | {name:18s} | {s['success']:7.2f} | {s['mean_max_coverage']:7.3f} | "
                  f"{s['median_position_px']:6.1f} | {s['median_angle_deg']:5.1f} | {s['engaged']:7.2f} | "
                  f"{s['seconds_per_step']:.3f}", flush=True)
            write_results(args.out, out)
        env.close()


if __name__ == "__main__":
    main()
