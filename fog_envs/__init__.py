"""fog_envs: reference systems, play datasets, learned world models and differentiable Gym envs.

Importing this package registers every environment id with Gymnasium::

    import gymnasium as gym
    import fog_envs  # noqa: F401

    env = gym.make("RealPushT-v0")
"""

import os

# Headless MuJoCo rendering must be chosen before mujoco is first imported (RealPushCube-v0).
os.environ.setdefault("MUJOCO_GL", "egl")

from fog_envs.registration import register_envs  # noqa: E402

__version__ = "0.1.0"

register_envs()

__all__ = ["register_envs", "__version__"]
