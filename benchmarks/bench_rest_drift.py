"""Does a state model leave a resting object alone? Drift under "hold still", side by side with the truth.

    python benchmarks/bench_rest_drift.py --task pusht --state-model shipped=pusht_state \
        --state-model gate=runs/state_pusht_gate/bundle [--starts 200] [--steps 100] [--out ...]

Starts: the reference system's own reset states (seeds 0 … ``--starts`` − 1), once as drawn ("table") and once
with the object moved onto its goal ("goal"). Actions (``--motion``): ``idle``, 0 at every step (Push-T: the
agent's target is where it is; the cube: zero velocity), or ``wander``, a seeded random walk of the pusher
(uniform actions in ±``--wander-scale``, the same sequence for the reference and every model), which tests
whether a model keeps the object still while the pusher moves elsewhere. The reference system is rolled out from every start and only the starts where its
object stays put throughout (the pusher clear of it) are kept. From those a model whose passive objects drift
under their MLP's small bias moves the object by itself, so that in its world a finished push does not stay
finished. For the reference and each model: the object's and the pusher's displacement from the start (the
task's probe errors; median and 90th percentile) and, from the goal, the share still a success, after each of
``--report`` steps. From the table starts also the object's gap to its goal (``--report`` steps against the
start: the mean change and the share of starts whose gap shrank), which tells whether a model's drift is
aimless or carries resting objects toward the goal. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.agent_runs_cli import write_results  # noqa: E402
from benchmarks.bench_state_model import named_bundle  # noqa: E402
from fog_envs.wm.state_model import StateModel  # noqa: E402
from fog_envs.wm.tasks import TaskSpec, get_task  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
REST_TOL = 1e-6  #: probe-target units: the reference object rests if it never moves more than this
OBJECT_METRICS = {"pusht": ("block_px", "block_deg"), "cube": ("cube_m",)}
"""the probe errors (:attr:`TaskSpec.probe_errors`) that measure the passive object's pose"""


def at_goal(task: str, states: np.ndarray) -> np.ndarray:
    """True states (N, state_dim) with the task's object moved onto its goal (Push-T: the goal pose; the cube:
    the goal's centre, its yaw kept)."""
    out = np.array(states, dtype=np.float64)
    if task == "pusht":
        from fog_envs.real.pusht_reward import GOAL_POSE

        out[:, 2:5] = GOAL_POSE
    else:
        from fog_envs.real.cube import GOAL_CENTER

        out[:, 3:5] = np.asarray(GOAL_CENTER)[:2]
    return out


def action_sequences(spec: TaskSpec, n: int, steps: int, motion: str, scale: float, seed: int) -> np.ndarray:
    """(n, steps, action_dim): zeros (``idle``) or seeded uniform actions in ±``scale`` (``wander``)."""
    if motion == "idle":
        return np.zeros((n, steps, spec.action_dim), np.float32)
    return np.random.default_rng(seed).uniform(-scale, scale, (n, steps, spec.action_dim)).astype(np.float32)


