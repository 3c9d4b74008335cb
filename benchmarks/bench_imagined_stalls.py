"""Where an agent's unfinished episodes end in its own learned world: near misses held short of the goal, or far?

    python benchmarks/bench_imagined_stalls.py --run-dir RUN [--run-dir ...] [--episodes 200] [--stochastic]
        [--out benchmarks/results/imagined_stalls.json]

Each agent plays its deterministic policy (or, ``--stochastic``, its sampled actions) in copies of the learned world
it trained in, from starts drawn as the reference system's resets are, for the reference system's episode length
(the episodes of ``fog-eval-imagined --starts reset``, :mod:`fog_agent.imagined`). Per agent: the success rate; the
unfinished episodes counted by their best coverage (Push-T's aux value; bins to the success threshold); how many of
them came within ``--near`` coverage and how many steps they stayed there; and, over the last ``--tail`` steps, the
mean action norm and the mean change of the state per step, of the finished and the unfinished episodes apart (an
episode that holds its block still short of the goal moves little). Prints a table; writes JSON.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.agent_runs_cli import write_results  # noqa: E402

BINS = (0.0, 0.5, 0.8, 0.9, 0.93)


def by_best_coverage(best: np.ndarray, bins: tuple[float, ...] = BINS, success: float = 0.95) -> dict[str, int]:
    """How many of the episodes' best coverages ``best`` short of ``success`` fall in each bin ``[lo, hi)`` of
    ``bins`` (ascending lower edges, the last bin ending at ``success``), keyed ``"lo-hi"``."""
    edges = [*bins, success]
    if any(not 0.0 <= lo < hi for lo, hi in zip(edges[:-1], edges[1:])):
        raise ValueError(f"coverage bins must rise strictly from >= 0 to below the success threshold {success}, "
                         f"got {list(bins)}")
    best = np.asarray(best, dtype=np.float64)
    counts = np.histogram(best[best < success], bins=edges)[0]
    return {f"{lo:g}-{hi:g}": int(c) for lo, hi, c in zip(edges[:-1], edges[1:], counts)}


def stall_summary(coverage: np.ndarray, actions: np.ndarray, states: np.ndarray, success: float = 0.95,
                  near: float = 0.8, tail: int = 100, bins: tuple[float, ...] = BINS) -> dict:
    """Summary of episodes from their per-step coverage (T, N), action norms (T, N) and states (T, N, D)."""
    best = coverage.max(0)
    done = best >= success
    motion = np.abs(np.diff(states[-tail - 1:], axis=0)).sum(-1).mean(0)  # (N,) mean |Δstate| per step
    act = actions[-tail:].mean(0)
    came_near = (coverage[:, ~done] >= near).any(0)
    steps_near = (coverage[:, ~done][:, came_near] >= near).sum(0)

    def mean(x: np.ndarray) -> float | None:
        return float(x.mean()) if x.size else None

    return {
        "episodes": int(best.size), "success_rate": float(done.mean()),
        "unfinished_by_best_coverage": by_best_coverage(best, bins, success),
        "unfinished_near": int(came_near.sum()), "unfinished_mean_steps_near": mean(steps_near),
        "tail_action_norm": {"finished": mean(act[done]), "unfinished": mean(act[~done])},
        "tail_state_motion": {"finished": mean(motion[done]), "unfinished": mean(motion[~done])},
        "unfinished_final_coverage": mean(coverage[-1, ~done]),
    }


def play(run: str, episodes: int, stochastic: bool, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coverage (T, N), action norms (T, N) and observations (T, N, D) of ``run``'s agent in its own world."""
    from fog_agent.evaluate import load_agent
    from fog_agent.imagined import own_world
    from fog_agent.run_io import checkpoint_path

    agent, ckpt = load_agent(checkpoint_path(run))
    envs, steps, _ = own_world(run, ckpt, episodes)
    obs, _ = envs.reset(seed=seed)
    agent.generator.manual_seed(seed)
    cov, norms, states = [], [], []
    for _ in range(steps):
        with torch.no_grad():
            a = agent.act(torch.as_tensor(obs), deterministic=not stochastic).cpu().numpy()
        obs, _, _, _, info = envs.step(a)
        if "coverage" not in info:
            raise ValueError(f"{run}: its world reports no 'coverage' (a Push-T world is needed)")
        cov.append(np.asarray(info["coverage"], float))
        norms.append(np.linalg.norm(a, axis=1))
        states.append(np.asarray(obs, float))
    envs.close()
    return np.stack(cov), np.stack(norms), np.stack(states)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", action="append", required=True)
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--stochastic", action="store_true")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--near", type=float, default=0.8)
    parser.add_argument("--tail", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/imagined_stalls.json")
    args = parser.parse_args(argv)
    if args.episodes < 1 or args.tail < 1:
        parser.error("--episodes and --tail must be >= 1")
    torch.set_num_threads(args.threads)
    rows = []
    for run in args.run_dir:
        cov, norms, states = play(run, args.episodes, args.stochastic, args.seed)
        rows.append({"run": run, **stall_summary(cov, norms, states, near=args.near, tail=args.tail)})
    print("| agent | success | unfinished by best coverage | near (≥ %g), mean steps there | last %d steps: "
          "|a| finished · unfinished | state motion finished · unfinished |" % (args.near, args.tail))
    print("|---|---|---|---|---|---|")
    fmt = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    for r in rows:
        bins = " · ".join(f"{k}: {v}" for k, v in r["unfinished_by_best_coverage"].items())
        print(f"| {r['run']} | {r['success_rate']:.3f} | {bins} | {r['unfinished_near']}, "
              f"{fmt(r['unfinished_mean_steps_near'])} | {fmt(r['tail_action_norm']['finished'])} · "
              f"{fmt(r['tail_action_norm']['unfinished'])} | {fmt(r['tail_state_motion']['finished'])} · "
              f"{fmt(r['tail_state_motion']['unfinished'])} |")
    write_results(args.out, {"episodes": args.episodes, "stochastic": args.stochastic, "seed": args.seed,
                             "near": args.near, "tail": args.tail, "agents": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
