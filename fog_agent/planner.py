"""Decision-time planning for a deployed DMO-SAPO agent: the cross-entropy method in a local model, seeded by
the policy, scored by the agent's own objective.

At each real step, from the observer's local state ``x``, :class:`PolicyCEM` rolls ``samples`` H-step action
sequences through a differentiable local model's ``step`` (no gradients needed), scores each by the objective the
actor was trained on without its entropy term, ``Σ_k γ^k · reward_scale · r(x_{k+1}) + value_weight · γ^H ·
mean V(x_H)``, refits a Gaussian over the best ``elites`` and, after ``iterations`` rounds, acts with the first
action of the elites' mean. Every round's candidates include the policy's own deterministic sequence (so the best
candidate is never rated below what the actor would do), ``policy_samples`` sequences sampled from the policy and
the last plan shifted by one step. Near the goal (``finish_reward``) the value is left out and the H-step reward
alone decides. It is TD-MPC's planner (Hansen et al. 2022) with a plain elite mean in place of
its softmax weights; iCEM's additions (Pinneri et al. 2020) are options, off by default: temporally correlated
candidates (``noise_beta``), elites kept from round to round (``keep_elites``) and acting with the best sequence
(``act="best"``). Other agents trained in the same learned env can join as ``companions``: the value is then
the agents' mean and each agent's policy adds its sequences (an ensemble's critics, as TD-MPC2 averages its
Q-functions). Why: the policy stops a few pixels short of the Push-T goal even in its own world, and
planning spends model calls at deployment on the last pixels: from near-goal starts it doubles what the agent
finishes in its world, though far less on the real system, where the model's own precision near the goal limits it
(``benchmarks/goal_approach.py --plan``, README item 17). Nothing is trained on the real system.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Sequence

import torch

#: a batched local-model step ``x' = step(x, a)``
Step = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class PlannerConfig:
    """The cross-entropy planner's budget and objective (about ``iterations × (samples + policy_samples + 2) ×
    horizon`` local-model steps per real step, batched over the candidates)."""

    horizon: int = 8
    samples: int = 64
    """Gaussian candidates per iteration"""
    policy_samples: int = 8
    """sequences sampled from the policy (drawn once per real step)"""
    iterations: int = 3
    elites: int = 8
    init_std: float = 0.2
    """the Gaussian's first standard deviation, in action units (actions lie in [-1, 1])"""
    min_std: float = 0.02
    value_weight: float = 1.0
    """weight of the critics' value at the horizon (0: the H-step reward alone)"""
    value_disagreement: float = 0.0
    """κ: the value at the horizon is the critics' mean less κ times their spread (max − min over the clipped double
    critics, ``|Q₁ − Q₂|``). Far from the data the critics extrapolate, and disagree: on Push-T they rate the pusher
    pressed against the table's far edge above the approach to the block, and a planner that trusts the mean
    drives it there and stays (README item 29); κ > 0 discounts such states. 0: the mean alone"""
    engage_reward: float | None = None
    """plan only in states whose local reward is at least this (Push-T: 0.6 is about half the goal covered), and
    act with the policy elsewhere (its mean or a sample, ``disengaged``); None: plan everywhere (on Push-T the better choice: 40.5 % success
    over four agents against 26 % from 0.6, README item 24)"""
    finish_reward: float | None = None
    """in states whose local reward is at least this, score sequences by their H-step reward alone, without the
    critics' value (Push-T: 0.9, about 0.8 coverage, with ``init_std=0.5``): the value is ~100× a step's reward
    and its error between nearby states outweighs the last pixels' gain, so near the goal it picks where the
    agent hovers rather than the push that finishes (README item 21); None: always add the value"""
    finish_samples: int | None = None
    """Gaussian candidates per iteration where ``finish_reward`` applies (None: ``samples``): near the goal the
    push that finishes lies far from the policy's own sequence (README item 21), so the finish phase may search
    wider than the rest. On Push-T 256 candidates over 6 rounds there finish 42 of 60 bench episodes against 40,
    at 3× the time per step (README item 27): not worth it, so the deployments leave it off"""
    finish_iterations: int | None = None
    """rounds where ``finish_reward`` applies (None: ``iterations``)"""
    noise_beta: float = 0.0
    """exponent of the candidates' noise spectrum over the horizon, power ∝ 1/f^β (iCEM's colored noise, Pinneri
    et al. 2020): 0 draws white noise as plain CEM does; 1–2 draw smoother, more coherent sequences that carry the
    pusher further for the same σ (README item 22: a few episodes in 30 on Push-T, the best-sequence action far more)"""
    keep_elites: int = 0
    """the best this many candidates of a round are candidates again in the next (iCEM's memory), so the best
    return never falls from one round to the next"""
    act: Literal["mean", "best"] = "mean"
    """execute the first action of the last elites' mean (CEM) or of the best sequence scored (iCEM): a mean over
    elites that push different faces of the block may be a push of neither"""
    disengaged: Literal["mean", "sample"] = "mean"
    """with ``engage_reward``, where the planner does not engage: act with the policy's mean (tanh μ) or sample
    from it as in training. Given the pusher to the pixel (``fog-eval --odometry``) the mean locks into fixed
    points away from the goal (pressing the pusher against the table's edge) that noisy readings used to shake
    it out of; a sample does not (README item 23)"""
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.horizon, self.samples, self.iterations, self.elites) < 1 or self.policy_samples < 0:
            raise ValueError(f"PlannerConfig: horizon, samples, iterations and elites must be >= 1 and "
                             f"policy_samples >= 0, got {self}")
        if self.elites > self.samples:
            raise ValueError(f"PlannerConfig: elites ({self.elites}) must not exceed samples ({self.samples})")
        if not 0 < self.min_std <= self.init_std:
            raise ValueError(f"PlannerConfig: need 0 < min_std <= init_std, got {self.min_std}, {self.init_std}")
        if self.value_weight < 0:
            raise ValueError(f"PlannerConfig: value_weight must be >= 0, got {self.value_weight}")
        if self.value_disagreement < 0:
            raise ValueError(f"PlannerConfig: value_disagreement must be >= 0, got {self.value_disagreement}")
        for name in ("finish_samples", "finish_iterations"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"PlannerConfig: {name} must be >= 1 or None, got {getattr(self, name)}")
        if self.finish_samples is not None and self.elites > self.finish_samples:
            raise ValueError(f"PlannerConfig: elites ({self.elites}) must not exceed finish_samples "
                             f"({self.finish_samples})")
        if (self.finish_samples is not None or self.finish_iterations is not None) and self.finish_reward is None:
            raise ValueError("PlannerConfig: finish_samples and finish_iterations need finish_reward (where the "
                             "finish phase begins)")
        if not 0 <= self.noise_beta <= 4:
            raise ValueError(f"PlannerConfig: noise_beta must lie in [0, 4], got {self.noise_beta}")
        if not 0 <= self.keep_elites <= self.elites:
            raise ValueError(f"PlannerConfig: keep_elites must lie in [0, elites={self.elites}], got {self.keep_elites}")
        if self.act not in ("mean", "best"):
            raise ValueError(f"PlannerConfig: act must be 'mean' or 'best', got {self.act!r}")
        if self.disengaged not in ("mean", "sample"):
            raise ValueError(f"PlannerConfig: disengaged must be 'mean' or 'sample', got {self.disengaged!r}")


