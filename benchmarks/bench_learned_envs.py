"""Learned-env speed next to the reference systems, and the cost of one differentiable H-step window.

    python benchmarks/bench_learned_envs.py [--pusht runs/wm_pusht/bundle] [--cube runs/wm_cube/bundle]

1. Imagined steps/s of ``WMPushT-v0`` / ``WMPushCube-v0`` (``LearnedVectorEnv``, one model call per step
   for all envs) at batch 1, 16, 64, 256, with pixel and latent observations, in float32 and with the
   default bf16 autocast of the sampler's network and the pixel decoder (``bf16="auto"``: on where the CPU
   has AMX/AVX512-BF16), and ``RealPushT-v0`` / ``RealPushCube-v0`` steps/s in the same run.
2. One H=16 differentiable window at batch 64 (forward + backward of the summed reward w.r.t. the actions):
   FoG's RSSM surrogate (``DifferentiableEnv``) against back-propagating through the diffusion sampler,
   the reward model and the context. Time, and the memory the autograd graph holds for the backward pass
   (bytes of every tensor saved for backward, counted once, via ``saved_tensors_hooks``).

Prints tables and writes ``benchmarks/results/learned_envs.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fog_envs  # noqa: E402,F401

RESULTS = Path(__file__).resolve().parent / "results" / "learned_envs.json"


def vector_steps_per_s(env_id: str, num_envs: int, obs_type: str, bundle: str | None, steps: int,
                       bf16: bool) -> float:
    kwargs = {"world_model": bundle} if bundle else {}
    envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", obs_type=obs_type,
                        bf16=bf16, **kwargs)
    envs.reset(seed=0)
    act = np.zeros((num_envs,) + envs.single_action_space.shape, np.float32)
    envs.step(act)
    t0 = time.perf_counter()
    for _ in range(steps):
        envs.step(act)
    return num_envs * steps / (time.perf_counter() - t0)


def real_steps_per_s(env_id: str, steps: int = 300) -> float:
    env = gym.make(env_id)
    env.reset(seed=0)
    act = np.zeros(env.action_space.shape, np.float32)
    t0 = time.perf_counter()
    for _ in range(steps):
        env.step(act)
    return steps / (time.perf_counter() - t0)


def window(mode: str, env_id: str, bundle: str | None, batch: int, horizon: int) -> dict[str, float]:
    """Run one differentiable window; returns seconds (total, forward, backward) and the MiB of tensors saved
    for backward."""
    kwargs = {"world_model": bundle} if bundle else {}
    envs = gym.make_vec(env_id, num_envs=batch, vectorization_mode="vector_entry_point", obs_type="latent",
                        gradient_model="rssm" if mode == "surrogate" else "diffusion", **kwargs)
    diff = envs.unwrapped.diff
    diff.reset(seed=0)
    policy = torch.nn.Sequential(torch.nn.Linear(diff.state_dim, 64), torch.nn.Tanh(),
                                 torch.nn.Linear(64, diff.action_dim), torch.nn.Tanh())
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    t0 = time.perf_counter()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        obs, total = diff.cut_graph(), 0.0
        for _ in range(horizon):
            obs, reward, *_ = diff.step(policy(obs))
            total = total + reward.sum()
    t1 = time.perf_counter()
    total.backward()
    t2 = time.perf_counter()
    return {"seconds": t2 - t0, "forward_s": t1 - t0, "backward_s": t2 - t1, "graph_mib": sum(saved.values()) / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pusht", default=None, help="Push-T bundle (default: the shipped one)")
    parser.add_argument("--cube", default=None, help="cube bundle (default: the shipped one)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--skip-cube", action="store_true")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from fog_envs.runtime import use_bf16

    bf16_here = use_bf16(torch.device("cpu"))
    precisions = [("fp32", False)] + ([("bf16", True)] if bf16_here else [])
    tasks = [("WMPushT-v0", "RealPushT-v0", args.pusht)] + ([] if args.skip_cube else
                                                           [("WMPushCube-v0", "RealPushCube-v0", args.cube)])
    speed = []
    for wm_id, real_id, bundle in tasks:
        speed.append({"env": real_id, "batch": 1, "obs": "pixels", "steps_per_s": real_steps_per_s(real_id)})
        for obs_type in ("pixels", "latent"):
            for b in args.batches:
                steps = max(3, args.steps * 16 // max(b, 16))
                for name, flag in precisions:
                    speed.append({"env": wm_id, "batch": b, "obs": obs_type, "precision": name,
                                  "steps_per_s": vector_steps_per_s(wm_id, b, obs_type, bundle, steps, flag)})
    print(f"{'env':<16} {'obs':<7} {'batch':>5} {'precision':>9} {'steps/s':>9}")
    for r in speed:
        print(f"{r['env']:<16} {r['obs']:<7} {r['batch']:>5} {r.get('precision', '-'):>9} {r['steps_per_s']:>9.0f}")
    windows = []
    wm_id, _, bundle = tasks[0]
    for mode in ("surrogate", "diffusion_bptt"):
        windows.append({"mode": mode, "env": wm_id, "batch": 64, "horizon": 16,
                        **window(mode, wm_id, bundle, 64, 16)})
    s, d = windows
    print(f"\nH=16 window, batch 64 ({wm_id}):")
    for w in windows:
        print(f"  {w['mode']:<15} {w['seconds']:7.2f} s (forward {w['forward_s']:.2f} s, backward "
              f"{w['backward_s']:.3f} s)   saved for backward {w['graph_mib']:8.1f} MiB")
    ratio_t = d["seconds"] / s["seconds"]
    ratio_b = d["backward_s"] / s["backward_s"]
    ratio_m = d["graph_mib"] / s["graph_mib"]
    print(f"  diffusion BPTT / surrogate: time x{ratio_t:.1f} (backward alone x{ratio_b:.0f}), memory x{ratio_m:.1f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_name(RESULTS.name + ".tmp")
    tmp.write_text(json.dumps({"threads": args.threads, "bf16_available": bf16_here, "speed": speed, "windows": windows, "time_ratio": ratio_t, "backward_time_ratio": ratio_b, "memory_ratio": ratio_m,
                               "time": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=2))
    os.replace(tmp, RESULTS)


if __name__ == "__main__":
    main()
