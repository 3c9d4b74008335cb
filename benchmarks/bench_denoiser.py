"""CPU cost of the latent EDM denoiser: ms per network evaluation (NFE) and imagined steps/s.

For a grid of :class:`~fog_envs.wm.denoiser.DenoiserConfig` variants this times one forward pass at
batch 64 in fp32 and under bf16 autocast (``torch.inference_mode``, warm-up, then the median over
interleaved rounds so that background load hits every variant alike), optionally ``torch.compile``
(inductor, weight freezing) on a few variants, and a full :func:`~fog_envs.wm.edm.euler_sample` call at
1/2/3 NFE for the recommended config. ``steps/s = batch / (NFE · ms_per_NFE / 1000)``.

    python benchmarks/bench_denoiser.py                # full grid (~5 min on 2 cores)
    python benchmarks/bench_denoiser.py --quick        # a few variants, no compile

Writes ``benchmarks/results/denoiser.json`` (atomically). Timings on a shared machine are noisy (other
processes use the same cores): before each measurement the script waits (up to ``--max-wait`` s) until
other processes use < ``--wait-idle`` of the CPUs (from /proc/stat), records how busy the machine was,
and reports the median and the minimum (≈ the unloaded cost); compare variants within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fog_envs.wm.denoiser import DenoiserConfig, LatentDenoiser  # noqa: E402
from fog_envs.wm.edm import EDMConfig, euler_sample  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "denoiser.json"
RECOMMENDED = DenoiserConfig()  # the default config is the recommendation


@dataclass(frozen=True)
class Variant:
    name: str
    config: DenoiserConfig


def grid(quick: bool, action_dim: int) -> list[Variant]:
    """The variants to time: 16×8×8 latents over channels × blocks, and 4×16×16 latents."""
    out: list[Variant] = []
    chans, blocks = ((64, 96, 128), (2, 4)) if quick else ((64, 96, 128, 192), (2, 4, 6))
    for ch in chans:
        for nb in blocks:
            out.append(Variant(f"8x8x16 c{ch} b{nb}", DenoiserConfig(channels=ch, num_blocks=nb,
                                                                      action_dim=action_dim)))
    small = [(64, 2, 1), (96, 2, 2), (128, 2, 2)] if quick else \
        [(64, 2, 1), (64, 4, 1), (96, 2, 1), (96, 2, 2), (96, 4, 2), (128, 2, 2), (128, 4, 2)]
    for ch, nb, p in small:
        out.append(Variant(f"16x16x4 c{ch} b{nb} p{p}",
                           DenoiserConfig(latent_channels=4, latent_size=16, channels=ch, num_blocks=nb,
                                          patch_size=p, action_dim=action_dim)))
    rec = Variant(f"default c{RECOMMENDED.channels} b{RECOMMENDED.num_blocks}",
                  DenoiserConfig(**{**asdict(RECOMMENDED), "action_dim": action_dim}))
    if all(v.config != rec.config for v in out):
        out.append(rec)
    return out


def make_inputs(cfg: DenoiserConfig, batch: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    c, s, ll, a = cfg.latent_channels, cfg.latent_size, cfg.context_len, cfg.action_dim
    return (torch.randn(batch, c, s, s, generator=g), torch.randn(batch, generator=g),
            torch.randn(batch, ll, c, s, s, generator=g), torch.rand(batch, ll, a, generator=g) * 2 - 1,
            torch.randn(batch, generator=g))


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies over all CPUs from /proc/stat, or None where unavailable."""
    try:
        with open("/proc/stat") as f:
            vals = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return sum(vals) - idle, sum(vals)


def busy_fraction(probe_s: float = 0.2) -> float:
    """Fraction of all CPUs busy over ``probe_s`` seconds while this process sleeps (0 if unknown)."""
    a = _cpu_times()
    time.sleep(probe_s)
    b = _cpu_times()
    if a is None or b is None or b[1] == a[1]:
        return 0.0
    return (b[0] - a[0]) / (b[1] - a[1])


def wait_until_idle(max_busy: float, max_wait_s: float) -> float:
    """Sleep until other processes use < ``max_busy`` of the CPUs (at most ``max_wait_s``); the last reading."""
    deadline = time.monotonic() + max_wait_s
    busy = busy_fraction()
    while busy > max_busy and time.monotonic() < deadline:
        time.sleep(1.0)
        busy = busy_fraction()
    return busy


