"""Does an agent's success inside its learned world predict its deployed success on the reference system?

    python benchmarks/bench_imagined_selection.py --agent RUN=REAL_JSON [--agent ...] [--episodes 500]
        [--starts reset world] [--judge-world STATE_MODEL ...] [--out benchmarks/results/imagined_selection.json]

Each ``--agent`` pairs a run directory with the JSON of its deployment on the reference system (``fog-eval``'s
``eval_*.json``, or ``bench_cube_handover.py``'s, whose row named after the run is read; several joined by ``+`` are
pooled episode by episode).
Each agent is evaluated in its own learned world by :func:`fog_agent.imagined.evaluate_imagined` (``fog-eval-imagined``)
for every ``--starts``, and with ``--judge-world`` also in each named state model's world (agents trained with
``local_model='state'``; judge ``<starts>@<world>``) and by those worlds' mean success (``<starts>@others``): an
agent that learnt its own world's errors may do worse in a world trained otherwise. Agents are grouped by recipe
(the run's name without its trailing ``_s<seed>``; ``fog-train-checked``'s ``ROOT/seed_<seed>`` by ROOT); per group
and judge: the rank correlation between imagined and deployed success, and what choosing the agent with the best
imagined success gives against the group's mean and best deployed success; per learned env, the rank correlation
over all its agents. Prints a table; writes JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.agent_runs_cli import write_results  # noqa: E402
from fog_agent.imagined import ImaginedEvalConfig, evaluate_imagined  # noqa: E402


def real_successes(path: str | Path, run: str | Path) -> list[bool]:
    """The deployed episodes' successes of ``run`` in the results JSON at ``path``."""
    data = json.loads(Path(path).read_text())
    if "successes" in data:
        return [bool(x) for x in data["successes"]]
    name = Path(run).name
    rows = [r for r in data.get("rows", []) if r.get("setting") == name]
    if not rows:
        raise ValueError(f"{path}: no successes and no row named {name!r}")
    return [bool(x) for x in rows[0]["successes"]]


def real_success(paths: str, run: str | Path) -> float:
    """The deployed success rate of ``run`` over every episode of the results JSONs ``paths`` (joined by '+')."""
    episodes = [s for path in paths.split("+") for s in real_successes(path, run)]
    return float(np.mean(episodes))


def recipe(run: str | Path) -> str:
    """A run's recipe: its directory name without the trailing ``_s<seed>``; for ``fog-train-checked``'s
    ``ROOT/seed_<seed>``, ROOT's name."""
    path = Path(run)
    if re.fullmatch(r"seed_\d+", path.name):
        return path.parent.name
    return re.sub(r"_s\d+$", "", path.name)


def ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given their mean rank."""
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):
        tied = x == v
        r[tied] = r[tied].mean()
    return r


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation (None where either side has no spread)."""
    ra, rb = ranks(np.asarray(a, float)), ranks(np.asarray(b, float))
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def selection(imagined: list[float], real: list[float]) -> dict[str, float]:
    """The deployed success of the agent with the best imagined success (ties: their mean), against the group's."""
    imagined_a, real_a = np.asarray(imagined), np.asarray(real)
    chosen = real_a[imagined_a == imagined_a.max()].mean()
    return {"chosen": float(chosen), "mean": float(real_a.mean()), "best": float(real_a.max()),
            "worst": float(real_a.min())}


def judge_name(starts: str, world: str | None) -> str:
    """A judge's key: its starts, and ``@<world>`` when it is not the agent's own world."""
    return starts if world is None else f"{starts}@{world}"


