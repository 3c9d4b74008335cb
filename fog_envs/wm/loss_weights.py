"""Per-element loss weights shared by the world model's training losses."""

from __future__ import annotations

from torch import Tensor


def motion_weights(x0: Tensor, last: Tensor, strength: float, eps: float = 1e-6) -> Tensor:
    """Per-element loss weights ``1 + strength·|x0 − last| / mean|x0 − last|``, renormalised to mean 1.

    ``x0`` and ``last`` are (B, C, h, w): the target latent and the last context latent. Elements that change
    between the two frames get more weight; ``strength = 0`` gives all ones.
    """
    delta = (x0 - last).abs().float()
    w = 1.0 + strength * delta / (delta.mean() + eps)
    return (w / w.mean()).detach()
