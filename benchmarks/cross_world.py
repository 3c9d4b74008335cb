"""Each Push-T state-world agent played in every state model's world: is a world hard to learn in, or wrong?

    python benchmarks/cross_world.py --run-dir runs/fog_state_fwd_roll4_3000_cov \
        --run-dir runs/fog_state_fwd_3000_gate_anchor --state-model shipped=pusht_state \
        --state-model gate_anchor=runs/state_pusht_gate_anchor/bundle [--episodes 50] [--steps 300]

Starts: the reference system's reset states of the evaluation's seeds (``--seed`` … ``--seed + --episodes −
1``, the 50 episodes ``fog-eval`` deploys on), each played for ``--steps`` steps in each ``--state-model``'s
world (``forward_model="state"``: the model steps ``[ŝ, ŝ_prev]``) with the agent's deterministic action
``tanh(μ)``, as deployed. Per run and world: success (exact polygon coverage ≥ 0.95 at some step), mean max
coverage, and the agent's zero-shot result on ``RealPushT-v0`` read from the run's evaluation JSON.
An agent that does well on the real system but not in a world says that world is wrong where the agent goes;
one that does well in a world it was not trained in, where the agent trained in that world does not, says the
world is right and slower to learn in. Prints a table and writes JSON (default
``benchmarks/results/cross_world_pusht.json``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fog_envs  # noqa: E402,F401
from benchmarks.agent_runs_cli import parse_run_dirs, run_dirs_parser, write_results  # noqa: E402
from benchmarks.bench_state_model import named_bundle  # noqa: E402
from benchmarks.goal_approach import imagined, summary  # noqa: E402
from fog_agent.evaluate import learned_env_for, load_agent  # noqa: E402
from fog_agent.run_io import checkpoint_path  # noqa: E402
from fog_envs.learned.state_local import StateLocalModel  # noqa: E402
from fog_envs.wm.state_model import StateModel  # noqa: E402
from fog_envs.wm.tasks import get_task  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "cross_world_pusht.json"


def reset_states(episodes: int, seed: int) -> torch.Tensor:
    """(episodes, probe_dim) probe-target states of ``RealPushT-v0``'s resets with seeds ``seed + i``."""
    spec = get_task("pusht")
    env = gym.make(spec.real_env_id)
    try:
        states = [env.reset(seed=seed + i)[1]["state"] for i in range(episodes)]
    finally:
        env.close()
    return torch.as_tensor(spec.probe_targets(np.asarray(states)), dtype=torch.float32)


def real_result(run_dir: str | Path) -> dict[str, float] | None:
    """The run's own zero-shot evaluation at the end of training (``eval.json``, else ``fog-eval``'s
    deterministic ``eval_RealPushT-v0.json``), if it has one."""
    paths = [p for p in (Path(run_dir) / "eval.json", Path(run_dir) / "eval_RealPushT-v0.json") if p.exists()]
    if not paths:
        return None
    data = json.loads(paths[0].read_text())
    return {"success": data["success_rate"], "mean_max_coverage": data["mean_max_coverage"],
            "episodes": data["episodes"], "seed": data["seed"]}


def main() -> None:
    parser = run_dirs_parser(__doc__, RESULTS)
    parser.add_argument("--state-model", action="append", required=True, type=named_bundle,
                        help="NAME=BUNDLE (a shipped name or a path; repeat): a world to play every agent in")
    parser.add_argument("--steps", type=int, default=300)
    args = parse_run_dirs(parser)
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    starts = reset_states(args.episodes, args.seed)
    worlds = {name: StateModel.load(bundle, task="pusht")[0] for name, bundle in args.state_model}
    out: dict[str, Any] = {"episodes": args.episodes, "seed": args.seed, "steps": args.steps,
                           "worlds": dict(args.state_model), "runs": {}}
    print(f"{args.episodes} reset states (seeds {args.seed}…), {args.steps} steps, deterministic actions")
    print(f"{'run':44s} | " + " | ".join(f"{name:>16s}" for name in [*worlds, "RealPushT-v0"]))
    for run_dir in args.run_dir:
        agent, ckpt = load_agent(checkpoint_path(run_dir))
        local = getattr(learned_env_for(ckpt).backend, "state_local", None)
        if not isinstance(local, StateLocalModel):
            raise ValueError(f"{run_dir}: cross_world needs a Push-T agent trained with local_model='state'")
        t0 = time.perf_counter()
        row: dict[str, Any] = {"state_model": ckpt.get("state_model"), "worlds": {}}
        for name, sm in worlds.items():
            rows = imagined(agent, StateLocalModel(local.model, sm), starts, args.steps, sampled=False)
            row["worlds"][name] = {"summary": summary(rows), "max_coverages": [r["max_coverage"] for r in rows]}
        row["real"] = real_result(run_dir)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        out["runs"][run_dir] = row
        cells = [f"{w['summary']['success']:5.0%} / {w['summary']['mean_max_coverage']:.3f}"
                 for w in row["worlds"].values()]
        real = row["real"]
        cells.append("–" if real is None else f"{real['success']:5.0%} / {real['mean_max_coverage']:.3f}")
        print(f"{run_dir:44s} | " + " | ".join(f"{c:>16s}" for c in cells))
    write_results(args.out, out)


if __name__ == "__main__":
    main()
