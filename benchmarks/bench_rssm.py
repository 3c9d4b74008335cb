"""Speed of the local RSSM and its Jacobian hook on the CPU.

    python benchmarks/bench_rssm.py [--batch 64] [--horizon 16] [--action-dim 2] [--threads 1 2] [--repeats 20]

Measures, at the default ``RSSMConfig`` (latent 16×8×8, deter 256, stoch 32, hidden 256): parameters; one
``img_step`` and one ``obs_step`` (no grad); an H-step imagination (``img_step`` chain + reward head) with a
backward pass to the actions and parameters; the hook's local step, VJP, JVP and reward gradient; dense
Jacobians (action by ``jacfwd`` and ``jacrev``, state by ``jacrev`` and ``jacfwd``); one training step
(``RSSM.loss`` + backward) at batch 32 × length 32 (the ``cpu`` preset). Each figure is the median (and min)
over ``--repeats`` timed calls after warm-up, for each ``--threads`` count (default 1 and 2). On a shared
machine the 2-thread medians suffer most (OpenMP workers get descheduled); the min is the better estimate of
the uncontended cost, and only figures from one run should be compared.
Prints a table and writes ``benchmarks/results/rssm.json`` (atomically).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from torch.func import jacrev, vmap  # noqa: E402

from fog_envs.learned import hook  # noqa: E402
from fog_envs.wm.rssm import RSSM, RSSMConfig, RSSMState  # noqa: E402


def _flat(rssm: RSSM):
    """The hook's one-step function on flat states x = [deter, stoch] (as ``WorldModel.local_step``)."""
    d = rssm.config.deter

    def step(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        deter = rssm.next_deter(x[..., :d], x[..., d:], a)
        return torch.cat([deter, rssm.prior(deter)[0]], -1)
    return step


def local_step(rssm, deter, stoch, action):
    return _flat(rssm)(torch.cat([deter, stoch], -1), action)


def step_vjp(rssm, deter, stoch, action, cot_deter, cot_stoch):
    return hook.step_vjp(_flat(rssm), torch.cat([deter, stoch], -1), action, torch.cat([cot_deter, cot_stoch], -1))


def step_jvp(rssm, deter, stoch, action, t_deter, t_stoch, t_action):
    return hook.step_jvp(_flat(rssm), torch.cat([deter, stoch], -1), action, torch.cat([t_deter, t_stoch], -1),
                         t_action)


def reward_grad(rssm, deter, stoch):
    x = torch.cat([deter, stoch], -1).requires_grad_(True)
    return torch.autograd.grad(rssm.reward(x).sum(), x)[0]


def dense_jacobians(rssm, deter, stoch, action, wrt=("state", "action"), state_mode="rev", action_mode="fwd"):
    x, step = torch.cat([deter, stoch], -1), _flat(rssm)
    out = {}
    if "state" in wrt:
        out["state"] = hook.state_jacobian(step, x, action, mode=state_mode)
    if "action" in wrt:
        out["action"] = hook.action_jacobian(step, x, action) if action_mode == "fwd" else \
            vmap(jacrev(lambda xx, aa: step(xx[None], aa[None])[0], argnums=1))(x, action)
    return out

RESULTS = Path(__file__).resolve().parent / "results" / "rssm.json"


def time_ms(fn: Callable[[], object], repeats: int, warmup: int = 3) -> dict[str, float]:
    """Median and min wall-clock milliseconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return {"ms_median": statistics.median(times), "ms_min": min(times), "repeats": repeats}


def no_grad(fn: Callable[[], object]) -> Callable[[], object]:
    """``fn`` run under ``torch.no_grad()``."""
    def call() -> object:
        with torch.no_grad():
            return fn()
    return call


def count_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def write_json_atomic(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(payload, f, indent=2)
    os.replace(tmp, path)


def run(batch: int, horizon: int, action_dim: int, repeats: int) -> dict:
    torch.manual_seed(0)
    cfg = RSSMConfig(action_dim=action_dim)
    rssm = RSSM(cfg).eval()
    g = torch.Generator().manual_seed(0)
    b, d, s, a = batch, cfg.deter, cfg.stoch, action_dim
    deter = torch.randn(b, d, generator=g)
    stoch = torch.randn(b, s, generator=g)
    action = torch.rand(b, a, generator=g) * 2 - 1
    latent = torch.randn(b, *cfg.latent_shape, generator=g)
    state = RSSMState(deter, stoch, stoch, torch.ones_like(stoch))
    actions = torch.rand(b, horizon, a, generator=g) * 2 - 1
    cd, cs = torch.randn(b, d, generator=g), torch.randn(b, s, generator=g)

    def imagine_backward() -> None:
        acts = actions.clone().requires_grad_(True)
        traj = rssm.imagine(state, acts)
        rssm.reward(rssm.features(traj)).sum().backward()
        rssm.zero_grad(set_to_none=True)

    train_b, train_t = 32, 32
    lat_seq = torch.randn(train_b, train_t, *cfg.latent_shape, generator=g)
    act_seq = torch.rand(train_b, train_t, a, generator=g) * 2 - 1
    rew_seq = torch.rand(train_b, train_t, generator=g)
    first = torch.zeros(train_b, train_t, dtype=torch.bool)
    first[:, 0] = True
    mask = torch.ones(train_b, train_t, dtype=torch.bool)

    def train_step() -> None:
        loss, _ = rssm.loss(lat_seq, act_seq, rew_seq, first, mask, generator=g)
        loss.backward()
        rssm.zero_grad(set_to_none=True)

    slow = max(3, repeats // 4)
    rows: list[tuple[str, Callable[[], object], int]] = [
        (f"img_step (no grad) B={b}", no_grad(lambda: rssm.img_step(state, action)), repeats),
        (f"obs_step (no grad) B={b}", no_grad(lambda: rssm.obs_step(state, action, latent)), repeats),
        (f"hook local_step (no grad) B={b}", no_grad(lambda: local_step(rssm, deter, stoch, action)), repeats),
        (f"imagine H={horizon} + reward + backward B={b}", imagine_backward, slow),
        (f"step_vjp B={b}", lambda: step_vjp(rssm, deter, stoch, action, cd, cs), repeats),
        (f"step_jvp B={b}", lambda: step_jvp(rssm, deter, stoch, action, cd, cs, action), repeats),
        (f"reward_grad B={b}", lambda: reward_grad(rssm, deter, stoch), repeats),
        (f"action Jacobian jacfwd B={b}",
         lambda: dense_jacobians(rssm, deter, stoch, action, wrt=("action",), action_mode="fwd"), repeats),
        (f"action Jacobian jacrev B={b}",
         lambda: dense_jacobians(rssm, deter, stoch, action, wrt=("action",), action_mode="rev"), slow),
        (f"state Jacobian jacrev B={b}",
         lambda: dense_jacobians(rssm, deter, stoch, action, wrt=("state",), state_mode="rev"), slow),
        (f"state Jacobian jacfwd B={b}",
         lambda: dense_jacobians(rssm, deter, stoch, action, wrt=("state",), state_mode="fwd"), slow),
        (f"train step loss+backward B={train_b} T={train_t}", train_step, slow),
    ]
    results = [{"name": name, **time_ms(fn, n)} for name, fn, n in rows]
    by = {r["name"]: r["ms_min"] for r in results}
    params = {"total": count_params(rssm), "encoder": count_params(rssm.encoder),
              "dynamics": sum(count_params(m) for m in (rssm.img_in, rssm.gru, rssm.prior_net, rssm.post_net)),
              "decoder": count_params(rssm.decoder), "reward_head": count_params(rssm.reward_head)}
    return {"config": asdict(cfg), "params": params, "results": results,
            "action_jacobian_rev_over_fwd": by[f"action Jacobian jacrev B={b}"] / by[f"action Jacobian jacfwd B={b}"],
            "loadavg_after": os.getloadavg()}


def print_table(runs: dict[int, dict]) -> None:
    names = [r["name"] for r in next(iter(runs.values()))["results"]]
    width = max(len(n) for n in names)
    head = " | ".join(f"{t} thr median | {t} thr min" for t in runs)
    print(f"| {'measurement'.ljust(width)} | {head} |")
    print(f"|{'-' * (width + 2)}|" + "|".join("-" * (len(f" {t} thr median ")) + "|" + "-" * len(f" {t} thr min ")
                                              for t in runs) + "|")
    for i, name in enumerate(names):
        cells = " | ".join(f"{r['results'][i]['ms_median']:{len(f'{t} thr median')}.2f} | "
                           f"{r['results'][i]['ms_min']:{len(f'{t} thr min')}.2f}" for t, r in runs.items())
        print(f"| {name.ljust(width)} | {cells} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--horizon", type=int, default=16)
    parser.add_argument("--action-dim", type=int, default=2)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    load_before = os.getloadavg()
    runs = {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        runs[threads] = run(args.batch, args.horizon, args.action_dim, args.repeats)
    first = next(iter(runs.values()))
    p = first["params"]
    print(f"RSSM params: {p['total']:,} (encoder {p['encoder']:,}, dynamics {p['dynamics']:,}, "
          f"decoder {p['decoder']:,}, reward head {p['reward_head']:,}); batch {args.batch}, "
          f"loadavg before {load_before[0]:.1f}")
    print_table(runs)
    for t, r in runs.items():
        print(f"{t} thread(s): action Jacobian jacrev / jacfwd = {r['action_jacobian_rev_over_fwd']:.1f}x (min times)")
    payload = {"config": first["config"], "params": p, "batch": args.batch, "horizon": args.horizon,
               "runs": {str(t): {k: v for k, v in r.items() if k not in ("config", "params")} for t, r in runs.items()},
               "machine": {"torch": torch.__version__, "python": platform.python_version(),
                           "processor": platform.machine(), "cpus": os.cpu_count(), "loadavg_before": load_before,
                           "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}}
    write_json_atomic(args.out, payload)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
