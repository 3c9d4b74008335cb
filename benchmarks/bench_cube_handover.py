"""Cube agents taking turns: where one policy stalls, the next takes over.

    MUJOCO_GL=egl python benchmarks/bench_cube_handover.py --run-dir runs/cube_ens10_s0 --run-dir runs/cube_ens10_s1 \\
        ... [--patience 20 40 80] [--min-gain 0.01] [--deployed] [--episodes 50] [--seed 100000]

Plays ``RealPushCube-v0``'s seeded episodes on the true state (``bench_cube_true_state.TrueStateController``: no
frame read, so what the policies do, apart from perception; with ``--deployed``, from the frames as ``fog-eval
--deployment cube`` deploys them) with each agent alone, then with all of them in the
order given as one :class:`fog_agent.ensemble.StallHandover` for each ``--patience``: the first acts, and after that
many steps in which the local reward of its state has not risen by ``--min-gain`` above its best, the next takes over.
Per setting: success, handovers per episode, and how the failed episodes end: the cube *pinned* (its centre within
5 cm of touching a wall), the robot *stuck* away from the cube (its centre ≥ 0.45 m from the cube's and within 0.3 m
of a wall), or *other*; apart from those, how many end with the cube *beyond the goal* (between it and the corner
behind it: a push that overshot), and every episode's last true state. Prints a table and writes JSON (default
``benchmarks/results/cube_handover.json``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.agent_runs_cli import parse_run_dirs, run_dirs_parser, write_results  # noqa: E402
from benchmarks.bench_cube_true_state import TrueStateController, load_cube_agent  # noqa: E402
from fog_agent.controller import FogController  # noqa: E402
from fog_agent.deployments import deployment_settings, fill_defaults  # noqa: E402
from fog_agent.ensemble import HandoverConfig, StallHandover  # noqa: E402
from fog_agent.evaluate import EvalConfig, learned_env_for, observer_kwargs  # noqa: E402
from fog_envs.evaluation import evaluate  # noqa: E402
from fog_envs.real.cube_reward import robot_cube_distance  # noqa: E402
from fog_envs.real.cube_scene import ARENA_HALF_SIZE, GOAL_CENTER, cube_wall_gap  # noqa: E402

PINNED_MARGIN = 0.05  #: metres between the cube's face and a wall that count as pinned
STUCK_DISTANCE = 0.45  #: metres between robot and cube centres beyond which the robot is not at the cube
WALL_MARGIN = 0.3  #: metres from a wall within which the robot is at it


def pinned(state: np.ndarray) -> np.ndarray | bool:
    """Whether the cube of true states (..., 6) is pinned: its face within ``PINNED_MARGIN`` of a wall."""
    out = cube_wall_gap(np.asarray(state)[..., 3:5]) < PINNED_MARGIN
    return bool(out) if out.ndim == 0 else out


def beyond_goal(state: np.ndarray) -> np.ndarray | bool:
    """Whether the cube of true states (..., 6) lies in the square between the goal's centre and the arena's corner
    behind it (the goal sits at (0.75, 0.75) m: both coordinates past it), where a push that overshot leaves it."""
    out = (np.asarray(state)[..., 3:5] > np.asarray(GOAL_CENTER)).all(-1)
    return bool(out) if out.ndim == 0 else out


def ending(state: np.ndarray) -> str:
    """How an episode that failed ends, from its last true state (6,): 'pinned', 'stuck' or 'other'."""
    if pinned(state):
        return "pinned"
    if robot_cube_distance(state) >= STUCK_DISTANCE and np.abs(state[:2]).max() > ARENA_HALF_SIZE - WALL_MARGIN:
        return "stuck"
    return "other"


class DeployedRecorder(FogController):
    """``fog-eval --deployment cube``'s controller, keeping the true state (6,) of every step for the endings and,
    per episode, the last step's reading errors (m) of the robot's and the cube's positions and whether the observer
    had lost the cube (searching for it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.states: list[list[np.ndarray]] = []
        self.last: list[dict[str, float]] = []

    def reset(self, obs: np.ndarray, info: dict[str, Any]) -> None:
        super().reset(obs, info)
        self.states.append([])
        self.last.append({})

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        state = np.asarray(info["state"], dtype=np.float64).copy()
        self.states[-1].append(state)
        action = super().act(obs, info)
        read = self.observer.x[0].double().numpy()  # type: ignore[attr-defined]
        self.last[-1] = {"robot_error_m": float(np.linalg.norm(read[0:2] - state[0:2])),
                         "cube_error_m": float(np.linalg.norm(read[4:6] - state[3:5])),
                         "lost": float(self.observer.lost)}  # type: ignore[attr-defined]
        return action


def play(agent: Any, envs: Any, episodes: int, seed: int, deployed: bool) -> dict[str, Any]:
    """Episodes of ``agent`` (one agent or an ensemble) on the true state, or deployed from the frames as
    ``fog-eval --deployment cube`` deploys it: successes, handovers, endings."""
    if deployed:
        cfg = fill_defaults(EvalConfig(deployment="cube"), deployment_settings("cube"))
        controller: Any = DeployedRecorder(agent, envs.make_observer(**observer_kwargs(cfg, envs, "WMPushCube-v0")),
                                           search_action=cfg.search_action)
    else:
        controller = TrueStateController(agent, envs.backend.state_local)
    handovers: list[int] = []
    result = evaluate(lambda: controller, "RealPushCube-v0", episodes=episodes, seed=seed, video_dir=None,
                      video_episodes=0, progress=lambda i, n: handovers.append(getattr(agent, "handovers", 0)))
    ok = [bool(s) for s in result.successes]
    ends = [None if s else ending(states[-1]) for s, states in zip(ok, controller.states)]
    last = getattr(controller, "last", None)
    lasts = [states[-1] for states in controller.states]
    return {"success_rate": float(np.mean(ok)), "successes": ok, "handovers": handovers, "endings": ends,
            **({"last_step": last} if last is not None else {}),
            **{k: sum(e == k for e in ends) for k in ("pinned", "stuck", "other")},
            "beyond_goal": sum(bool(beyond_goal(x)) for s, x in zip(ok, lasts) if not s),
            "last_states": [np.round(x, 4).tolist() for x in lasts]}


def main(argv: list[str] | None = None) -> int:
    parser = run_dirs_parser(__doc__, Path("benchmarks/results/cube_handover.json"))
    parser.add_argument("--patience", type=int, nargs="*", default=[20, 40, 80],
                        help="handover patiences to play (none: the agents alone only)")
    parser.add_argument("--min-gain", type=float, default=HandoverConfig().min_gain)
    parser.add_argument("--deployed", action="store_true",
                        help="deploy from the frames as fog-eval --deployment cube does, not on the true state")
    args = parse_run_dirs(parser, argv=argv)
    agents = [load_cube_agent(r) for r in args.run_dir]
    states = {ckpt["state_model"] for _, ckpt in agents}
    if len(states) != 1:
        parser.error(f"--run-dir: the agents must share their state model to take turns, got {sorted(states)}")
    envs = learned_env_for(agents[0][1])
    rows: list[dict[str, Any]] = []
    for run, (agent, _) in zip(args.run_dir, agents):
        rows.append({"setting": Path(run).name, **play(agent, envs, args.episodes, args.seed, args.deployed)})
    alone = np.array([r["successes"] for r in rows])
    for p in args.patience:
        ensemble = StallHandover([a for a, _ in agents], envs.diff.local_reward, HandoverConfig(p, args.min_gain))
        rows.append({"setting": f"handover, patience {p}", "patience": p,
                     **play(ensemble, envs, args.episodes, args.seed, args.deployed)})
    where = "deployed" if args.deployed else "true state"
    print(f"{where + ', ' + str(args.episodes) + ' episodes':<32} {'success':>8} {'handovers':>10} "
          f"{'pinned':>7} {'stuck':>6} {'other':>6} {'beyond goal':>12}")
    for r in rows:
        print(f"{r['setting']:<32} {r['success_rate']:>8.0%} {np.mean(r['handovers']):>10.1f} {r['pinned']:>7} "
              f"{r['stuck']:>6} {r['other']:>6} {r['beyond_goal']:>12}")
    print(f"some agent alone finishes {alone.any(0).mean():.0%} of the episodes; all of them {alone.all(0).mean():.0%}")
    write_results(args.out, {"run_dirs": args.run_dir, "deployed": args.deployed, "episodes": args.episodes,
                             "seed": args.seed,
                             "min_gain": args.min_gain, "any_agent_alone": float(alone.any(0).mean()),
                             "every_agent_alone": float(alone.all(0).mean()), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
