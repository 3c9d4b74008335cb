"""Does DMO-SAPO itself learn Push-T when nothing else is in the way? An oracle for the agent.

    python benchmarks/bench_agent_oracle.py --iterations 100 --jobs 2 \\
        --variant base= --variant no_bootstrap=bootstrap:false --variant state_clip1=state_grad_clip:1.0

The world model, the autoencoder and the probe are taken out of the loop: ``num_envs`` copies of
``RealPushT-v0`` (state observations, nothing drawn) produce the trajectories and rewards, the agent observes
the *true* state ``[s_t, s_{t−1}]`` (the task's probe targets of the simulator state, no probe), and the local
model that supplies the Jacobians is the shipped state-space model (``pusht_state``) with the task's
differentiable reward formula. Each variant is the ``cpu`` preset with ``key:value`` overrides of
:class:`fog_agent.config.SAPOConfig` and of the oracle's own keys: ``state_refresh_steps`` / ``_lr`` /
``_fraction`` (refresh the state model online on the agent's true transitions, :mod:`fog_envs.wm.state_refresh`),
``local_<term>_weight`` (reweight the local reward's terms: the gradient's shaping, the value unchanged),
``reward_<term>_weight`` (reweight the training reward itself, value and gradient; logged as the reward) and
``start_block_px`` / ``start_block_deg`` / ``start_near_final`` (start the block near the goal; a curriculum that
moves to gym-pusht's resets). Variants run side by side in ``--jobs`` processes of one thread each.

Reported per variant: the true reward per step and its approach and pose terms and the coverage over the first
and the last ``--window`` iterations of training (does the agent reach the block, does it move it towards the
goal?), the state model's median one-step block error where the block moved (next to copying the last state's),
the actor's gradient norm, and a deterministic zero-shot evaluation on ``RealPushT-v0`` (mean max coverage over
``--episodes`` seeded episodes, seed 100000, the agent reading the true state) next to doing nothing on the same
episodes; ``--near-goal-eval PX DEG`` adds the same from near-goal starts, ``--eval-every N`` a coverage curve
(``--curve-episodes`` episodes every N iterations, their time not counted as training). Prints a table and
writes ``benchmarks/results/agent_oracle.json``.

Not resumable (each variant is a few minutes); it is a diagnostic, not a training path.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from shapely.geometry import Point

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fog_envs  # noqa: E402,F401
from fog_agent.config import SAPOConfig, make_preset  # noqa: E402
from fog_agent.sapo import DMOSAPO  # noqa: E402
from fog_envs.evaluation import ZeroActionController, evaluate  # noqa: E402
from fog_envs.learned.backend import GlobalStep  # noqa: E402
from fog_envs.learned.diff import DifferentiableEnv  # noqa: E402
from fog_envs.real import pusht_reward_torch  # noqa: E402
from fog_envs.real.pusht_reward import AGENT_RADIUS, GOAL_POSE, REWARD_WEIGHTS, combine_terms, tee_polygon  # noqa: E402
from fog_envs.wm.fidelity import object_moved  # noqa: E402
from fog_envs.wm.state_model import StateModel  # noqa: E402
from fog_envs.wm.state_model_train import load_transitions  # noqa: E402
from fog_envs.wm.state_refresh import StateRefreshConfig, StateRefresher  # noqa: E402
from fog_envs.wm.tasks import get_task  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "agent_oracle.json"
SEED_HIGH = 2**31 - 1
EVAL_SEED = 100_000  # the zero-shot episodes' seed, as in the learned-env evaluations
#: logged reward terms during training → their key in ``RealPushT-v0``'s info (coverage: the raw coverage)
TERMS = {"approach": "approach_term", "pose": "pose_term", "coverage": "coverage"}
STATE_OBS = {"obs_type": "state"}  #: RealPushT-v0 without drawing frames: every reader here uses the true state
#: logged contact errors: the state model's and copying's median one-step block error (px) where the block moved
CONTACT = ("model_px", "copy_px")


class TrueStatePushT:
    """A fog backend whose global face is ``RealPushT-v0`` read at its true state and whose local face is a
    state model and the task's reward formula. No snapshots: the benchmark does not resume."""

    def __init__(self, num_envs: int, state_model: StateModel, refresher: StateRefresher | None = None,
                 local_weights: dict[str, float] = REWARD_WEIGHTS, start: tuple[float, float] = (0.0, 0.0),
                 reward_weights: dict[str, float] = REWARD_WEIGHTS) -> None:
        self.task = get_task("pusht")
        self.num_envs, self.action_dim = num_envs, self.task.action_dim
        self.sdim = self.task.probe_dim
        self.state_dim = 2 * self.sdim
        self.device = torch.device("cpu")
        self.state_model = state_model.eval().requires_grad_(False)
        self.refresher, self.local_weights, self.start = refresher, local_weights, start
        self.reward_weights = reward_weights  #: the training reward's term weights (the value the agent earns)
        self.near_share = 1.0  #: the share of resets that start near the goal (when ``start`` is set)
        #: per global step, the state model's median one-step block error (px) on the envs whose block moved in
        #: that step, and copying the last state's (NaN when no block moved)
        self.contact_log: dict[str, list[float]] = {k: [] for k in CONTACT}
        self.envs = [gym.make("RealPushT-v0", render_mode=None, obs_type="state", disable_env_checker=True).unwrapped
                     for _ in range(num_envs)]
        self.x = torch.zeros(num_envs, self.state_dim)
        #: per global step, the envs' mean of each term of the true reward (``approach``, ``pose``) and coverage
        self.term_log: dict[str, list[float]] = {k: [] for k in TERMS}

    def _read(self, ids: list[int]) -> torch.Tensor:
        states = np.stack([self.envs[i].true_state() for i in ids])
        return torch.as_tensor(self.task.probe_targets(states), dtype=torch.float32)

    def reset(self, env_ids: torch.Tensor, generators: list[torch.Generator]) -> None:
        ids = env_ids.tolist()
        for i in ids:
            seed = int(torch.randint(SEED_HIGH, (1,), generator=generators[i]))
            near = self.near_share >= 1.0 or np.random.default_rng([seed, 1]).uniform() < self.near_share
            if (self.start[0] > 0 or self.start[1] > 0) and near:
                state = near_goal_state(np.random.default_rng(seed), *self.start)
                self.envs[i].reset(seed=seed, options={"reset_to_state": state})
            else:
                self.envs[i].reset(seed=seed)
        s = self._read(ids)
        self.x[torch.as_tensor(ids, dtype=torch.long)] = torch.cat([s, s], -1)

    def state(self) -> torch.Tensor:
        return self.x.clone()

    def global_step(self, action: torch.Tensor, generators: list[torch.Generator]) -> GlobalStep:
        acts = action.detach().clamp(-1.0, 1.0).numpy()
        rewards, success, terms = [], [], {k: [] for k in TERMS}
        for env, a in zip(self.envs, acts):
            _, _, _, _, info = env.step(a)
            rewards.append(combine_terms(info["reward_terms"], self.reward_weights))
            success.append(info["is_success"])
            for k, key in TERMS.items():
                terms[k].append(info["coverage"] if key == "coverage" else info["reward_terms"][key])
        s, s_prev = self.x[:, :self.sdim], self.x[:, self.sdim:]
        s_next = self._read(list(range(self.num_envs)))
        self._log_contact(s, s_prev, action.detach(), s_next)
        if self.refresher is not None:
            self.refresher.record(s_prev, s, action.detach().clamp(-1.0, 1.0), torch.tensor(rewards), s_next)
        self.x = torch.cat([s_next, s], -1)
        for k, v in terms.items():
            self.term_log[k].append(float(np.mean(v)))
        return GlobalStep(self.x.clone(), torch.tensor(rewards, dtype=torch.float32), torch.tensor(success),
                          {k: torch.tensor(v, dtype=torch.float32) for k, v in terms.items()})

    @torch.no_grad()
    def _log_contact(self, s: torch.Tensor, s_prev: torch.Tensor, action: torch.Tensor, s_next: torch.Tensor) -> None:
        moved = object_moved(torch.stack([s, s_next], 1), self.task.passive_dims)
        if not moved.any():
            self.contact_log["model_px"].append(float("nan"))
            self.contact_log["copy_px"].append(float("nan"))
            return
        pred = self.state_model.step(s[moved], s_prev[moved], action[moved].clamp(-1.0, 1.0))
        block = lambda a: float(((a[:, 2:4] - s_next[moved][:, 2:4]).norm(dim=-1) * 512).median())  # noqa: E731
        self.contact_log["model_px"].append(block(pred))
        self.contact_log["copy_px"].append(block(s[moved]))

    def local_step(self, x: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        s, s_prev = x[:, :self.sdim], x[:, self.sdim:]
        return torch.cat([self.state_model.step(s, s_prev, action), s], -1)

    def local_reward(self, x: torch.Tensor) -> torch.Tensor:
        return pusht_reward_torch.reward(x[:, :self.sdim], self.local_weights)

    def snapshot(self) -> dict:
        raise NotImplementedError("TrueStatePushT does not resume")

    def restore(self, snapshot: dict) -> None:
        raise NotImplementedError("TrueStatePushT does not resume")

    def render_obs(self, obs_type: str) -> np.ndarray:
        raise NotImplementedError("TrueStatePushT has no observations besides the state")


class TrueStateController:
    """Acts on ``RealPushT-v0`` from the true state ``[s_t, s_{t−1}]``."""

    def __init__(self, agent: DMOSAPO) -> None:
        self.agent, self.task = agent, get_task("pusht")
        self.prev: np.ndarray | None = None

    def _read(self, info: dict[str, Any]) -> np.ndarray:
        return self.task.probe_targets(np.asarray(info["state"])[None])[0]

    def reset(self, obs: np.ndarray, info: dict[str, Any]) -> None:
        self.prev = self._read(info)

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        s = self._read(info)
        x = torch.as_tensor(np.concatenate([s, self.prev]), dtype=torch.float32)[None]
        self.prev = s
        return self.agent.act(x)[0].numpy().astype(np.float32)


#: variant keys that are not SAPOConfig fields: the state model's online refresh (:mod:`fog_envs.wm.state_refresh`)
REFRESH_KEYS = {"state_refresh_steps": int, "state_refresh_lr": float, "state_refresh_fraction": float}
#: ... and the weights of the reward's terms in the *local* reward, whose gradient the agent follows (the
#: true reward, its value, is unchanged): a shaping experiment; ``reward_<term>_weight`` changes the training
#: reward itself (its value and, unless ``local_<term>_weight`` says otherwise, its gradient): an objective
#: experiment (the evaluation still scores the coverage)
WEIGHT_KEYS = {f"{face}_{k}_weight": float for k in REWARD_WEIGHTS for face in ("local", "reward")}
#: ... and near-goal starts for training (a curriculum experiment): the block within this many px and degrees
#: of the goal pose (0: gym-pusht's resets)
START_KEYS = {"start_block_px": float, "start_block_deg": float, "start_near_final": float}
"""``start_near_final``: a curriculum; the share of near-goal starts falls linearly from 1 to this over the run
(default 1: every start near the goal)"""
OTHER_KEYS = REFRESH_KEYS | WEIGHT_KEYS | START_KEYS
AGENT_CLEARANCE = 10.0  #: px between the agent disk and the T at a near-goal start


def near_goal_state(rng: np.random.Generator, block_px: float, block_deg: float) -> np.ndarray:
    """A start ``[ax, ay, bx, by, angle]``: the block uniformly within ``block_px`` px (disk) and ``block_deg``
    degrees of the goal pose, the agent uniform on the table clear of the block."""
    radius, direction = block_px * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
    block = GOAL_POSE + np.array([radius * np.cos(direction), radius * np.sin(direction),
                                  np.radians(rng.uniform(-block_deg, block_deg))])
    tee = tee_polygon(block)
    while True:
        agent = rng.uniform(50, 462, 2)
        if tee.distance(Point(*agent)) > AGENT_RADIUS + AGENT_CLEARANCE:
            return np.array([*agent, block[0], block[1], block[2] % (2 * np.pi)])


def parse_overrides(spec: str) -> dict[str, Any]:
    """``"key:value,key:value"`` → SAPOConfig overrides and :data:`REFRESH_KEYS`, each value cast to its type."""
    types: dict[str, Any] = {f.name: f.type for f in fields(SAPOConfig)} | OTHER_KEYS
    out: dict[str, Any] = {}
    for item in filter(None, spec.split(",")):
        key, _, value = item.partition(":")
        if key not in types:
            raise ValueError(f"unknown key {key!r} in variant {spec!r}; SAPOConfig fields and refresh keys: "
                             f"{sorted(types)}")
        kind = types[key]
        if kind not in (bool, "bool", int, "int", float, "float"):
            raise ValueError(f"variant {spec!r}: field {key!r} ({kind}) cannot be set from the command line")
        if kind in (bool, "bool"):
            if value.lower() not in ("true", "false"):
                raise ValueError(f"{key} takes true or false, got {value!r}")
            out[key] = value.lower() == "true"
        else:
            out[key] = (int if kind in (int, "int") else float)(value)
    return out


def run_variant(name: str, overrides: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Train one variant and evaluate it; one thread."""
    torch.set_num_threads(1)
    refresh = {k: overrides[k] for k in REFRESH_KEYS if k in overrides}
    reward_weights = {k: overrides.get(f"reward_{k}_weight", w) for k, w in REWARD_WEIGHTS.items()}
    weights = {k: overrides.get(f"local_{k}_weight", w) for k, w in reward_weights.items()}
    sapo = {k: v for k, v in overrides.items() if k not in OTHER_KEYS}
    start = (overrides.get("start_block_px", 0.0), overrides.get("start_block_deg", 0.0))
    cfg = replace(make_preset("cpu"), iterations=args.iterations, local_refresh_steps=0, **sapo)
    state_model = StateModel.load(args.state_model, task="pusht")[0]
    refresh_steps = refresh.get("state_refresh_steps", 0)
    refresher = None
    if refresh_steps > 0:
        task = get_task("pusht")
        refresher = StateRefresher(state_model, load_transitions(args.play_data, task), task.passive_dims,
                                   StateRefreshConfig(lr=refresh.get("state_refresh_lr", StateRefreshConfig.lr),
                                                      policy_fraction=refresh.get("state_refresh_fraction", 0.5),
                                                      seed=args.seed))
    backend = TrueStatePushT(cfg.num_envs, state_model, refresher, weights, start, reward_weights)
    env = DifferentiableEnv(backend, max_episode_steps=cfg.episode_steps)
    env.reset(seed=args.seed * cfg.num_envs)
    agent = DMOSAPO(backend.state_dim, backend.action_dim, cfg, seed=args.seed)
    rows, curve, t0, eval_s = [], [], time.perf_counter(), 0.0

    def curve_point(episodes: int):
        """Evaluate the agent zero-shot now; record the point (training time excludes evaluations)."""
        nonlocal eval_s
        train_s = time.perf_counter() - t0 - eval_s
        result = evaluate(lambda: TrueStateController(agent), "RealPushT-v0", episodes=episodes, seed=EVAL_SEED,
                          env_kwargs=STATE_OBS)
        eval_s = time.perf_counter() - t0 - train_s
        curve.append({"iteration": len(rows), "steps": agent.imagined_steps, "train_s": train_s,
                      "coverage": result.mean_max_coverage, "success_rate": result.success_rate,
                      "episodes": episodes})
        return result

    near_final = overrides.get("start_near_final", 1.0)
    for it in range(1, cfg.iterations + 1):
        backend.near_share = 1.0 + (near_final - 1.0) * (it - 1) / max(1, cfg.iterations - 1)
        m = agent.iteration(env, (lambda: refresher.refresh(refresh_steps)) if refresher is not None else None)
        for k, log in (*backend.term_log.items(), *backend.contact_log.items()):
            m[k] = _nanmean(np.asarray(log))
            log.clear()
        rows.append(m)
        if args.eval_every and it % args.eval_every == 0 and it < cfg.iterations:
            curve_point(args.curve_episodes)
    result = curve_point(args.episodes)
    near = near_goal_eval(lambda: TrueStateController(agent), args)
    train_s = curve[-1]["train_s"]
    rewards = np.array([r["train/reward"] for r in rows])
    grads = np.array([r["train/actor_grad_norm"] for r in rows])
    w = min(args.window, len(rows))
    firsts_lasts = {}
    for k in (*TERMS, *CONTACT):
        series = np.array([r[k] for r in rows])
        firsts_lasts[f"{k}_first"], firsts_lasts[f"{k}_last"] = _nanmean(series[:w]), _nanmean(series[-w:])
    return {"name": name, "overrides": overrides, "sapo": asdict(cfg), "train_s": train_s,
            "reward_first": float(rewards[:w].mean()), "reward_last": float(rewards[-w:].mean()), **firsts_lasts,
            "grad_norm_median": float(np.median(grads)), "grad_norm_p90": float(np.percentile(grads, 90)),
            "entropy_last": float(np.mean([r["train/entropy"] for r in rows[-w:]])),
            "coverage": result.mean_max_coverage, "max_coverages": result.max_coverages, "near_goal": near,
            "success_rate": result.success_rate, "reward_curve": rewards.tolist(), "coverage_curve": curve,
            "term_curves": {k: [r[k] for r in rows] for k in (*TERMS, *CONTACT)}}


def _nanmean(x: np.ndarray) -> float:
    return float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")


def near_goal_eval(make_controller: Any, args: argparse.Namespace) -> dict[str, Any] | None:
    """With ``--near-goal-eval PX DEG``: the controller on ``--episodes`` near-goal starts (:func:`near_goal_state`,
    episode i drawn with seed ``EVAL_SEED + i``), mean max coverage and success rate; else None."""
    if not args.near_goal_eval:
        return None
    px, deg = args.near_goal_eval
    result = evaluate(make_controller, "RealPushT-v0", episodes=args.episodes, seed=EVAL_SEED, env_kwargs=STATE_OBS,
                      reset_options=lambda i: {"reset_to_state": near_goal_state(np.random.default_rng(EVAL_SEED + i),
                                                                                 px, deg)})
    return {"block_px": px, "block_deg": deg, "coverage": result.mean_max_coverage,
            "success_rate": result.success_rate, "max_coverages": result.max_coverages}


def do_nothing(args: argparse.Namespace) -> dict[str, Any]:
    result = evaluate(lambda: ZeroActionController(2), "RealPushT-v0", episodes=args.episodes, seed=EVAL_SEED,
                      env_kwargs=STATE_OBS)
    return {"coverage": result.mean_max_coverage, "max_coverages": result.max_coverages,
            "near_goal": near_goal_eval(lambda: ZeroActionController(2), args)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", action="append", default=None,
                        help="NAME=key:value,key:value (SAPOConfig overrides of the cpu preset); repeatable")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--window", type=int, default=20, help="iterations averaged at the start and the end")
    parser.add_argument("--eval-every", type=int, default=0,
                        help="also evaluate zero-shot every N iterations (a coverage curve; 0: only at the end)")
    parser.add_argument("--curve-episodes", type=int, default=20, help="episodes per curve point")
    parser.add_argument("--state-model", default="pusht_state")
    parser.add_argument("--near-goal-eval", type=float, nargs=2, default=None, metavar=("PX", "DEG"),
                        help="also evaluate every variant and doing nothing from near-goal starts (block within PX px "
                             "and DEG degrees of the goal)")
    parser.add_argument("--play-data", default="datasets/pusht_play.h5",
                        help="the play data mixed into the state model's online refresh (variant key state_refresh_steps)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    variants = {}
    for spec in args.variant or ["base="]:
        name, sep, overrides = spec.partition("=")
        if not sep or not name:
            raise SystemExit(f"--variant must be NAME=key:value,..., got {spec!r}")
        variants[name] = parse_overrides(overrides)
    torch.set_num_threads(1)
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {name: pool.submit(run_variant, name, ov, args) for name, ov in variants.items()}
        baseline = do_nothing(args)
        results = [f.result() for f in futures.values()]
    cols = ("variant", "reward first→last", *(f"{k} first→last" for k in (*TERMS, *CONTACT)), "grad median / p90",
            "coverage", "success", "train min")
    print(" | ".join(cols))
    for r in results:
        terms = " | ".join(f"{r[k + '_first']:.3f} → {r[k + '_last']:.3f}" for k in (*TERMS, *CONTACT))
        print(f"{r['name']} | {r['reward_first']:.3f} → {r['reward_last']:.3f} | {terms} | "
              f"{r['grad_norm_median']:.1f} / {r['grad_norm_p90']:.0f} | "
              f"{r['coverage']:.3f} | {r['success_rate']:.0%} | {r['train_s'] / 60:.1f}")
    print(f"do nothing | | | | {baseline['coverage']:.3f} | |")
    if args.near_goal_eval:
        print(f"near-goal starts ({args.near_goal_eval[0]:g} px, {args.near_goal_eval[1]:g}°), coverage / success: "
              + ", ".join(f"{r['name']} {r['near_goal']['coverage']:.3f} / {r['near_goal']['success_rate']:.0%}"
                          for r in results)
              + f", do nothing {baseline['near_goal']['coverage']:.3f} / {baseline['near_goal']['success_rate']:.0%}")
    for r in results:
        if len(r["coverage_curve"]) > 1:
            print(f"{r['name']} coverage curve (iteration: coverage): " + ", ".join(
                f"{p['iteration']}: {p['coverage']:.3f}" for p in r["coverage_curve"]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps({"args": vars(args), "do_nothing": baseline, "variants": results}, indent=2))
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
