"""DMO-SAPO hyperparameters and named presets (sources: research/papers.md §2.4)."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class SAPOConfig:
    """Everything the DMO-SAPO learner needs; defaults follow SAPO / DeMO-SAPO (papers.md §2.4)."""

    num_envs: int = 64
    """N parallel imagined envs"""
    horizon: int = 16
    """H, the short back-propagation horizon (DMO default 16)"""
    iterations: int = 500
    gamma: float = 0.99
    lam: float = 0.95
    actor_hidden: tuple[int, ...] = (256, 256)
    critic_hidden: tuple[int, ...] = (256, 256)
    actor_lr: float = 5e-4
    critic_lr: float = 5e-4
    final_lr: float = 1e-5
    """both learning rates decay linearly to this"""
    betas: tuple[float, float] = (0.7, 0.95)
    weight_decay: float = 0.01
    actor_grad_clip: float = 0.5
    critic_grad_clip: float = 0.5
    critic_iterations: int = 16
    critic_minibatches: int = 4
    alpha_init: float = 1.0
    alpha_lr: float = 5e-3
    target_entropy_scale: float = 0.5
    """H̄ = -target_entropy_scale · |A|"""
    episode_steps: int = 64
    """imagined episode length before re-spawning from a real window"""
    local_refresh_steps: int = 0
    """RSSM refresh gradient steps per iteration (0: off)"""
    bootstrap: bool = True
    """add the critics' value of the state at each segment's end to the actor objective (SAPO/SHAC); False:
    the actor maximises only the H-step return (an ablation of the critic's gradient)"""
    state_grad_clip: float = 0.0
    """> 0: at every step, clip each env's gradient of the objective w.r.t. its state to this norm before it
    flows back through the local model's Jacobian (bounds the chained-Jacobian blow-up of contact dynamics);
    0: off"""
    reward_scale: float = 1.0
    """the env reward is multiplied by this in the objective and the critic targets (logged unscaled). SAPO's
    entropy bonus is ~[0, 1] per step by construction, so rewards whose policy-dependent part is much smaller
    (Push-T's shaped reward varies by ~0.05 per step between behaviours) are swamped by it"""

    zeroth_order_weight: float = 0.0
    """w in [0, 1]: the actor's gradient is ``(1 − w)·`` the first-order (pathwise) gradient ``+ w·`` a
    likelihood-ratio (REINFORCE) estimate of the same objective, ``−mean_t log N(u_t; μ, σ)·Â_t``: an α-order
    gradient (Suh et al. 2022, "Do Differentiable Simulators Give Better Policy Gradients?"), which needs no
    model Jacobian. ``Â_t``: with ``bootstrap`` the TD(λ) target minus the critics' value of s_t, without it
    the reward-to-go inside the window minus its mean over the envs at step t. 0: pure first order (SAPO)"""

    def __post_init__(self) -> None:
        for name in ("num_envs", "horizon", "iterations", "critic_iterations", "critic_minibatches", "episode_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"SAPOConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not (0.0 < self.gamma <= 1.0 and 0.0 <= self.lam <= 1.0):
            raise ValueError(f"SAPOConfig: need 0 < gamma <= 1 and 0 <= lam <= 1, got gamma={self.gamma}, lam={self.lam}")
        if self.target_entropy_scale <= 0:
            raise ValueError("SAPOConfig.target_entropy_scale must be > 0 (the target entropy is -scale·|A| and the "
                             f"entropy bonus divides by it), got {self.target_entropy_scale}")
        if self.state_grad_clip < 0:
            raise ValueError(f"SAPOConfig.state_grad_clip must be >= 0 (0: off), got {self.state_grad_clip}")
        if not 0.0 <= self.zeroth_order_weight <= 1.0:
            raise ValueError(f"SAPOConfig.zeroth_order_weight must lie in [0, 1], got {self.zeroth_order_weight}")


def make_preset(name: str) -> SAPOConfig:
    """``debug`` (tests), ``cpu`` (~30 min here, the README's main job), ``cpu-long``, ``gpu`` (paper scale)."""
    base = SAPOConfig()
    presets = {
        "debug": replace(base, num_envs=4, horizon=4, iterations=2, actor_hidden=(16,), critic_hidden=(16,),
                         critic_iterations=2, critic_minibatches=2, episode_steps=6),
        # reward_scale 10: both tasks' rewards lie in [0, 2] and differ by ~0.05 per step between behaviours,
        # against an entropy bonus of ~1 per step; on WMPushT-v0 it made the learned-env reward climb
        # (64 iterations: 0.229 -> 0.247-0.267 per step, vs 0.20 -> 0.23 unscaled)
        "cpu": replace(base, num_envs=64, horizon=16, iterations=300, local_refresh_steps=8, reward_scale=10.0),
        "cpu-long": replace(base, num_envs=64, horizon=16, iterations=3000, local_refresh_steps=8, reward_scale=10.0),
        "gpu": replace(base, num_envs=256, horizon=16, iterations=2000, local_refresh_steps=32, reward_scale=10.0),
    }
    if name not in presets:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(presets)}")
    return presets[name]