@dataclass
class Timer:
    """Interleaved timing, optionally waiting for an idle machine before each measurement."""

    rounds: int
    iters: int
    warmup: int = 2
    max_busy: float | None = None  #: wait until the CPUs are this idle before each measurement
    max_wait_s: float = 60.0
    busy_seen: list[float] | None = None

    def run(self, fns: dict[str, Callable[[], object]]) -> dict[str, list[float]]:
        """ms per call of each fn: ``rounds`` rounds, each running every fn ``iters`` times in turn."""
        for fn in fns.values():
            for _ in range(self.warmup):
                fn()
        out: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(self.rounds):
            for key, fn in fns.items():
                if self.max_busy is not None:
                    busy = wait_until_idle(self.max_busy, self.max_wait_s)
                    if self.busy_seen is not None:
                        self.busy_seen.append(busy)
                t0 = time.perf_counter()
                for _ in range(self.iters):
                    fn()
                out[key].append((time.perf_counter() - t0) / self.iters * 1e3)
        return out


def steps_per_s(batch: int, ms: float) -> dict[str, float]:
    return {str(n): batch / (n * ms / 1e3) for n in (1, 2, 3)}


def bf16_ctx() -> torch.autocast:
    return torch.autocast("cpu", dtype=torch.bfloat16)


def _call(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...], bf16: bool) -> Callable[[], object]:
    def fn() -> object:
        with torch.inference_mode():
            if bf16:
                with bf16_ctx():
                    return model(*inputs)
            return model(*inputs)
    return fn


def bench_grid(variants: list[Variant], batch: int, timer: Timer) -> list[dict]:
    fns: dict[str, Callable[[], object]] = {}
    meta: dict[str, tuple[Variant, str, int]] = {}
    for v in variants:
        torch.manual_seed(0)
        model = LatentDenoiser(v.config).eval()
        inputs = make_inputs(v.config, batch)
        for prec in ("fp32", "bf16"):
            key = f"{v.name} {prec}"
            fns[key] = _call(model, inputs, prec == "bf16")
            meta[key] = (v, prec, model.count_params())
    times = timer.run(fns)
    rows = []
    for key, ts in times.items():
        v, prec, params = meta[key]
        med = statistics.median(ts)
        rows.append({"variant": v.name, "precision": prec, "params": params, "ms_per_nfe": med,
                     "min_ms": min(ts), "steps_per_s": steps_per_s(batch, med), "config": asdict(v.config)})
    return rows


def bench_compile(variants: list[Variant], batch: int, timer: Timer) -> list[dict]:
    """bf16 eager vs ``torch.compile`` (inductor, freezing); skipped with a note if compiling fails."""
    rows = []
    try:
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
    except Exception as exc:  # pragma: no cover - depends on the torch build
        return [{"skipped": f"torch._inductor unavailable: {exc}"}]
    for v in variants:
        torch.manual_seed(0)
        model = LatentDenoiser(v.config).eval()
        inputs = make_inputs(v.config, batch)
        t0 = time.perf_counter()
        try:
            compiled = torch.compile(model, dynamic=False)
            _call(compiled, inputs, True)()
        except Exception as exc:  # noqa: BLE001 - report any compiler failure and move on
            rows.append({"variant": v.name, "skipped": f"torch.compile failed: {type(exc).__name__}: {exc}"[:300]})
            continue
        compile_s = time.perf_counter() - t0
        times = timer.run({"eager": _call(model, inputs, True), "compiled": _call(compiled, inputs, True)})
        eager, comp = statistics.median(times["eager"]), statistics.median(times["compiled"])
        rows.append({"variant": v.name, "precision": "bf16", "compile_s": compile_s, "eager_ms": eager,
                     "compiled_ms": comp, "compiled_min_ms": min(times["compiled"]),
                     "steps_per_s_compiled": steps_per_s(batch, comp)})
    return rows


def bench_sampler(cfg: DenoiserConfig, batch: int, timer: Timer) -> list[dict]:
    """End-to-end ``euler_sample`` (bf16 autocast) at 1/2/3 NFE: imagined steps/s including EDM overhead."""
    torch.manual_seed(0)
    model = LatentDenoiser(cfg).eval()
    _, _, context, actions, _ = make_inputs(cfg, batch)
    edm = EDMConfig()
    fns = {}
    for n in (1, 2, 3):
        def fn(n: int = n) -> object:
            g = torch.Generator().manual_seed(0)
            with torch.inference_mode(), bf16_ctx():
                return euler_sample(model, context, actions, edm, g, num_steps=n)
        fns[str(n)] = fn
    times = timer.run(fns)
    return [{"variant": f"euler_sample c{cfg.channels} b{cfg.num_blocks}", "nfe": int(n),
             "ms_per_step": statistics.median(ts), "steps_per_s": batch / (statistics.median(ts) / 1e3)}
            for n, ts in times.items()]


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)


