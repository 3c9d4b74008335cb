"""How far the true Push-T system itself drifts from a small error in its starting state.

    python benchmarks/bench_sensitivity.py [--heldout datasets/pusht_heldout.h5] [--windows 128] \
        [--block-px 0.5 1 2 5] [--block-deg 0.5 1 5] [--agent-px 0.5 2 5] [--out ...]

Replays the held-out episodes on ``RealPushT-v0`` (``obs_type="state"``: the same physics without drawing) with
their recorded actions from their recorded seeds, checks that the replay reproduces the recorded states, and
on the open-loop windows of ``bench_fidelity.py`` / ``bench_state_model.py`` (same count, seed and context
length) moves the block (or the agent) by a small amount in a random direction at the rollout's start, then
applies the same real actions to the perturbed system for 16 steps. The median block-position and -angle
error of the perturbed true system against the recorded one, 1 / 4 / 16 steps on, is the error that even a
perfect model of the physics would make from a state read that far off: a floor under every learned model's
open-loop figures (a probe reading of a frame is off by pixels, a state model's one-step prediction by a
fraction of one). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fog_envs  # noqa: E402,F401  (registers the envs)
from fog_envs.data.format import open_dataset  # noqa: E402
from fog_envs.play import make_play_policy  # noqa: E402
from fog_envs.wm.stages import sample_window_starts  # noqa: E402
from fog_envs.wm.tasks import get_task  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
HORIZONS = (1, 4, 16)


def perturbation_offset(kind: str, size: float, rng: np.random.Generator) -> np.ndarray:
    """The change to ``[agent_x, agent_y, block_x, block_y, block_angle]`` (px, rad) of one perturbation: ``size``
    px in a uniformly random direction (``"block_px"``, ``"agent_px"``) or ``size`` degrees of either sign
    (``"block_deg"``)."""
    offset = np.zeros(5)
    if kind in ("block_px", "agent_px"):
        phi = rng.uniform(0.0, 2 * np.pi)
        i = 2 if kind == "block_px" else 0
        offset[i:i + 2] = size * np.array([np.cos(phi), np.sin(phi)])
    elif kind == "block_deg":
        offset[4] = np.deg2rad(size) * rng.choice([-1.0, 1.0])
    else:
        raise ValueError(f"unknown perturbation {kind!r} (block_px, block_deg or agent_px)")
    return offset


def _shift(env: gym.Env, offset: np.ndarray) -> None:
    """Move the live system's bodies by ``offset``, keeping their velocities."""
    base = env.unwrapped
    if offset[:2].any():
        base.agent.position = (base.agent.position[0] + offset[0], base.agent.position[1] + offset[1])
    if offset[4]:
        base.block.angle = base.block.angle + offset[4]
    if offset[2:4].any():
        base.block.position = (base.block.position[0] + offset[2], base.block.position[1] + offset[3])


def _start_options(seed: int, episode: int) -> dict | None:
    """The reset options the collector's play policy drew for ``episode`` (it may choose the start)."""
    return make_play_policy("RealPushT-v0").reset_options(np.random.default_rng([seed, episode]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heldout", default="datasets/pusht_heldout.h5")
    parser.add_argument("--windows", type=int, default=128)
    parser.add_argument("--context-len", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0, help="window-sampling seed (bench_fidelity's default)")
    parser.add_argument("--block-px", type=float, nargs="*", default=[0.5, 1.0, 2.0, 5.0])
    parser.add_argument("--block-deg", type=float, nargs="*", default=[0.5, 1.0, 5.0])
    parser.add_argument("--agent-px", type=float, nargs="*", default=[0.5, 2.0, 5.0])
    parser.add_argument("--out", default=str(RESULTS / "sensitivity_pusht.json"))
    args = parser.parse_args()
    spec = get_task("pusht")
    with open_dataset(args.heldout) as f:
        if f.attrs["env_id"] != "RealPushT-v0":
            raise SystemExit(f"{args.heldout}: collected on {f.attrs['env_id']}, this benchmark replays RealPushT-v0")
        state, actions = f["state"][()], f["actions"][()]
        ends = f["episode_ends"][()].astype(np.int64)
        base_seed = int(f.attrs["seed"])
    H = max(HORIZONS)
    starts = sample_window_starts(ends, args.context_len + H, args.windows, args.seed)
    r0s = starts + args.context_len - 1
    episode_of = np.searchsorted(ends, r0s, side="right")
    firsts = np.concatenate([[0], ends[:-1]])
    cases = [(k, s) for k, sizes in (("block_px", args.block_px), ("block_deg", args.block_deg),
                                     ("agent_px", args.agent_px)) for s in sizes]
    env = gym.make("RealPushT-v0", obs_type="state")
    rng = np.random.default_rng(args.seed)
    errors = {case: {h: [] for h in HORIZONS} for case in cases}
    replay_err = 0.0
    t0 = time.perf_counter()
    for r0, ep in zip(r0s, episode_of):
        first = int(firsts[ep])
        for case in [None, *cases]:
            env.reset(seed=base_seed + int(ep), options=_start_options(base_seed, int(ep)))
            for row in range(first, r0):
                env.step(actions[row])
            if case is None:  # the unperturbed replay must reproduce the recording
                replay_err = max(replay_err, float(np.abs(env.unwrapped.true_state() - state[r0]).max()))
                continue
            _shift(env, perturbation_offset(*case, rng))
            for k in range(H):
                env.step(actions[r0 + k])
                h = k + 1
                if h in HORIZONS:
                    err = spec.probe_errors(spec.probe_targets(env.unwrapped.true_state()[None]),
                                            spec.probe_targets(state[r0 + h][None]))
                    errors[case][h].append({name: float(v[0]) for name, v in err.items()})
    wall = time.perf_counter() - t0
    if replay_err > 1e-6:
        raise SystemExit(f"the replay of {args.heldout} does not reproduce its states (max error {replay_err:.3g})")
    rows = []
    for (kind, size), per_h in errors.items():
        row = {"perturbation": kind, "size": size}
        for h, errs in per_h.items():
            for name in errs[0]:
                row[f"{h}_{name}_median"] = float(np.median([e[name] for e in errs]))
        rows.append(row)
    names = ("block_px", "block_deg")
    print(f"{len(r0s)} windows of {args.heldout}, replay reproduces the recording "
          f"(max error {replay_err:.1e}); {wall:.0f} s")
    print(f"{'perturbation':>16} | " + " | ".join(f"{n} @{h}" for h in HORIZONS for n in names))
    for row in rows:
        label = f"{row['perturbation']} {row['size']:g}"
        print(f"{label:>16} | " + " | ".join(f"{row[f'{h}_{n}_median']:9.2f}" for h in HORIZONS for n in names))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"heldout": args.heldout, "windows": int(len(r0s)), "context_len": args.context_len,
                               "seed": args.seed, "replay_max_error": replay_err, "wall_s": wall, "rows": rows},
                              indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
