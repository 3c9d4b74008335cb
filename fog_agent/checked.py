"""``fog-train-checked``: train seeds of one recipe until an agent passes the imagined check, then deploy it.

    fog-train-checked --recipe pusht --root runs/checked_pusht --first-seed 0 --max-seeds 6 --parallel 2

One seed of a recipe deploys anywhere from 34 to 100 % on Push-T (README item 41); judged in its own world first
(``fog-eval-imagined --pass-rate 0.85``, no reference system), the agents that pass deploy to 86–100 %. This
command does that search: seed S trains in ``ROOT/seed_S`` (``fog-train`` with the recipe's flags and ``--seed S``),
``--parallel`` seeds at once in their own processes; each batch is judged in the agents' own world, or by their
mean success in the worlds of ``--judge-worlds`` (the cube recipe's: the two shipped cube worlds its agents never
trained in, README item 43), ``--judge-episodes`` episodes from the reference system's resets each; the first
batch with an agent at ``--pass-rate`` (the recipe's: Push-T 85 %, the cube 91 %, README item 44) ends the
search, else the next batch trains, up to ``--max-seeds``. The best agent judged (imagined success, then return) is
deployed zero-shot with the recipe's named deployment (``fog-eval --deployment``). Everything is recorded in
``ROOT/checked.json``, rewritten after every batch (a rerun keeps the last run's choice and deployment there until
it chooses); rerun the command to resume after a stop (trained seeds resume from their checkpoints, a finished
deployment is kept).

The recipe's training flags can be changed after ``--``, as ``fog-train`` takes them:
``fog-train-checked --root R -- --iterations 1500``.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from fog_agent.imagined import ImaginedEvalConfig, evaluate_imagined, rank
from fog_agent.run_io import atomic_write_json, read_jsonl
from fog_agent.train import AgentTrainConfig, train_agent

#: run settings that do not change what a seed trains (where it is written, its threads, a test's stop)
NOT_THE_RECIPE = ("run_dir", "threads", "stop_after")


@dataclass(frozen=True)
class Recipe:
    """A training recipe and the named deployment (``fog_agent.deployments``) its agents are deployed with."""

    train: AgentTrainConfig
    deployment: str | None
    judge_worlds: tuple[str, ...] = ()
    """state models (names or paths) whose worlds judge the agents in place of their own (README item 43); empty:
    their own world"""
    pass_rate: float = 0.85
    """the imagined success an agent must reach where it is judged (Push-T: 0.85, README item 37; the cube: 0.91,
    item 44)"""


def recipes() -> dict[str, Recipe]:
    """The recipes of the README's "Where it stands" table: Push-T (items 28, 37) and the cube (items 33–36). The
    training itself evaluates nothing on the reference system; it judges the policy in its world every 100
    iterations (``imagined.jsonl``, the curve). Push-T's agents are checked in their own world (item 37), the
    cube's in the two shipped cube worlds they never trained in, where their own world does not tell them apart
    (item 43), at 91 % (item 44). The cube's imagined episodes are each dreamt by one of its three state models
    (``ensemble_forward``, item 45), adopted by the plan written before seeds 16–19 (item 46)."""
    quiet = dict(preset="cpu", forward_model="state", local_model="state", gamma=0.98, threads=1, eval_every=0,
                 final_eval_episodes=0, video_episodes=0, imagined_eval_every=100, imagined_eval_episodes=100)
    return {
        "pusht": Recipe(AgentTrainConfig(env_id="WMPushT-v0", iterations=3000, goal_starts=0.25, **quiet), "pusht"),
        "cube": Recipe(AgentTrainConfig(env_id="WMPushCube-v0", iterations=1500, reset_starts=0.5,
                                        state_model="cube_state_agent1",
                                        state_ensemble=("cube_state_agent1_m1", "cube_state_agent1_m2"),
                                        disagreement_weight=30.0, disagreement_dims=(0, 1, 4, 5),
                                        ensemble_forward=True, **quiet), "cube",
                       judge_worlds=("cube_state_walls", "cube_state"), pass_rate=0.91),
    }


@dataclass(frozen=True)
class CheckedConfig:
    """Train seeds of a recipe until one passes the imagined check; deploy the best."""

    recipe: str = "pusht"
    """'pusht' or 'cube' (the README's recipes); its training flags can be changed after ``--``"""
    root: str = "runs/checked_pusht"
    """seed S trains in ROOT/seed_S; the search is recorded in ROOT/checked.json"""
    first_seed: int = 0
    max_seeds: int = 6
    """seeds first_seed, first_seed + 1, ... are trained until one passes or this many have been"""
    parallel: int = 2
    """seeds trained at once, each in its own process (with the recipe's threads, 1 by default)"""
    pass_rate: float | None = None
    """the imagined success rate an agent must reach; None: the recipe's (Push-T 0.85, README item 37; the cube
    0.91 in its unseen worlds, item 44)"""
    judge_episodes: int = 500
    """imagined episodes per agent, from the reference system's resets (fog-eval-imagined's default)"""
    judge_worlds: tuple[str, ...] | None = None
    """judge each agent in these state models' worlds (names or paths; agents trained with local_model='state'),
    its imagined success and return their mean over them, instead of in its own world; None: the recipe's (Push-T:
    its own world; the cube: cube_state_walls and cube_state, README item 43)"""
    deploy: bool = True
    """deploy the chosen agent zero-shot on the reference system (False: train and judge only)"""
    deploy_unchecked: bool = True
    """when no seed passes: deploy the best judged anyway (True) or stop with exit status 1 (False)"""
    deploy_episodes: int = 50
    video_episodes: int = 3
    threads: int = 0
    """torch threads of the judging and the deployment (0: leave torch's default)"""

    def __post_init__(self) -> None:
        if self.recipe not in recipes():
            raise ValueError(f"CheckedConfig: unknown recipe {self.recipe!r}; choose one of {sorted(recipes())}")
        for name in ("max_seeds", "parallel", "judge_episodes", "deploy_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"CheckedConfig: {name} must be >= 1, got {getattr(self, name)}")
        if self.first_seed < 0:
            raise ValueError(f"CheckedConfig: first_seed must be >= 0, got {self.first_seed}")
        if self.pass_rate is not None and not 0.0 < self.pass_rate <= 1.0:
            raise ValueError(f"CheckedConfig: pass_rate must lie in (0, 1], got {self.pass_rate}")


def with_recipe_defaults(cfg: CheckedConfig) -> CheckedConfig:
    """``cfg`` with the recipe's judge worlds and pass rate where it leaves them to the recipe (None)."""
    recipe = recipes()[cfg.recipe]
    return replace(cfg, judge_worlds=recipe.judge_worlds if cfg.judge_worlds is None else cfg.judge_worlds,
                   pass_rate=recipe.pass_rate if cfg.pass_rate is None else cfg.pass_rate)


def seed_config(train: AgentTrainConfig, root: str | Path, seed: int) -> AgentTrainConfig:
    """The recipe for one seed, in ``root/seed_<seed>``; a run already there must have trained the same recipe."""
    cfg = replace(train, seed=seed, run_dir=str(Path(root) / f"seed_{seed}"), stop_after=None)
    saved = Path(cfg.run_dir) / "config.json"
    if saved.is_file():
        theirs = json.loads(saved.read_text())["train"]
        ours = json.loads(json.dumps(asdict(cfg)))  # tuples as lists, as config.json holds them
        differ = sorted(k for k in ours if k not in NOT_THE_RECIPE and theirs.get(k) != ours[k])
        if differ:
            detail = ", ".join(f"{k}={theirs.get(k)!r} vs {ours[k]!r}" for k in differ)
            raise ValueError(f"{cfg.run_dir} holds a run of another recipe ({detail}): choose another --root or "
                             f"--first-seed")
    return cfg


def _train_quietly(cfg: AgentTrainConfig) -> str:
    train_agent(cfg, progress=False)
    return cfg.run_dir


def train_seeds(cfgs: Sequence[AgentTrainConfig], parallel: int) -> list[str]:
    """Train (or resume) each run, ``parallel`` at once in spawned processes (one: here, in turn)."""
    if parallel == 1 or len(cfgs) == 1:
        return [_train_quietly(cfg) for cfg in cfgs]
    with ProcessPoolExecutor(min(parallel, len(cfgs)), mp_context=get_context("spawn")) as pool:
        return list(pool.map(_train_quietly, cfgs))


def judge(run: str, cfg: CheckedConfig) -> dict[str, Any]:
    """The imagined check of one trained agent (``fog-eval-imagined``, written next to the run): in its own world,
    or with ``cfg.judge_worlds`` in each of those (``eval_imagined_judge_<name>.json``), its success rate and
    return their mean, each world's success rate under ``worlds`` and its own world's as ``own_success_rate``."""
    own = evaluate_imagined(run, ImaginedEvalConfig(run_dirs=(run,), episodes=cfg.judge_episodes,
                                                    pass_rate=cfg.pass_rate))
    if not cfg.judge_worlds:
        return own
    results = {world: evaluate_imagined(run, ImaginedEvalConfig(run_dirs=(run,), episodes=cfg.judge_episodes,
                                                                state_model=world, tag=f"judge_{Path(world).name}"))
               for world in cfg.judge_worlds}
    return {**{k: own[k] for k in ("run", "checkpoint_iteration", "imagined_steps")},
            "success_rate": sum(r["success_rate"] for r in results.values()) / len(results),
            "mean_return": sum(r["mean_return"] for r in results.values()) / len(results),
            "own_success_rate": own["success_rate"],
            "worlds": {world: r["success_rate"] for world, r in results.items()}}


def deploy(run: str, deployment: str | None, cfg: CheckedConfig) -> dict[str, Any]:
    """The chosen agent deployed zero-shot (``fog-eval --deployment``)."""
    from fog_agent.evaluate import EvalConfig, run_evaluation

    return run_evaluation(EvalConfig(run_dir=run, deployment=deployment, episodes=cfg.deploy_episodes,
                                     video_episodes=cfg.video_episodes))


def judged_row(seed: int, result: dict[str, Any], pass_rate: float) -> dict[str, Any]:
    """What ``checked.json`` keeps of one seed's imagined check, and the training's curve of imagined success
    (``[iteration, success rate]`` from its ``imagined.jsonl``; empty without ``--imagined-eval-every``)."""
    keep = {k: v for k, v in result.items() if k in ("run", "checkpoint_iteration", "imagined_steps", "success_rate",
                                                      "own_success_rate", "worlds") or k.startswith("mean_")}
    curve = [[row["iteration"], row["success_rate"]] for row in read_jsonl(Path(result["run"]) / "imagined.jsonl")]
    return {"seed": seed, **keep, "passes": bool(result["success_rate"] >= pass_rate), "curve": curve}


DEPLOYED_KEYS = ("env_id", "episodes", "seed", "success_rate", "mean_return", "mean_max_coverage", "deployment",
                 "checkpoint_iteration")


def run_checked(cfg: CheckedConfig, train: AgentTrainConfig | None = None, deployment: str | None = "recipe",
                trainer: Callable[[Sequence[AgentTrainConfig], int], list[str]] = train_seeds,
                judger: Callable[[str, CheckedConfig], dict[str, Any]] = judge,
                deployer: Callable[[str, str | None, CheckedConfig], dict[str, Any]] = deploy) -> dict[str, Any]:
    """The search of the module docstring; returns what ``ROOT/checked.json`` holds. ``train`` and ``deployment``
    replace the recipe's (the CLI's flags after ``--``; tests); ``trainer``, ``judger`` and ``deployer`` are the
    three steps (tests replace them)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    recipe = recipes()[cfg.recipe]
    cfg = with_recipe_defaults(cfg)
    train = recipe.train if train is None else train
    deployment = recipe.deployment if deployment == "recipe" else deployment
    root = Path(cfg.root)
    root.mkdir(parents=True, exist_ok=True)
    out_path = root / "checked.json"
    previous = json.loads(out_path.read_text()) if out_path.is_file() else {}
    record: dict[str, Any] = {"config": asdict(cfg), "train": asdict(train), "deployment": deployment, "judged": [],
                              "chosen": None, "deployed": None}
    seeds = range(cfg.first_seed, cfg.first_seed + cfg.max_seeds)
    for start in range(0, cfg.max_seeds, cfg.parallel):
        batch = [seed_config(train, root, s) for s in seeds[start:start + cfg.parallel]]
        for run in trainer(batch, cfg.parallel):
            seed = next(c.seed for c in batch if c.run_dir == run)
            record["judged"].append(judged_row(seed, judger(run, cfg), cfg.pass_rate))
        # until this run chooses, the file keeps the last run's choice and deployment (a stop loses neither)
        atomic_write_json(out_path, {**record, "chosen": previous.get("chosen"), "deployed": previous.get("deployed")})
        if any(row["passes"] for row in record["judged"]):
            break
    best_run = rank(record["judged"])[0]["run"]  # imagined success, then return
    best = next(row for row in record["judged"] if row["run"] == best_run)
    if not best["passes"] and not cfg.deploy_unchecked:
        return record
    record["chosen"] = {"seed": best["seed"], "run": best["run"], "passes": best["passes"]}
    if cfg.deploy:
        kept = previous.get("deployed")
        same = kept is not None and (previous.get("chosen") or {}).get("run") == best["run"] \
            and kept.get("episodes") == cfg.deploy_episodes and kept.get("deployment") == deployment
        if same:
            record["deployed"] = kept
        else:
            result = deployer(best["run"], deployment, cfg)
            record["deployed"] = {k: result[k] for k in DEPLOYED_KEYS if k in result}
    atomic_write_json(out_path, record)
    return record


def split_argv(argv: Sequence[str]) -> tuple[list[str], list[str] | None]:
    """This command's flags, and the recipe's training flags after ``--`` (None: no ``--``)."""
    argv = list(argv)
    if "--" not in argv:
        return argv, None
    at = argv.index("--")
    return argv[:at], argv[at + 1:]


def main(argv: Sequence[str] | None = None) -> None:
    import tyro

    ours, theirs = split_argv(sys.argv[1:] if argv is None else argv)
    cfg = tyro.cli(CheckedConfig, args=ours, description=__doc__)
    train = None
    if theirs is not None:
        train = tyro.cli(AgentTrainConfig, args=theirs, default=recipes()[cfg.recipe].train,
                         prog="fog-train-checked ... --")
    record = run_checked(cfg, train)
    for row in record["judged"]:
        where = "" if "worlds" not in row else \
            f" in {', '.join(row['worlds'])} ({row['own_success_rate']:.1%} in its own)"
        print(f"seed {row['seed']}: {row['success_rate']:.1%} imagined success{where}"
              + (" (passes)" if row["passes"] else ""))
    chosen = record["chosen"]
    if chosen is None:
        print(f"no seed of {len(record['judged'])} reaches {with_recipe_defaults(cfg).pass_rate:.0%} imagined "
              f"success: nothing deployed (--first-seed {cfg.first_seed + cfg.max_seeds} trains more)")
        raise SystemExit(1)
    print(f"chosen: seed {chosen['seed']} ({chosen['run']})" + ("" if chosen["passes"] else ", which did not pass"))
    if record["deployed"] is not None:
        print({k: v for k, v in record["deployed"].items()})


if __name__ == "__main__":
    main()
