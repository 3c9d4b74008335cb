"""``fog-compare``: the FoG-vs-PPO head-to-head on one learned env, several seeds, one imagined-step budget.

For every seed it trains the FoG agent (DMO-SAPO, ``fog_agent.train``) and SB3 PPO (``baselines.ppo``) in
the same learned env for the same budget of imagined env steps, with zero-shot evaluations on the reference
system at the same checkpoints through the same evaluation code, then writes::

    OUT/fog_seed<S>/, OUT/ppo_seed<S>/   each method's own run directory (resumable; ``result.json`` when done)
    OUT/compare.json                     configuration, per-seed figures, mean ± std, the targets' verdicts
    OUT/compare.png                      learned-env return vs imagined steps and vs wall time; zero-shot
                                         success / mean max coverage vs imagined steps (mean ± std over seeds)

Rerun the same command after a kill: finished runs are skipped and the unfinished one resumes.
``--debug`` runs a seconds-long version on the analytic toy env (what the tests run).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from baselines.compare_stats import curve, final_value, first_crossing, mean_std, on_grid, smoothing_window, \
    trailing_mean
from baselines.ppo import PPOConfig, train_ppo
from fog_agent.config import make_preset
from fog_agent.run_io import atomic_write_json, read_jsonl, save_figure
from fog_agent.train import AgentTrainConfig, train_agent

METHODS = ("fog", "ppo")


@dataclass(frozen=True)
class CompareConfig:
    """One head-to-head: both methods, every seed, the same env and budget."""

    env_id: str = "WMPushT-v0"
    """learned env both methods train in (WMPushT-v0, WMPushCube-v0, WMToy-v0)"""
    seeds: tuple[int, ...] = (0, 1, 2)
    """one FoG run and one PPO run per seed"""
    fog_preset: str = "cpu"
    """the FoG agent's preset (its num_envs × horizon sets the steps per iteration)"""
    iterations: int = 64
    """FoG iterations; the budget of both methods is iterations × num_envs × horizon imagined steps"""
    ppo_obs_type: Literal["latent", "pixels"] = "latent"
    """'latent': PPO sees the FoG agent's input (RSSM features, zero-shot through the same RSSM filter);
    'pixels': SB3's CnnPolicy on stacked 64×64 frames"""
    ppo_n_steps: int = 64
    """PPO steps per env per rollout (rollout = ppo_n_steps × the FoG preset's num_envs)"""
    evals: int = 4
    """zero-shot evaluations per run, evenly spaced; the last one is the final evaluation"""
    eval_episodes: int = 10
    """episodes of each zero-shot evaluation (seeded: every run is evaluated on the same episodes)"""
    out_dir: str = "runs/compare_pusht"
    """where the runs, compare.json and compare.png go"""
    threads: int = 1
    """torch CPU threads per run (1 is fastest on a shared 2-core machine)"""
    debug: bool = False
    """a tiny version on WMToy-v0 (FoG debug preset, tiny PPO); for tests"""

    def resolved(self) -> "CompareConfig":
        """The configuration actually run (``debug`` replaces the env, preset and sizes)."""
        if not self.debug:
            return self
        return replace(self, env_id="WMToy-v0", fog_preset="debug", iterations=min(self.iterations, 4),
                       ppo_n_steps=8, evals=min(self.evals, 2), eval_episodes=1)

    def budget(self) -> int:
        sapo = make_preset(self.fog_preset)
        return self.iterations * sapo.num_envs * sapo.horizon


