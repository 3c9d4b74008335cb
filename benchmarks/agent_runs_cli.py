"""The command line shared by the benchmarks that replay trained agents' run directories on a reference system."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from fog_agent.run_io import atomic_write_json


def run_dirs_parser(doc: str | None, out: Path, episodes_flag: str = "--episodes", episodes: int = 50,
                    seed: int = 100_000) -> argparse.ArgumentParser:
    """``--run-dir`` (repeatable), an episode count (``episodes_flag``), ``--seed``, ``--threads`` and ``--out``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", action="append", required=True)
    parser.add_argument(episodes_flag, type=int, default=episodes)
    parser.add_argument("--seed", type=int, default=seed)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(out))
    return parser


def parse_run_dirs(parser: argparse.ArgumentParser, episodes_flag: str = "--episodes",
                   argv: list[str] | None = None) -> argparse.Namespace:
    """Parse ``argv`` (default: the command line), refuse a count below 1 by name, and set torch's threads."""
    args = parser.parse_args(argv)
    name = episodes_flag.lstrip("-").replace("-", "_")
    if getattr(args, name) < 1:
        parser.error(f"{episodes_flag} must be >= 1, got {getattr(args, name)}")
    torch.set_num_threads(args.threads)
    return args


def write_results(out: str | Path, results: dict) -> None:
    """Write a benchmark's JSON atomically to ``out`` (creating its folder) and say where."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, results)
    print(f"wrote {path}")