def print_table(rows: list[dict], compile_rows: list[dict], sampler_rows: list[dict]) -> None:
    by: dict[str, dict[str, dict]] = {}
    for r in rows:
        by.setdefault(r["variant"], {})[r["precision"]] = r
    head = (f"{'variant':24s} {'params':>8s} {'fp32 ms':>8s} {'bf16 ms':>8s} {'bf16 min':>8s} "
            f"{'steps/s @1':>10s} {'@2':>7s} {'@3':>7s}")
    print(head)
    print("-" * len(head))
    for name, d in by.items():
        b = d["bf16"]
        sps = b["steps_per_s"]
        print(f"{name:24s} {b['params'] / 1e6:7.2f}M {d['fp32']['ms_per_nfe']:8.1f} {b['ms_per_nfe']:8.1f} "
              f"{b['min_ms']:8.1f} {sps['1']:10,.0f} {sps['2']:7,.0f} {sps['3']:7,.0f}")
    if compile_rows:
        print("\ntorch.compile (inductor, freezing), bf16:")
        for r in compile_rows:
            if "skipped" in r:
                print(f"  {r.get('variant', '')}: {r['skipped']}")
            else:
                sps = r["steps_per_s_compiled"]
                print(f"  {r['variant']:24s} compile {r['compile_s']:5.1f}s  eager {r['eager_ms']:6.1f} ms  "
                      f"compiled {r['compiled_ms']:6.1f} ms  steps/s @1/2/3: {sps['1']:,.0f} / {sps['2']:,.0f} / "
                      f"{sps['3']:,.0f}")
    if sampler_rows:
        print("\neuler_sample end to end (bf16 autocast):")
        for r in sampler_rows:
            print(f"  {r['variant']:24s} NFE {r['nfe']}: {r['ms_per_step']:6.1f} ms/step  "
                  f"{r['steps_per_s']:7,.0f} steps/s")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=9, help="interleaved timing rounds (median over rounds)")
    ap.add_argument("--iters", type=int, default=3, help="calls per variant per round")
    ap.add_argument("--action-dim", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="fewer variants, no torch.compile")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--wait-idle", type=float, default=0.15, metavar="FRACTION",
                    help="before each measurement wait until other processes use less than this fraction of "
                         "the CPUs (/proc/stat; negative disables)")
    ap.add_argument("--max-wait", type=float, default=60.0, help="seconds to wait for idle per measurement")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    variants = grid(args.quick, args.action_dim)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    busy_seen: list[float] = []
    timer = Timer(args.rounds, args.iters, max_busy=args.wait_idle if args.wait_idle >= 0 else None,
                  max_wait_s=args.max_wait, busy_seen=busy_seen)
    rows = bench_grid(variants, args.batch, timer)
    rec = DenoiserConfig(**{**asdict(RECOMMENDED), "action_dim": args.action_dim})
    compile_rows: list[dict] = []
    if not (args.quick or args.no_compile):
        picks = [v for v in variants if v.config == rec]
        picks += [v for v in variants if v.name in ("8x8x16 c64 b4", "8x8x16 c128 b2") and v.config != rec]
        compile_rows = bench_compile(picks, args.batch, timer)
    sampler_rows = bench_sampler(rec, args.batch, timer)
    payload = {
        "benchmark": "latent EDM denoiser, ms per network evaluation (NFE)",
        "batch": args.batch, "threads": args.threads, "rounds": args.rounds, "iters": args.iters,
        "torch": torch.__version__, "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "loadavg_start": load0, "loadavg_end": os.getloadavg(), "wall_s": time.perf_counter() - t0,
        "recommended": asdict(rec),
        "note": "median over interleaved rounds; shared 2-core machine, expect +-20-30% noise; min_ms ~ unloaded",
        "busy_before_measurement": {"max_busy": args.wait_idle, "median": statistics.median(busy_seen) if busy_seen
                                    else None, "max": max(busy_seen) if busy_seen else None,
                                    "share_over_limit": (sum(b > args.wait_idle for b in busy_seen) / len(busy_seen)
                                                         if busy_seen else None)},
        "rows": rows, "compile": compile_rows, "sampler": sampler_rows,
    }
    write_json(args.out, payload)
    print_table(rows, compile_rows, sampler_rows)
    over = payload["busy_before_measurement"]["share_over_limit"]
    print(f"\nwrote {args.out}  (loadavg {load0[0]:.2f} -> {os.getloadavg()[0]:.2f}, "
          f"{time.perf_counter() - t0:.0f} s" + (f", {over:.0%} of measurements started on a busy machine)"
                                                  if over is not None else ")"))


if __name__ == "__main__":
    main()
