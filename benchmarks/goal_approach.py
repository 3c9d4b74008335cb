"""Does a state-world Push-T agent finish the job from near the goal, in its world and on the real system?

    python benchmarks/goal_approach.py --run-dir runs/fog_state_fwd_roll4_3000_cov [--run-dir ...] [--starts 50]

For an agent trained with ``local_model="state"``: ``--starts`` start states with the block near the goal
(:func:`fog_envs.real.pusht_starts.near_goal`, agents anywhere on the table; seeded), each played for
``--steps`` steps three ways: in the agent's own world (the state model steps ``[ŝ, ŝ_prev]``, as
``forward_model="state"`` does) with the deterministic action ``tanh(μ)``, the same with sampled actions (as in
training), and on ``RealPushT-v0`` reset to that state, deployed as ``fog-eval`` deploys it (the probe reads the
frames). Per way: success (coverage ≥ 0.95 at some step), mean max coverage (the exact polygon coverage of the
pose, imagined or true) and the median block pose error at the best step. Where the agent succeeds in its world
but not on the real system, the world's precision near the goal is what is missing; where it fails in both,
the policy is. ``--plan`` adds both ways again with decision-time planning in the agent's world
(:mod:`fog_agent.planner`, as ``fog-eval --plan``): where planning finishes the starts in the world but not on the
real system, the policy's precision was not what was missing. Prints a table and writes JSON (default
``benchmarks/results/goal_approach.json``).
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fog_envs  # noqa: E402,F401
from benchmarks.agent_runs_cli import parse_run_dirs, run_dirs_parser, write_results  # noqa: E402
from benchmarks.final_approach import best_step_errors  # noqa: E402
from fog_agent.controller import FogController  # noqa: E402
from fog_agent.evaluate import learned_env_for, load_agent  # noqa: E402
from fog_agent.planner import PlannerConfig, PolicyCEM  # noqa: E402
from fog_agent.run_io import checkpoint_path  # noqa: E402
from fog_envs.learned.state_local import StateLocalModel  # noqa: E402
from fog_envs.real.pusht_goal_frames import goal_states, probe_to_true as to_pose  # noqa: E402
from fog_envs.real.pusht_reward import SUCCESS_COVERAGE, coverage  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "goal_approach.json"


def start_states(n: int, seed: int) -> torch.Tensor:
    """``n`` probe-target states: agents uniform over the table, blocks near the goal (seeded)."""
    return goal_states(n, seed)


def score(poses: np.ndarray) -> dict[str, float]:
    """Max coverage of one episode's true-layout poses (T, 5) and the block pose error at its best step
    (:func:`benchmarks.final_approach.best_step_errors`)."""
    return best_step_errors(poses, np.array([coverage(p[2:5]) for p in poses]))


@torch.no_grad()
def imagined(agent: Any, local: StateLocalModel, starts: torch.Tensor, steps: int, sampled: bool,
             planner: PolicyCEM | None = None) -> list[dict]:
    """Episodes in the agent's world: tanh(μ), sampled actions, or (one start at a time) the planner's."""
    if planner is not None:
        rows = []
        for start in starts:
            planner.reset()
            x = local.start(start[None])
            traj = [x[:, :local.sdim].numpy()]
            for _ in range(steps):
                x = local.step(x, planner.plan(x[0])[None].clamp(-1.0, 1.0))
                traj.append(x[:, :local.sdim].numpy())
            rows.append(score(to_pose(np.concatenate(traj))))
        return rows
    x = local.start(starts)
    traj = [x[:, :local.sdim].numpy()]
    for _ in range(steps):
        x = local.step(x, agent.act(x, deterministic=not sampled).clamp(-1.0, 1.0))
        traj.append(x[:, :local.sdim].numpy())
    poses = to_pose(np.stack(traj, 1))
    return [score(p) for p in poses]


def real(agent: Any, envs: Any, starts: torch.Tensor, steps: int, planner: PolicyCEM | None = None) -> list[dict]:
    env = gym.make(envs.reference_env_id, max_episode_steps=steps)
    rows = []
    for pose in to_pose(starts.numpy()):
        obs, info = env.reset(seed=0, options={"reset_to_state": pose})
        controller = FogController(agent, envs.make_observer(), planner=planner)
        controller.reset(obs, info)
        poses, done = [np.asarray(info["state"])], False
        while not done:
            obs, _, terminated, truncated, info = env.step(controller.act(obs, info))
            poses.append(np.asarray(info["state"]))
            done = terminated or truncated
        rows.append(score(np.stack(poses)))
    env.close()
    return rows


def load_pusht_state_agent(run_dir: str) -> tuple[Any, dict, Any, StateLocalModel]:
    """A Push-T agent trained with ``local_model="state"``: (agent, checkpoint, its learned env, its state local
    model); any other agent is refused by name."""
    agent, ckpt = load_agent(checkpoint_path(run_dir))
    envs = learned_env_for(ckpt)
    local = getattr(envs.backend, "state_local", None)
    if not isinstance(local, StateLocalModel) or envs.reference_env_id != "RealPushT-v0":
        raise ValueError(f"{run_dir}: needs a Push-T agent trained with local_model='state'")
    return agent, ckpt, envs, local


def summary(rows: list[dict]) -> dict[str, float]:
    return {"success": float(np.mean([r["max_coverage"] >= SUCCESS_COVERAGE for r in rows])),
            "mean_max_coverage": float(np.mean([r["max_coverage"] for r in rows])),
            "median_position_px": float(np.median([r["position_px"] for r in rows])),
            "median_angle_deg": float(np.median([r["angle_deg"] for r in rows]))}


def main() -> None:
    parser = run_dirs_parser(__doc__, RESULTS, episodes_flag="--starts", seed=0)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--plan", action="store_true", help="also play both ways with decision-time planning in "
                        "the agent's world (fog_agent.planner's default planner, as fog-eval --plan)")
    args = parse_run_dirs(parser, episodes_flag="--starts")
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    starts = start_states(args.starts, args.seed)
    out: dict[str, Any] = {"starts": args.starts, "steps": args.steps, "seed": args.seed,
                           "planner": asdict(PlannerConfig()) if args.plan else None,
                           "start_mean_coverage": float(np.mean([coverage(p[2:5]) for p in to_pose(starts.numpy())])),
                           "runs": {}}
    print(f"{args.starts} near-goal starts (mean coverage {out['start_mean_coverage']:.3f}), {args.steps} steps")
    print(f"{'run':44s} | {'way':22s} | success | max cov | pos px | ang °")
    for run_dir in args.run_dir:
        agent, ckpt, envs, local = load_pusht_state_agent(run_dir)
        t0 = time.perf_counter()
        ways = {"world, deterministic": imagined(agent, local, starts, args.steps, sampled=False),
                "world, sampled": imagined(agent, local, starts, args.steps, sampled=True),
                "RealPushT-v0": real(agent, envs, starts, args.steps)}
        if args.plan:
            planner = PolicyCEM(agent, envs.diff.local_step, envs.diff.local_reward, PlannerConfig())
            ways["world, planned"] = imagined(agent, local, starts, args.steps, sampled=False, planner=planner)
            ways["RealPushT-v0, planned"] = real(agent, envs, starts, args.steps, planner=planner)
        out["runs"][run_dir] = {"seconds": round(time.perf_counter() - t0, 1),
                                **{k: {"summary": summary(v), "episodes": v} for k, v in ways.items()}}
        for way, rows in ways.items():
            s = summary(rows)
            print(f"{run_dir:44s} | {way:22s} | {s['success']:7.2f} | {s['mean_max_coverage']:7.3f} | "
                  f"{s['median_position_px']:6.1f} | {s['median_angle_deg']:5.1f}")
    write_results(args.out, out)


if __name__ == "__main__":
    main()
