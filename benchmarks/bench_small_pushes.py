"""Small pushes near the goal: how far the real block moves, how far a state model says it moves.

    python benchmarks/bench_small_pushes.py --state-model shipped=pusht_state \
        --state-model nudge=runs/state_pusht_nudge/bundle [--starts 200] [--steps 4] [--out ...]

The last pixels of a Push-T episode are small corrective pushes against a block that lies near its goal. Starts
(seeded): the block at the goal pose moved by N(0, 8 px) and N(0, 0.1 rad), the agent at rest and touching it
(its 15 px radius plus 1 px off a random point of the outline, on the line from the T's centroid through that
point, kept where it clears the rest of the T by 14 px: about a third of the draws). The agent then pushes
towards the centroid with the same action, ``magnitude`` × that direction (the target 40 px · magnitude
ahead), for ``--steps`` steps, on the reference system and, from the same true
state (at rest: s_prev = s), in every state model. Per magnitude: the real block's displacement, the model's,
and the model's block error against the real end state (px, degrees; medians). A model that answers a gentle
push with half the real motion teaches an agent to push too hard where precision counts. Prints a table and
writes JSON.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.agent_runs_cli import write_results  # noqa: E402
from benchmarks.bench_rest_drift import model_rollout  # noqa: E402
from benchmarks.bench_state_model import named_bundle  # noqa: E402
from fog_envs.wm.state_model import StateModel  # noqa: E402
from fog_envs.wm.tasks import get_task  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
AGENT_RADIUS = 15.0  #: px, gym-pusht's agent disc


def contact_starts(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(states (M, 5), unit directions from the agent to the T's centroid (M, 2))``, M ≤ n: block near the
    goal, agent touching it."""
    import shapely.geometry as sg

    from fog_envs.real.pusht_reward import GOAL_POSE, tee_polygon

    rng = np.random.default_rng(seed)
    states, normals = [], []
    for _ in range(n):
        block = GOAL_POSE + np.array([*rng.normal(0.0, 8.0, 2), rng.normal(0.0, 0.1)])
        outline = tee_polygon(block)
        centre = np.array(outline.centroid.coords[0])
        point = np.array(outline.boundary.interpolate(rng.random(), normalized=True).coords[0])
        normal = (point - centre) / (np.linalg.norm(point - centre) + 1e-9)
        agent = point + normal * (AGENT_RADIUS + 1.0)
        if outline.distance(sg.Point(*agent)) < AGENT_RADIUS - 1.0:
            continue  # the disc would overlap another arm of the T
        states.append([*agent, *block])
        normals.append(-normal)
    return np.asarray(states), np.asarray(normals)


def block_moved_px(traj: np.ndarray) -> np.ndarray:
    """(M,) how far the block moved (px) from the first to the last step of probe-target trajectories (M, T, D)."""
    return get_task("pusht").probe_errors(traj[:, -1], traj[:, 0])["block_px"]


def reference_pushes(starts: np.ndarray, actions: np.ndarray, steps: int) -> np.ndarray:
    """(M, steps + 1, probe_dim) the reference system's probe targets under the constant ``actions`` (M, 2)."""
    import gymnasium as gym

    import fog_envs  # noqa: F401  (registers the envs)

    spec = get_task("pusht")
    env = gym.make("RealPushT-v0", obs_type="state", max_episode_steps=None)
    out = []
    try:
        for i, start in enumerate(starts):
            _, info = env.reset(seed=i, options={"reset_to_state": start})
            states = [info["state"]]
            for _ in range(steps):
                _, _, _, _, info = env.step(actions[i])
                states.append(info["state"])
            out.append(spec.probe_targets(np.asarray(states)))
    finally:
        env.close()
    return np.asarray(out, dtype=np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state-model", action="append", required=True, metavar="NAME=BUNDLE")
    parser.add_argument("--magnitudes", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.4, 0.8])
    parser.add_argument("--starts", type=int, default=200, help="attempted starts per magnitude")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS / "small_pushes_pusht.json"))
    args = parser.parse_args()
    if args.starts < 1 or args.steps < 1:
        parser.error(f"need --starts >= 1 and --steps >= 1, got {args.starts}, {args.steps}")
    if any(not 0.0 < m <= 1.0 for m in args.magnitudes):
        parser.error(f"--magnitudes must lie in (0, 1], got {args.magnitudes}")
    torch.set_num_threads(args.threads)
    spec = get_task("pusht")
    models = [(name, bundle, StateModel.load(bundle, task="pusht")[0]) for name, bundle in
              map(named_bundle, args.state_model)]
    rows = []
    for k, magnitude in enumerate(args.magnitudes):
        starts, inward = contact_starts(args.starts, args.seed + k)
        actions = (inward * magnitude).astype(np.float32)
        truth = reference_pushes(starts, actions, args.steps)
        real_moved = block_moved_px(truth)
        row = {"magnitude": magnitude, "starts": len(starts), "real_block_px": float(np.median(real_moved)),
               "models": {}}
        for name, bundle, model in models:
            traj = model_rollout(model, truth[:, 0], np.repeat(actions[:, None], args.steps, axis=1))
            err = spec.probe_errors(traj[:, -1], truth[:, -1])
            model_moved = block_moved_px(traj)
            ratio = model_moved / np.maximum(real_moved, 1e-6)
            row["models"][name] = {"bundle": bundle, "block_px": float(np.median(model_moved)),
                                   "gain_median": float(np.median(ratio[real_moved > 0.5])),
                                   "block_err_px": float(np.median(err["block_px"])),
                                   "block_err_deg": float(np.median(err["block_deg"])),
                                   "agent_err_px": float(np.median(err["agent_px"]))}
        rows.append(row)
    print(f"Push-T: {args.steps} steps of a constant push into a block near the goal, from contact; medians "
          "(block moved: real / model px; gain: model / real where the real block moved > 0.5 px; error at the "
          "end: block px / deg)")
    names = [n for n, _, _ in models]
    print(" | ".join(["magnitude", "starts", "real px", *[f"{n}: px, gain, err px/deg" for n in names]]))
    for r in rows:
        cells = [f"{r['models'][n]['block_px']:.1f}, {r['models'][n]['gain_median']:.2f}, "
                 f"{r['models'][n]['block_err_px']:.1f} / {r['models'][n]['block_err_deg']:.1f}" for n in names]
        print(" | ".join([f"{r['magnitude']:g}", str(r["starts"]), f"{r['real_block_px']:.1f}", *cells]))
    write_results(args.out, {"args": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