def judge_names(starts: list[str], worlds: list[str]) -> list[str]:
    """Every judge's key, per starts: the own world, each ``worlds``'s, and their mean (``@others``) when any."""
    names = []
    for s in starts:
        names += [judge_name(s, None), *(judge_name(s, w) for w in worlds)] + ([f"{s}@others"] if worlds else [])
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agent", action="append", required=True, help="RUN=REAL_JSON[+REAL_JSON...]")
    parser.add_argument("--episodes", type=int, default=500)
    parser.add_argument("--episode-steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--starts", nargs="+", default=["reset", "world"])
    parser.add_argument("--judge-world", action="append", default=[],
                        help="also judge every agent in this state model's world (name or path; repeat)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/imagined_selection.json")
    args = parser.parse_args(argv)
    pairs = []
    for item in args.agent:
        run, sep, real = item.partition("=")
        if not sep:
            parser.error(f"--agent {item!r}: expected RUN=REAL_JSON")
        pairs.append((run, real_success(real, run)))
    torch.set_num_threads(args.threads)
    judges = judge_names(args.starts, args.judge_world)
    agents = []
    for run, real in pairs:
        row = {"run": run, "recipe": recipe(run), "real": real}
        for starts in args.starts:
            for world in [None, *args.judge_world]:
                tag = f"selection_{starts}" + ("" if world is None else f"_{Path(world).name}")
                cfg = ImaginedEvalConfig(run_dirs=(run,), episodes=args.episodes, seed=args.seed, starts=starts,
                                         episode_steps=args.episode_steps, state_model=world, tag=tag)
                result = evaluate_imagined(run, cfg)
                row[judge_name(starts, world)], row["env_id"] = result["success_rate"], result["env_id"]
            if args.judge_world:
                row[f"{starts}@others"] = float(np.mean([row[judge_name(starts, w)] for w in args.judge_world]))
        agents.append(row)
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in agents:
        groups[row["recipe"]].append(row)
    summary = {}
    for name, rows in groups.items():
        summary[name] = {s: {"spearman": spearman([r[s] for r in rows], [r["real"] for r in rows]),
                             **selection([r[s] for r in rows], [r["real"] for r in rows])} for s in judges}
    tasks = sorted({r["env_id"] for r in agents})
    pooled = {task: {s: spearman([r[s] for r in agents if r["env_id"] == task],
                                 [r["real"] for r in agents if r["env_id"] == task]) for s in judges}
              for task in tasks}
    multi = [g for g, rows in groups.items() if len(rows) > 1]
    overall = {s: {k: float(np.mean([summary[g][s][k] for g in multi])) for k in ("chosen", "mean", "best", "worst")}
               for s in judges} if multi else {}

    print("| agent | deployed | " + " | ".join(f"imagined ({s})" for s in judges) + " |")
    print("|---|---|" + "---|" * len(judges))
    for row in agents:
        print(f"| {row['run']} | {row['real']:.2f} | " + " | ".join(f"{row[s]:.3f}" for s in judges) + " |")
    print("\n| recipe, judge | Spearman | deployed: chosen by imagined · mean · best · worst |")
    print("|---|---|---|")
    for name, by in summary.items():
        for s, v in by.items():
            rho = "–" if v["spearman"] is None else f"{v['spearman']:+.2f}"
            figures = " · ".join(f"{v[k]:.2f}" for k in ("chosen", "mean", "best", "worst"))
            print(f"| {name}, {s} | {rho} | {figures} |")
    for s in judges:
        for task in tasks:
            rho = "–" if pooled[task][s] is None else f"{pooled[task][s]:+.2f}"
            count = sum(r["env_id"] == task for r in agents)
            print(f"{task}: Spearman over its {count} agents ({s}): {rho}")
        if multi:
            print(f"over the {len(multi)} recipes with several agents ({s}): chosen "
                  f"{overall[s]['chosen']:.3f} against mean {overall[s]['mean']:.3f}")
    write_results(args.out, {"episodes": args.episodes, "seed": args.seed, "starts": args.starts,
                             "judge_worlds": args.judge_world, "judges": judges, "agents": agents,
                             "recipes": summary, "pooled_spearman": pooled, "over_recipes": overall})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