def reference_rollout(spec: TaskSpec, starts: np.ndarray | None, seeds: list[int], actions: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``(start states (N, state_dim), trajectories (N, steps + 1, probe_dim))`` of the reference system under
    ``actions`` (N, steps, A), from ``starts`` (``reset_to_state``) or, where None, from its reset with each of
    ``seeds``."""
    import gymnasium as gym

    import fog_envs  # noqa: F401  (registers the envs)

    env = gym.make(spec.real_env_id, max_episode_steps=None)
    firsts, trajs = [], []
    try:
        for i, seed in enumerate(seeds):
            options = None if starts is None else {"reset_to_state": starts[i]}
            _, info = env.reset(seed=seed, options=options)
            states = [info["state"]]
            for a in actions[i]:
                _, _, _, _, info = env.step(a)
                states.append(info["state"])
            firsts.append(states[0])
            trajs.append(spec.probe_targets(np.asarray(states)))
    finally:
        env.close()
    return np.asarray(firsts), np.asarray(trajs, dtype=np.float64)


def resting(spec: TaskSpec, traj: np.ndarray) -> np.ndarray:
    """(N,) bool: the passive object's probe targets never leave their start by more than :data:`REST_TOL`."""
    dims = list(spec.passive_dims)
    return np.abs(traj[:, :, dims] - traj[:, :1, dims]).max(axis=(1, 2)) < REST_TOL


@torch.no_grad()
def model_rollout(model: StateModel, starts: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """(N, steps + 1, probe_dim) the state model's states from the probe targets ``starts`` (at rest:
    s_prev = s) under ``actions`` (N, steps, A)."""
    s = torch.from_numpy(np.asarray(starts, dtype=np.float32))
    s_prev, out = s, [s]
    for k in range(actions.shape[1]):
        s_prev, s = s, model.step(s, s_prev, torch.from_numpy(actions[:, k]))
        out.append(s)
    return torch.stack(out, 1).double().numpy()


def summarise(spec: TaskSpec, traj: np.ndarray, report: list[int], against: np.ndarray | None = None
              ) -> dict[str, dict[str, float]]:
    """``{str(step): {<metric>_median, <metric>_p90, still_success}}`` at each reported step: the task's probe
    errors of the state against ``against`` (N, steps + 1, probe_dim; default: the start) (:attr:`TaskSpec.probe_errors`) and the share of successes
    (:attr:`TaskSpec.state_outcome`)."""
    out = {}
    for t in report:
        row = {}
        ref = traj[:, 0] if against is None else against[:, t]
        for k, v in spec.probe_errors(traj[:, t], ref).items():
            row[f"{k}_median"] = float(np.median(v))
            row[f"{k}_p90"] = float(np.quantile(v, 0.9))
        success, _ = spec.state_outcome(torch.from_numpy(traj[:, t]).float())
        row["still_success"] = float(success.float().mean())
        out[str(t)] = row
    return out


def goal_gap_change(spec: TaskSpec, traj: np.ndarray, goal: np.ndarray, metrics: tuple[str, ...],
                    report: list[int]) -> dict[str, dict[str, float]]:
    """``{str(step): {<metric>_change_mean, <metric>_closer}}``: how the object's gap to its goal, the probe
    errors ``metrics`` of ``traj`` (N, steps + 1, probe_dim) against ``goal`` (N, probe_dim), changed from the
    start to each reported step (mean, in the metric's units) and the share of starts where it shrank; 0 and 0
    for an object that stays put."""
    start = spec.probe_errors(traj[:, 0], goal)
    out = {}
    for t in report:
        now = spec.probe_errors(traj[:, t], goal)
        out[str(t)] = {}
        for m in metrics:
            change = now[m] - start[m]
            out[str(t)][f"{m}_change_mean"] = float(change.mean())
            out[str(t)][f"{m}_closer"] = float((change < 0).mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="pusht", choices=["pusht", "cube"])
    parser.add_argument("--state-model", action="append", required=True, metavar="NAME=BUNDLE")
    parser.add_argument("--starts", type=int, default=200, help="reset seeds 0 … N − 1 of the reference system")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--motion", default="idle", choices=["idle", "wander"])
    parser.add_argument("--wander-scale", type=float, default=0.3)
    parser.add_argument("--report", type=int, nargs="+", default=[1, 10, 50, 100])
    parser.add_argument("--seed", type=int, default=0, help="of the wander actions")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/rest_drift_<task>_<motion>.json)")
    args = parser.parse_args()
    if args.starts < 1 or args.steps < 1:
        parser.error(f"need --starts >= 1 and --steps >= 1, got {args.starts}, {args.steps}")
    if any(not 1 <= t <= args.steps for t in args.report):
        parser.error(f"--report steps must lie in [1, --steps={args.steps}], got {args.report}")
    torch.set_num_threads(args.threads)
    spec = get_task(args.task)
    seeds = list(range(args.starts))
    actions = action_sequences(spec, args.starts, args.steps, args.motion, args.wander_scale, args.seed)
    table_states, table_traj = reference_rollout(spec, None, seeds, actions)
    _, goal_traj = reference_rollout(spec, at_goal(args.task, table_states), seeds, actions)
    object_metrics = OBJECT_METRICS[args.task]
    starts, kept, truth, keeps, rows = {}, {}, {}, {}, []
    for where, traj in (("table", table_traj), ("goal", goal_traj)):
        keep = keeps[where] = resting(spec, traj)
        starts[where], kept[where], truth[where] = traj[keep, 0], actions[keep], traj[keep]
        rows.append({"name": "reference", "where": where, "starts": int(keep.sum()),
                     "steps": summarise(spec, traj[keep], args.report)})
    goal_targets = spec.probe_targets(at_goal(args.task, table_states[keeps["table"]]))
    rows[0]["goal_gap"] = goal_gap_change(spec, truth["table"], goal_targets, object_metrics, args.report)
    for name, bundle in map(named_bundle, args.state_model):
        model, _ = StateModel.load(bundle, task=args.task)
        for where, s in starts.items():
            traj = model_rollout(model, s, kept[where])
            rows.append({"name": name, "bundle": bundle, "where": where, "starts": len(s),
                         "rest_gate": list(model.config.rest_gate), "idle_anchor": model.config.idle_anchor,
                         "steps": summarise(spec, traj, args.report),
                         "error": summarise(spec, traj, args.report, truth[where])})
            if where == "table":
                rows[-1]["goal_gap"] = goal_gap_change(spec, traj, goal_targets, object_metrics, args.report)
    metrics = [k[:-len("_median")] for k in rows[0]["steps"][str(args.report[0])] if k.endswith("_median")]
    print(f"{args.task}: {args.motion} actions for {args.steps} steps from {len(starts['table'])} table and "
          f"{len(starts['goal'])} goal starts where the reference object rests (of {args.starts} each); "
          f"displacement from the start, median (90th percentile); '{metrics[0]} err': the model's against the "
          "reference's")
    head = ["model", "object at", "step", *metrics, f"{metrics[0]} err", "still success"]
    print(" | ".join(f"{h:>15}" for h in head))
    for r in rows:
        for t, v in r["steps"].items():
            cells = [f"{v[f'{m}_median']:.3g} ({v[f'{m}_p90']:.3g})" for m in metrics]
            err = f"{r['error'][t][f'{metrics[0]}_median']:.3g}" if "error" in r else "-"
            ok = f"{v['still_success']:.2f}" if r["where"] == "goal" else "-"
            print(" | ".join(f"{x:>15}" for x in [r["name"], r["where"], t, *cells, err, ok]))
    print("table starts: change of the object's gap to its goal since the start, mean (share of starts closer)")
    print(" | ".join(f"{h:>15}" for h in ["model", "step", *object_metrics]))
    for r in rows:
        for t, v in r.get("goal_gap", {}).items():
            cells = [f"{v[f'{m}_change_mean']:+.3g} ({v[f'{m}_closer']:.2f})" for m in object_metrics]
            print(" | ".join(f"{x:>15}" for x in [r["name"], t, *cells]))
    write_results(args.out or RESULTS / f"rest_drift_{args.task}_{args.motion}.json", {"args": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
