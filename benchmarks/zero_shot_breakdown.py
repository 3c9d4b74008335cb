"""Where a trained agent's zero-shot score comes from: episode by episode against doing nothing, and how its
world model's reward model reads the real frames the agent visits.

    python benchmarks/zero_shot_breakdown.py --run-dir runs/fog_pusht [--run-dir runs/other ...]

For each run: its final zero-shot evaluation (``RUN/eval.json``, written by ``fog-train``) next to a do-nothing
controller (zero actions) on the same seeded episodes: the mean score (Push-T: max coverage; cube: return),
how many episodes the agent improves by more than ``--threshold`` and by how much, how many it makes worse.
Then, on the first ``--reward-episodes`` of those episodes, the reward model of the run's world model applied
to the real frames (through the autoencoder) that the agent and the do-nothing controller see: its mean
error against the true reward, over all steps and over the second half of each episode (where a trained
agent has settled into what it learned). An agent whose frames the reward model over-rates more than the
do-nothing frames is steered there by the reward model, not only by the dynamics. Prints a table and writes
``benchmarks/results/zero_shot_breakdown.json``. ``--reward-episodes 0`` skips the reward-model part.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fog_envs  # noqa: E402,F401
from fog_agent.controller import FogController  # noqa: E402
from fog_agent.evaluate import learned_env_for, load_agent  # noqa: E402
from fog_agent.run_io import checkpoint_path  # noqa: E402
from fog_envs.evaluation import ZeroActionController, episode_gains, evaluate  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "zero_shot_breakdown.json"


@torch.no_grad()
def reward_model_error(make_controller, env_id: str, model, seed: int, episodes: int, steps: int) -> dict[str, float]:
    """Mean (reward model on the encoded real frame − true reward) along ``episodes`` real episodes."""
    env = gym.make(env_id)
    errs, late = [], []
    for ep in range(episodes):
        obs, info = env.reset(seed=seed + ep)
        ctl = make_controller()
        ctl.reset(obs, info)
        frames, rewards = [], []
        for _ in range(steps):
            obs, reward, terminated, truncated, info = env.step(ctl.act(obs, info))
            frames.append(obs)
            rewards.append(float(reward))
            if terminated or truncated:
                break
        pred = model.reward(model.autoencoder.encode(torch.from_numpy(np.stack(frames))))["reward"].cpu().numpy()
        err = pred - np.asarray(rewards)
        errs.append(err)
        late.append(err[len(err) // 2:])
    env.close()
    return {"bias": float(np.concatenate(errs).mean()), "bias_second_half": float(np.concatenate(late).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", action="append", required=True, help="a fog-train run directory (repeatable)")
    parser.add_argument("--threshold", type=float, default=0.05, help="a change smaller than this is no change")
    parser.add_argument("--reward-episodes", type=int, default=12)
    parser.add_argument("--reward-steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    baselines: dict[tuple[str, int, int], dict[str, Any]] = {}
    rows = []
    for run_dir in args.run_dir:
        run = Path(run_dir)
        if not (run / "eval.json").is_file():
            raise FileNotFoundError(f"{run}/eval.json not found: run the training (or fog-eval) to the end first")
        final = json.loads((run / "eval.json").read_text())
        agent, ckpt = load_agent(checkpoint_path(run))
        envs = learned_env_for(ckpt)
        env_id, seed, episodes = final["env_id"], final["seed"], final["episodes"]
        action_dim = envs.single_action_space.shape[0]
        key = (env_id, seed, episodes)
        if key not in baselines:
            res = evaluate(lambda: ZeroActionController(action_dim), env_id, episodes=episodes, seed=seed)
            baselines[key] = {"returns": res.returns, "max_coverages": res.max_coverages}
        score = "max_coverages" if final.get("max_coverages") is not None else "returns"
        gains = episode_gains(final[score], baselines[key][score], args.threshold)
        model = envs.backend.model
        errors = None
        if args.reward_episodes > 0:  # 0: the episode-by-episode comparison alone
            errors = {"agent": reward_model_error(lambda: FogController(agent, envs.make_observer()), env_id, model,
                                                  seed, args.reward_episodes, args.reward_steps),
                      "do_nothing": reward_model_error(lambda: ZeroActionController(action_dim), env_id, model, seed,
                                                       args.reward_episodes, args.reward_steps)}
        rows.append({"run_dir": str(run), "env_id": env_id, "seed": seed, "score": score, **gains,
                     "reward_model_error": errors})
    print(f"{'run':<28} {'score':>13} | {'agent':>6} {'nothing':>7} | {'improved':>8} {'gain':>6} {'worse':>5} | "
          f"reward-model bias on real frames, agent / do-nothing (2nd half)")
    for r in rows:
        e = r["reward_model_error"]
        bias = ("skipped (--reward-episodes 0)" if e is None else
                f"{e['agent']['bias']:+.3f} ({e['agent']['bias_second_half']:+.3f}) / "
                f"{e['do_nothing']['bias']:+.3f} ({e['do_nothing']['bias_second_half']:+.3f})")
        print(f"{Path(r['run_dir']).name[-28:]:<28} {r['score']:>13} | {r['mean_agent']:6.3f} {r['mean_baseline']:7.3f} | "
              f"{r['improved']:>3}/{r['episodes']:<4} {r['mean_gain_where_improved']:6.3f} {r['worse']:>5} | " + bias)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps({"threshold": args.threshold, "reward_episodes": args.reward_episodes,
                               "reward_steps": args.reward_steps, "rows": rows,
                               "time": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=2))
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
