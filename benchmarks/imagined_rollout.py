"""What a trained FoG policy sees in imagination: its deterministic rollout in the learned env it trained in.

    python benchmarks/imagined_rollout.py --run-dir runs/fog_pusht [--envs 4 --steps 64 --every 8]

Rolls the run's latest checkpoint (deterministic actions, as at deployment) in the learned env and world
model of the run for ``--steps`` steps from seeded real start windows; writes a strip of decoded frames (one
row per env, a frame every ``--every`` steps) to ``benchmarks/results/<run name>_imagined.png`` and the mean
imagined reward per step next to the run's zero-shot figures to ``benchmarks/results/<run name>_imagined.json``.
A policy that scores in imagination but not on the reference system shows here what it exploits.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import fields
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fog_envs  # noqa: E402,F401
from fog_agent.config import SAPOConfig  # noqa: E402
from fog_agent.run_io import checkpoint_path  # noqa: E402
from fog_agent.sapo import DMOSAPO  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--envs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--every", type=int, default=8)
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = Path(args.run_dir)
    ckpt = torch.load(checkpoint_path(run), weights_only=False)
    known = {f.name for f in fields(SAPOConfig)}
    sapo = SAPOConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in ckpt["sapo"].items() if k in known})
    kwargs = {k: ckpt[k] for k in ("world_model", "start_sigma") if ckpt.get(k) is not None}
    envs = gym.make_vec(ckpt["env_id"], num_envs=args.envs, vectorization_mode="vector_entry_point",
                        obs_type="latent", max_episode_steps=args.steps + 1, **kwargs).unwrapped
    agent = DMOSAPO(ckpt["obs_dim"], ckpt["action_dim"], sapo, seed=0)
    agent.restore(ckpt["agent"])
    obs, _ = envs.reset(seed=args.seed)
    rows: list[list[np.ndarray]] = [[] for _ in range(args.envs)]
    rewards = []
    for t in range(args.steps + 1):
        if t % args.every == 0:
            for i, frame in enumerate(envs.backend.render_obs("pixels")):
                rows[i].append(frame)
        if t == args.steps:
            break
        obs, reward, *_ = envs.step(agent.act(torch.as_tensor(obs)).cpu().numpy())
        rewards.append(float(reward.mean()))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    strip = np.concatenate([np.concatenate(r, axis=1) for r in rows], axis=0)
    fig, ax = plt.subplots(figsize=(1.3 * len(rows[0]), 1.4 * args.envs))
    ax.imshow(strip, interpolation="nearest")
    ax.set_xticks([64 * k + 32 for k in range(len(rows[0]))], [str(args.every * k) for k in range(len(rows[0]))])
    ax.set_yticks([])
    ax.set_xlabel("imagined step")
    evaluation = json.loads((run / "eval.json").read_text()) if (run / "eval.json").exists() else {}
    title = f"{run.name}: imagined reward {np.mean(rewards):.3f}/step"
    if evaluation:
        title += (f"; zero-shot on {evaluation['env_id']}: success {evaluation['success_rate']:.2f}, "
                  f"mean max coverage {evaluation.get('mean_max_coverage') or float('nan'):.3f}")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    RESULTS.mkdir(exist_ok=True)
    png = RESULTS / f"{run.name}_imagined.png"
    tmp = png.with_name(png.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, png)
    out = {"run_dir": str(run), "env_id": ckpt["env_id"], "world_model": ckpt.get("world_model"),
           "imagined_reward_per_step": float(np.mean(rewards)), "steps": args.steps, "envs": args.envs,
           "zero_shot": {k: evaluation.get(k) for k in ("env_id", "episodes", "success_rate", "mean_max_coverage")}}
    tmp_json = RESULTS / f"{run.name}_imagined.json.tmp"
    tmp_json.write_text(json.dumps(out, indent=2))
    os.replace(tmp_json, RESULTS / f"{run.name}_imagined.json")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
