"""``RealPushT-v0``: gym-pusht's physics seen at 64×64, driven by normalised delta actions.

It is the stand-in for the real Push-T robot: the world models learn from its play data and the agents
are evaluated on it zero-shot.

* Observation: ``Box(0, 255, (64, 64, 3), uint8)``, RGB, HWC (gym-pusht's drawing, resized); with
  ``obs_type="state"``, the true state ``Box((5,), float64)`` (``info["state"]``) and no drawing, for
  state-based agents (drawing the frame is ~60 % of a pixel step).
* Action: ``Box(-1, 1, (2,), float32)``. The agent's PD target is set to
  ``agent_position + action * MAX_TARGET_DELTA`` (``MAX_TARGET_DELTA = 40`` px of the 512 px table), clipped
  to the table. With gym-pusht's PD gains the agent then moves at most ~16 px per step. Actions outside
  [-1, 1] (beyond 1e-4 of round-off), of the wrong shape, or with NaN/inf raise ``ValueError``.
* 10 Hz control (10 physics substeps of 10 ms), 300-step episodes (the registered ``TimeLimit``).
* Reward: :func:`fog_envs.real.pusht_reward.reward` (coverage plus pose and approach shaping, in [0, 1]).
* ``info``: ``state`` (``[agent_x, agent_y, block_x, block_y, block_angle]``), ``coverage``,
  ``is_success`` (coverage ≥ 0.95), ``reward_terms``.
* Episodes are not terminated at success unless ``terminate_on_success=True`` (the reward is highest at the
  goal, so a policy is paid to stay there); the standard Push-T score is the episode's maximum coverage.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import numpy as np  # noqa: E402
from gym_pusht.envs.pusht import PushTEnv  # noqa: E402
from gymnasium import spaces  # noqa: E402

from fog_envs.action_checks import check_action  # noqa: E402
from fog_envs.real import pusht_reward  # noqa: E402

MAX_TARGET_DELTA = 40.0  #: pixels of the 512 px table per unit action
TABLE_SIZE = 512.0
OBS_SIZE = 64


class RealPushTEnv(PushTEnv):
    """Push-T reference system (see the module docstring for the contract)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        render_mode: str | None = "rgb_array",
        obs_size: int = OBS_SIZE,
        render_size: int = 256,
        terminate_on_success: bool = False,
        obs_type: str = "pixels",
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"RealPushT-v0: render_mode must be 'rgb_array' or None, got {render_mode!r}")
        if obs_type not in ("pixels", "state"):
            raise ValueError(f"RealPushT-v0: obs_type must be 'pixels' or 'state', got {obs_type!r}")
        super().__init__(
            obs_type=obs_type,
            render_mode="rgb_array",
            observation_width=obs_size,
            observation_height=obs_size,
            visualization_width=render_size,
            visualization_height=render_size,
        )
        self.render_mode = render_mode
        self.terminate_on_success = terminate_on_success
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._has_reset = False

    def _render(self, visualize: bool = False) -> np.ndarray:
        # gym-pusht branches on render_mode; observations are always drawn as rgb arrays here.
        width = self.visualization_width if visualize else self.observation_width
        height = self.visualization_height if visualize else self.observation_height
        return self._get_img(self._draw(), width=width, height=height, render_action=visualize)

    def _set_state(self, state: np.ndarray) -> None:
        # gym-pusht sets the block's position before its angle (legacy order, gym-pusht #16), so the block
        # ends up elsewhere than asked; setting the angle first makes reset_to_state exact.
        state = np.asarray(state, dtype=np.float64)
        if state.shape != (5,) or not np.all(np.isfinite(state)):
            raise ValueError(f"RealPushT-v0: reset_to_state must be 5 finite numbers [ax, ay, bx, by, angle], got {state}")
        self.agent.position = state[:2].tolist()
        self.block.angle = float(state[4])
        self.block.position = state[2:4].tolist()
        self.space.step(self.dt)

    def true_state(self) -> np.ndarray:
        """``[agent_x, agent_y, block_x, block_y, block_angle mod 2π]`` as float64."""
        agent = np.asarray(self.agent.position, dtype=np.float64)
        block = np.asarray(self.block.position, dtype=np.float64)
        return np.array([agent[0], agent[1], block[0], block[1], self.block.angle % (2 * np.pi)])

    def _fog_info(self) -> tuple[float, dict[str, Any]]:
        state = self.true_state()
        terms = pusht_reward.reward_terms(state)
        info = {
            "state": state,
            "coverage": terms["coverage"],
            "is_success": bool(terms["coverage"] >= pusht_reward.SUCCESS_COVERAGE),
            "reward_terms": terms,
        }
        return pusht_reward.combine_terms(terms), info

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset to a random state (gym-pusht's distribution) or to ``options["reset_to_state"]``."""
        super().reset(seed=seed, options=options)
        self._has_reset = True
        _, info = self._fog_info()
        return self.get_obs(), info

    def step(self, action: Any):
        """Move the agent's target by ``action * MAX_TARGET_DELTA`` px and simulate 0.1 s."""
        if not self._has_reset:
            raise RuntimeError("RealPushT-v0: call reset() before step()")
        act = check_action(action, self.action_space, "RealPushT-v0")
        target = np.clip(np.asarray(self.agent.position) + act * MAX_TARGET_DELTA, 0.0, TABLE_SIZE)
        obs, _, _, _, _ = super().step(target)
        rew, info = self._fog_info()
        terminated = bool(self.terminate_on_success and info["is_success"])
        return obs, rew, terminated, False, info

    def render(self) -> np.ndarray | None:
        """An RGB frame of ``render_size`` pixels, with the last target marked."""
        if self.render_mode is None:
            return None
        return self._render(visualize=True)
