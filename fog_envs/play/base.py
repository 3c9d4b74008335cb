"""The interface every scripted play policy implements."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class PlayPolicy(Protocol):
    """A scripted, stochastic exploration policy that reads the reference system's true state.

    Play policies stand in for a human doing "play" teleoperation: contact-rich, varied, noisy.
    They read ``info["state"]`` (the env's true physical state) and return a normalised action in
    the env's ``Box(-1, 1, (A,))`` action space. All randomness comes from the generator given at
    ``reset`` so that a collection is reproducible from its seed.
    """

    # Optional: ``reset_options(rng) -> dict | None`` picks the options of ``env.reset`` (e.g. a start state),
    # the way a person arranges the scene before playing.
    # Optional: ``observe(obs) -> None`` receives each observation just before the call that acts on it, for
    # policies that look at what the env shows rather than its true state (e.g. a trained agent's controller).

    def reset(self, info: dict[str, Any], rng: np.random.Generator) -> None:
        """Start a new episode; ``info`` is the dict returned by ``env.reset``."""

    def __call__(self, info: dict[str, Any]) -> np.ndarray:
        """Return the next action (float32, shape ``(A,)``, within [-1, 1])."""