def colored_noise_amplitudes(horizon: int, beta: float) -> torch.Tensor:
    """(horizon // 2 + 1,) amplitudes ``f^(-β/2)`` at the real FFT's frequencies ``k / horizon``, the zero frequency
    taking the lowest nonzero one's (as iCEM does), scaled so that :func:`colored_noise` has unit variance."""
    f = torch.fft.rfftfreq(horizon, dtype=torch.float64).clamp_min(1.0 / horizon)
    amp = f ** (-beta / 2)
    weights = torch.full_like(amp, 4.0)  # a bin k in (0, horizon/2) carries 4·a_k² of the variance, times 1/H²
    weights[0] = 1.0
    if horizon % 2 == 0:
        weights[-1] = 1.0
    return amp / ((weights * amp ** 2).sum().sqrt() / horizon)


def colored_noise(shape: tuple[int, int, int], beta: float, generator: torch.Generator,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """Standard-normal noise of shape (N, H, A), white over the H steps for ``beta == 0`` (exactly
    ``torch.randn``'s draws) and with power ∝ 1/f^β otherwise: each step's marginal is N(0, 1), neighbouring steps
    correlate the more the larger β. Stationary and circular over the horizon (drawn through a real FFT)."""
    n, horizon, dims = shape
    if beta == 0:
        return torch.randn(shape, generator=generator, device=device)
    amp = colored_noise_amplitudes(horizon, beta).to(device=device, dtype=torch.float32)
    bins = amp.numel()
    real = torch.randn((n, dims, bins), generator=generator, device=device)
    imag = torch.randn((n, dims, bins), generator=generator, device=device)
    imag[..., 0] = 0.0  # irfft ignores these bins' imaginary parts anyway: zeroed so the spectrum is what it computes
    if horizon % 2 == 0:
        imag[..., -1] = 0.0
    return torch.fft.irfft(torch.complex(real, imag) * amp, n=horizon).transpose(1, 2).contiguous()


def sequence_returns(x: torch.Tensor, actions: torch.Tensor, step: Step,
                     reward: Callable[[torch.Tensor], torch.Tensor], value: Callable[[torch.Tensor], torch.Tensor],
                     gamma: float, reward_scale: float, value_weight: float) -> torch.Tensor:
    """(N,) ``Σ_k γ^k·reward_scale·r(x_{k+1}) + value_weight·γ^H·value(x_H)`` of action sequences (N, H, A)
    from one local state ``x`` (D,)."""
    n, horizon = actions.shape[:2]
    state = x.expand(n, -1)
    total = torch.zeros(n, dtype=x.dtype, device=x.device)
    for k in range(horizon):
        state = step(state, actions[:, k])
        total = total + gamma ** k * reward_scale * reward(state)
    if value_weight > 0:
        total = total + value_weight * gamma ** horizon * value(state)
    return total


class PolicyCEM:
    """Plans one action at a time for a DMO-SAPO agent (``actor``, ``critic``, ``obs_norm``, ``cfg``) in a local
    model: ``step(x, a)`` and ``reward(x)`` batched over rows, e.g. a learned env's Jacobian hook
    (``envs.diff.local_step``, ``envs.diff.local_reward``)."""

    def __init__(self, agent: Any, step: Step, reward: Callable[[torch.Tensor], torch.Tensor],
                 cfg: PlannerConfig = PlannerConfig(), companions: Sequence[Any] = (),
                 finish_score: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        """``finish_score``: the per-step reward sequences are scored with where ``cfg.finish_reward`` applies
        (None: ``reward``), e.g. Push-T's reward with its coverage term growing past the success threshold; the
        finish phase still begins where ``reward`` reaches ``cfg.finish_reward``."""
        if finish_score is not None and cfg.finish_reward is None:
            raise ValueError("PolicyCEM: finish_score needs PlannerConfig.finish_reward (where the finish phase begins)")
        self.agent, self.step, self.reward, self.cfg = agent, step, reward, cfg
        self.finish_score = finish_score
        self.agents = (agent, *companions)
        for i, other in enumerate(companions):
            mismatch = [k for k in ("gamma", "reward_scale") if getattr(other.cfg, k) != getattr(agent.cfg, k)]
            if other.obs_norm.mean.shape != agent.obs_norm.mean.shape:
                mismatch.append("observation size")
            if mismatch:
                raise ValueError(f"PolicyCEM: companion agent {i} differs from the agent in {', '.join(mismatch)}; "
                                 f"an ensemble's critics must rate the same objective on the same local state")
        self.generator = torch.Generator(device=agent.device).manual_seed(cfg.seed)
        self._previous: torch.Tensor | None = None
        self.last_info: dict[str, float] = {}

    def reset(self) -> None:
        """Forget the last plan (a new episode)."""
        self._previous = None

    def _value(self, x: torch.Tensor) -> torch.Tensor:
        """Every agent's mean critic value of ``x`` less ``value_disagreement`` times its critics' spread,
        averaged over the agents (the ensemble's)."""
        kappa = self.cfg.value_disagreement
        values = []
        for a in self.agents:
            q = a.critic(a.obs_norm(x))
            values.append(q.mean(0) - kappa * (q.amax(0) - q.amin(0)) if kappa else q.mean(0))
        return torch.stack(values).mean(0)

    def _policy_sequences(self, x: torch.Tensor) -> torch.Tensor:
        """(K·(1 + policy_samples), H, A) over the K agents: each agent's deterministic sequence, then its sampled
        ones; the first row is the (first) agent's deterministic sequence."""
        cfg, per = self.cfg, 1 + self.cfg.policy_samples
        state = x.expand(len(self.agents) * per, -1)
        seqs = []
        for _ in range(cfg.horizon):
            actions = []
            for i, a in enumerate(self.agents):
                obs = a.obs_norm(state[i * per:(i + 1) * per])
                sampled = a.actor.sample(obs[1:], self.generator)[0]
                actions.append(torch.cat([a.actor.deterministic(obs[:1]), sampled]))
            action = torch.cat(actions).clamp(-1.0, 1.0)
            seqs.append(action)
            state = self.step(state, action)
        return torch.stack(seqs, 1)

    @torch.no_grad()
    def plan(self, x: torch.Tensor) -> torch.Tensor:
        """The action (A,) to take in local state ``x`` (D,)."""
        cfg, agent = self.cfg, self.agent
        x = x.to(agent.device).float()
        root_reward = float(self.reward(x[None])[0])
        if cfg.engage_reward is not None and root_reward < cfg.engage_reward:
            self._previous = None
            self.last_info = {"planned": 0.0}
            return agent.act(x[None], deterministic=cfg.disengaged == "mean").squeeze(0).clamp(-1.0, 1.0)
        finishing = cfg.finish_reward is not None and root_reward >= cfg.finish_reward
        value_weight = 0.0 if finishing else cfg.value_weight
        samples = cfg.finish_samples if finishing and cfg.finish_samples is not None else cfg.samples
        iterations = cfg.finish_iterations if finishing and cfg.finish_iterations is not None else cfg.iterations
        fixed = self._policy_sequences(x)
        if self._previous is not None:
            shifted = torch.cat([self._previous[1:], fixed[0, -1:]])  # the last plan, one step on
            fixed = torch.cat([fixed, shifted[None]])
        mean = fixed[0].clone()
        std = torch.full_like(mean, cfg.init_std)
        step_reward = self.finish_score if finishing and self.finish_score is not None else self.reward
        score = lambda a: sequence_returns(x, a, self.step, step_reward, self._value,  # noqa: E731
                                           agent.cfg.gamma, agent.cfg.reward_scale, value_weight)
        policy_return = float(score(fixed[:1])[0])
        kept = fixed[:0]
        best, best_return = fixed[0], policy_return
        for _ in range(iterations):
            eps = colored_noise((samples, *mean.shape), cfg.noise_beta, self.generator, mean.device)
            candidates = torch.cat([fixed, kept, (mean + std * eps).clamp(-1.0, 1.0)])
            returns = score(candidates)
            top = returns.topk(cfg.elites).indices
            elite = candidates[top]
            kept = elite[:cfg.keep_elites]
            if float(returns[top[0]]) > best_return:
                best, best_return = elite[0], float(returns[top[0]])
            mean = elite.mean(0)
            std = elite.std(0, unbiased=False).clamp_min(cfg.min_std) if cfg.elites > 1 else std.clamp_min(cfg.min_std)
        plan = best if cfg.act == "best" else mean
        self._previous = plan
        self.last_info = {"planned": 1.0, "finishing": float(finishing), "policy_return": policy_return,
                          "best_return": best_return, "last_best_return": float(returns.max()),
                          "elite_return": float(returns[top].mean())}
        return plan[0]