def fog_config(cfg: CompareConfig, seed: int) -> AgentTrainConfig:
    return AgentTrainConfig(env_id=cfg.env_id, preset=cfg.fog_preset,
                            run_dir=str(Path(cfg.out_dir) / f"fog_seed{seed}"),
                            seed=seed, iterations=cfg.iterations, eval_every=max(1, cfg.iterations // cfg.evals),
                            eval_episodes=cfg.eval_episodes, final_eval_episodes=cfg.eval_episodes, video_episodes=0,
                            checkpoint_every=10, threads=cfg.threads)


def ppo_config(cfg: CompareConfig, seed: int) -> PPOConfig:
    sapo = make_preset(cfg.fog_preset)
    budget = cfg.budget()
    n_envs = sapo.num_envs
    rollout = cfg.ppo_n_steps * n_envs
    tiny = {"net_arch": (32,), "n_epochs": 1} if cfg.debug else {}
    return PPOConfig(env_id=cfg.env_id, obs_type=cfg.ppo_obs_type, total_timesteps=budget, num_envs=n_envs,
                     max_episode_steps=sapo.episode_steps, n_steps=cfg.ppo_n_steps,
                     batch_size=min(16 if cfg.debug else 256, rollout), seed=seed,
                     run_dir=str(Path(cfg.out_dir) / f"ppo_seed{seed}"),
                     device="cpu", eval_every=max(rollout, budget // cfg.evals), eval_episodes=cfg.eval_episodes,
                     final_eval_episodes=cfg.eval_episodes, video_episodes=0, checkpoint_every=rollout,
                     threads=cfg.threads, progress=False, **tiny)


def run_one(method: str, cfg: CompareConfig, seed: int) -> dict[str, Any]:
    """Train (or resume, or skip if finished) one method for one seed; return its final figures."""
    run = Path(cfg.out_dir) / f"{method}_seed{seed}"
    done = run / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    t0 = time.perf_counter()
    result = train_agent(fog_config(cfg, seed)) if method == "fog" else train_ppo(ppo_config(cfg, seed))
    if result.get("stopped"):
        return result
    result = {k: v for k, v in result.items() if k not in ("returns", "successes", "max_coverages", "videos")}
    result["call_wall_s"] = time.perf_counter() - t0
    atomic_write_json(done, result)
    return result


def load_runs(cfg: CompareConfig) -> dict[str, dict[int, dict[str, list[dict[str, Any]]]]]:
    """``{method: {seed: {"metrics": rows, "evals": rows}}}`` from the run directories."""
    out: dict[str, dict[int, dict[str, list[dict[str, Any]]]]] = {}
    for method in METHODS:
        out[method] = {}
        for seed in cfg.seeds:
            run = Path(cfg.out_dir) / f"{method}_seed{seed}"
            out[method][seed] = {"metrics": read_jsonl(run / "metrics.jsonl"), "evals": read_jsonl(run / "evals.jsonl")}
    return out


def summarize(cfg: CompareConfig, runs: dict[str, dict[int, dict[str, list[dict[str, Any]]]]]) -> dict[str, Any]:
    """Per-seed figures, their mean ± std per method, and the head-to-head targets' verdicts."""
    budget = cfg.budget()
    per_seed: dict[str, dict[int, dict[str, Any]]] = {}
    for method, seeds in runs.items():
        per_seed[method] = {}
        for seed, logs in seeds.items():
            x, y = curve(logs["metrics"], "train/imagined_steps", "train/reward")
            _, wall = curve(logs["metrics"], "train/imagined_steps", "time/wall_s")
            last_eval = logs["evals"][-1] if logs["evals"] else {}
            per_seed[method][seed] = {
                "imagined_steps": float(x[-1]) if len(x) else 0.0,
                "final_reward": final_value(y),
                "wall_s": float(wall[-1]) if len(wall) else None,
                "imagined_steps_per_s": float(x[-1] / wall[-1]) if len(wall) and wall[-1] > 0 else None,
                "zero_shot_success": last_eval.get("success_rate"),
                "zero_shot_mean_max_coverage": last_eval.get("mean_max_coverage"),
            }
    ppo_final = mean_std([s["final_reward"] for s in per_seed["ppo"].values()])["mean"]
    # 90% of PPO's gain: a threshold both methods can cross while PPO still climbs (its final value is a
    # plateau that noise alone decides when a curve first touches)
    ppo_start = mean_std([float(y[0]) for _, y in _smoothed(runs["ppo"]) if len(y)])["mean"]
    gain90 = None if ppo_final is None or ppo_start is None else ppo_start + 0.9 * (ppo_final - ppo_start)
    for method in METHODS:
        for seed, (x, y) in zip(runs[method], _smoothed(runs[method])):
            fig = per_seed[method][seed]
            if method == "fog":
                reach = first_crossing(x, y, ppo_final) if ppo_final is not None and len(y) else None
                fig["steps_to_ppo_final_reward"] = reach
                fig["fraction_of_ppo_budget"] = None if reach is None else reach / budget
            fig["steps_to_90pct_of_ppo_gain"] = first_crossing(x, y, gain90) if gain90 is not None and len(y) else None
    steps90 = {m: mean_std([f["steps_to_90pct_of_ppo_gain"] for f in per_seed[m].values()])["mean"] for m in METHODS}

    keys = ("final_reward", "steps_to_90pct_of_ppo_gain", "wall_s", "imagined_steps_per_s", "zero_shot_success",
            "zero_shot_mean_max_coverage")
    aggregate = {m: {k: mean_std([s[k] for s in per_seed[m].values()]) for k in keys} for m in METHODS}
    fractions = [s["fraction_of_ppo_budget"] for s in per_seed["fog"].values()]
    fog_s, ppo_s = aggregate["fog"]["zero_shot_success"]["mean"], aggregate["ppo"]["zero_shot_success"]["mean"]
    verdicts = {
        "fog_reaches_ppo_final_reward_within_a_tenth_of_the_steps":
            bool(fractions) and all(f is not None and f <= 0.1 for f in fractions),
        "fog_zero_shot_success_higher": None if fog_s is None or ppo_s is None else bool(fog_s > ppo_s),
    }
    return {"config": asdict(cfg), "budget_imagined_steps": budget, "per_seed": per_seed,
            "aggregate": aggregate, "ppo_final_reward": ppo_final,
            "ppo_gain": None if ppo_final is None or ppo_start is None else ppo_final - ppo_start,
            "reward_at_90pct_of_ppo_gain": gain90,
            "fog_over_ppo_steps_to_90pct_of_ppo_gain":
                None if steps90["fog"] is None or not steps90["ppo"] else steps90["fog"] / steps90["ppo"],
            "verdicts": verdicts}


def _smoothed(seeds: dict[int, dict[str, list[dict[str, Any]]]],
              x_key: str = "train/imagined_steps") -> list[tuple[np.ndarray, np.ndarray]]:
    """Each seed's reward curve against ``x_key``, trailing-mean smoothed (window: a tenth of the run)."""
    out = []
    for logs in seeds.values():
        x, y = curve(logs["metrics"], x_key, "train/reward")
        out.append((x, trailing_mean(y, smoothing_window(len(y))) if len(y) else y))
    return out


def plot(cfg: CompareConfig, runs: dict[str, dict[int, dict[str, list[dict[str, Any]]]]], out_png: Path) -> None:
    """Three panels, mean ± std over seeds: reward vs imagined steps, reward vs wall time, zero-shot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    colours = {"fog": "tab:blue", "ppo": "tab:orange"}
    labels = {"fog": "FoG (DMO-SAPO)", "ppo": f"PPO ({cfg.ppo_obs_type})"}
    for method, seeds in runs.items():
        for ax, x_key in ((axes[0], "train/imagined_steps"), (axes[1], "time/wall_s")):
            scale = 60.0 if x_key == "time/wall_s" else 1.0
            curves = [(x / scale, y) for x, y in _smoothed(seeds, x_key) if len(y)]
            if not curves:
                continue
            # the range every seed covers: the mean never jumps where one seed's curve ends
            grid = np.linspace(max(c[0][0] for c in curves), min(c[0][-1] for c in curves), 200)
            mean, std = on_grid(curves, grid)
            ax.plot(grid, mean, color=colours[method], label=labels[method])
            ax.fill_between(grid, mean - std, mean + std, color=colours[method], alpha=0.2)
        evals = [e for logs in seeds.values() for e in logs["evals"]]
        if evals:
            steps = sorted({e["imagined_steps"] for e in evals})
            for key, style in (("success_rate", "o-"), ("mean_max_coverage", "s--")):
                vals = [[e[key] for e in evals if e["imagined_steps"] == s and e.get(key) is not None] for s in steps]
                if any(vals):
                    m = [np.mean(v) if v else np.nan for v in vals]
                    sd = [np.std(v) if v else np.nan for v in vals]
                    axes[2].errorbar(steps, m, yerr=sd, fmt=style, color=colours[method], capsize=3,
                                     label=f"{labels[method]}: {key.replace('_', ' ')}")
    if not any(logs["evals"] for seeds in runs.values() for logs in seeds.values()):
        axes[2].text(0.5, 0.5, f"{cfg.env_id} has no reference system", ha="center", va="center",
                     transform=axes[2].transAxes)
    axes[0].set(xlabel="imagined steps", ylabel="mean reward per step (learned env)")
    axes[1].set(xlabel="wall time (min)", ylabel="mean reward per step (learned env)")
    axes[2].set(xlabel="imagined steps", ylabel="zero-shot on the reference system", ylim=(-0.05, 1.05))
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    save_figure(fig, out_png, f"FoG vs PPO on {cfg.env_id}: {len(cfg.seeds)} seeds, "
                              f"{cfg.budget():,} imagined steps each")


def table(summary: dict[str, Any]) -> str:
    """A Markdown table of the aggregate figures (mean ± std over seeds)."""
    def fmt(ms: dict[str, Any], digits: int = 3) -> str:
        return "–" if ms["mean"] is None else f"{ms['mean']:.{digits}f} ± {ms['std']:.{digits}f}"

    agg = summary["aggregate"]
    lines = ["| method | final reward/step | steps to 90% of PPO's gain | zero-shot success | "
             "zero-shot mean max coverage | wall (min) | imagined steps/s |",
             "|---|---|---|---|---|---|---|"]
    for m in METHODS:
        a = agg[m]
        wall = a["wall_s"]
        wall_min = {**wall, "mean": None if wall["mean"] is None else wall["mean"] / 60,
                    "std": None if wall["std"] is None else wall["std"] / 60}
        lines.append(f"| {m} | {fmt(a['final_reward'])} | {fmt(a['steps_to_90pct_of_ppo_gain'], 0)} | "
                     f"{fmt(a['zero_shot_success'], 2)} | "
                     f"{fmt(a['zero_shot_mean_max_coverage'])} | {fmt(wall_min, 1)} | {fmt(a['imagined_steps_per_s'], 0)} |")
    return "\n".join(lines)


def run_comparison(cfg: CompareConfig) -> dict[str, Any]:
    """Train every (method, seed) not yet finished, then write ``compare.json`` and ``compare.png``."""
    cfg = cfg.resolved()
    if not cfg.seeds:
        raise ValueError("seeds is empty: give at least one seed")
    if cfg.evals < 1 or cfg.iterations < cfg.evals:
        raise ValueError(f"need 1 <= evals <= iterations, got evals={cfg.evals}, iterations={cfg.iterations}")
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for seed in cfg.seeds:
        for method in METHODS:
            result = run_one(method, cfg, seed)
            print(f"[compare] {method} seed {seed}: " + json.dumps(
                {k: result.get(k) for k in ("imagined_steps", "success_rate", "mean_max_coverage") if k in result}),
                flush=True)
    runs = load_runs(cfg)
    summary = summarize(cfg, runs)
    atomic_write_json(out / "compare.json", summary)
    plot(cfg, runs, out / "compare.png")
    return summary


def main(argv: list[str] | None = None) -> None:
    import tyro

    cfg = tyro.cli(CompareConfig, args=argv)
    summary = run_comparison(cfg)
    print(table(summary))
    print(json.dumps(summary["verdicts"]))


if __name__ == "__main__":
    main()
