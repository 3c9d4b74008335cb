"""Named zero-shot deployments: ``fog-eval --deployment NAME`` sets the flags that deploy an agent best, as
measured in the README (Push-T: items 19–29; the cube: items 31 and 34), so that a newcomer need not copy a dozen
flags.

A deployment fills in only the fields of :class:`fog_agent.evaluate.EvalConfig` (and of its ``planner``) that are
still at their defaults; any other value given on the command line wins (a value equal to the default, e.g.
``--planner.init-std 0.2``, cannot be told from an unset one, and the deployment's replaces it).
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any, TypeVar

C = TypeVar("C")


def deployment_settings(name: str) -> dict[str, Any]:
    """The settings of the deployment called ``name``; the planner's under the key ``"planner"``."""
    deployments: dict[str, dict[str, Any]] = {
        # planned everywhere in the block-frame state model, the Push-T readers (the agent found anywhere on
        # the frame first) and the pusher dead-reckoned from its actions; the critics' value less 1.5× their
        # disagreement (README item 29); near the goal the H-step reward alone, a wide iCEM search, the best
        # sequence acted
        "pusht": {
            "plan": True,
            "plan_state_model": "pusht_state_block",
            "readers": ("pusht_agent_finder", "pusht_local_reader", "pusht_goal_reader"),
            "odometry": "pusht_odometry",
            "planner": {"finish_reward": 0.9, "init_std": 0.5, "noise_beta": 2.0, "keep_elites": 4, "act": "best",
                        "value_disagreement": 1.5},
        },
        # the cube found in the ego frame by its colour and silhouette, carried on by the state model while the
        # robot pushes it out of view and held where it rests; until it is first seen, the robot turns on the spot
        # (README item 31); the robot's pose found in what the frame shows of the arena, tracked with the state
        # model's prediction, and a cube carried on to where the frame should show 20 of its pixels, and does not,
        # forgotten and searched for again (item 34); the actor acts (planning adds nothing on the cube, item 20)
        "cube": {
            "cube_finder": True,
            "cube_unseen_pixels": 20,
            "robot_finder": True,
            "search_action": (0.0, 0.0, 1.0),
        },
    }
    if name not in deployments:
        raise ValueError(f"unknown deployment {name!r}; choose one of {sorted(deployments)}")
    return deployments[name]


def fill_defaults(cfg: C, settings: dict[str, Any]) -> C:
    """``cfg`` (a dataclass) with ``settings`` in the fields still at their defaults; a nested dict of settings
    fills the nested dataclass in the same way."""
    blank = type(cfg)()
    known = {f.name for f in fields(cfg)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"{type(cfg).__name__} has no field(s) {unknown}")
    changes: dict[str, Any] = {}
    for key, value in settings.items():
        current = getattr(cfg, key)
        if isinstance(value, dict):
            changes[key] = fill_defaults(current, value)
        elif current == getattr(blank, key):
            changes[key] = value
    return replace(cfg, **changes)
