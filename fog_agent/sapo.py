"""The DMO-SAPO learner: first-order actor updates through a fog differentiable env, SAPO critics and α.

One :meth:`DMOSAPO.iteration`:

1. optional local-model refresh (``local_refresh`` callback, e.g. the RSSM on imagined + real data);
2. an H-step rollout of N envs from the current states (graph cut at the start), actions sampled with the
   reparameterisation trick; the actor loss is ``-J/(N·H)`` with
   ``J = Σ_segments [Σ γ^k (r + α·Ĥ) + γ^K · mean_k V_k(x_end)]`` (segments end at episode ends and at H;
   V = 0 after a true termination; without ``bootstrap`` the V term is left out); values of the states come
   from the global model and gradients from the local one (the env's straight-through step); with
   ``state_grad_clip`` each env's gradient w.r.t. its state is clipped to that norm at every step before it
   flows further back;
   with ``zeroth_order_weight`` w > 0 the actor loss is ``(1 − w)·`` that ``+ w·`` a likelihood-ratio loss on
   the same rollout (:meth:`DMOSAPO.score_function_loss`);
3. one AdamW step on the actor (grad clip), then α towards the target entropy;
4. TD(λ) targets (entropy bonus included, min over the two critics) and ``critic_iterations`` epochs of
   ``critic_minibatches`` contiguous minibatches of MSE.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Callable

import torch
from torch import nn

from fog_agent.config import SAPOConfig
from fog_agent.networks import DoubleCritic, SquashedGaussianActor
from fog_agent.normalizer import RunningNorm
from fog_agent.returns import clip_row_norms, normalized_entropy, reward_to_go, td_lambda_targets


class DMOSAPO(nn.Module):
    """Actor, critics, temperature and their optimisers, stepping a ``DifferentiableEnv``-like object."""

    def __init__(self, obs_dim: int, action_dim: int, cfg: SAPOConfig, seed: int = 0,
                 device: torch.device | str = "cpu") -> None:
        super().__init__()
        self.cfg = cfg
        self.device = torch.device(device)
        torch.manual_seed(seed)
        self.actor = SquashedGaussianActor(obs_dim, action_dim, cfg.actor_hidden)
        self.critic = DoubleCritic(obs_dim, cfg.critic_hidden)
        self.obs_norm = RunningNorm(obs_dim)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(cfg.alpha_init)))
        self.target_entropy = -cfg.target_entropy_scale * action_dim
        self.to(self.device)
        self.actor_opt = torch.optim.AdamW(self.actor.parameters(), cfg.actor_lr, betas=cfg.betas,
                                           weight_decay=cfg.weight_decay)
        self.critic_opt = torch.optim.AdamW(self.critic.parameters(), cfg.critic_lr, betas=cfg.betas,
                                            weight_decay=cfg.weight_decay)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], cfg.alpha_lr, betas=cfg.betas)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.iteration_count = 0
        self.imagined_steps = 0

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp()

    def _set_learning_rates(self) -> None:
        frac = min(1.0, self.iteration_count / max(1, self.cfg.iterations))
        for opt, lr0 in ((self.actor_opt, self.cfg.actor_lr), (self.critic_opt, self.cfg.critic_lr)):
            for g in opt.param_groups:
                g["lr"] = lr0 + (self.cfg.final_lr - lr0) * frac

    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """An action for raw observations (normalised internally); deterministic = ``tanh(μ)``."""
        with torch.no_grad():
            x = self.obs_norm(obs.to(self.device).float())
            return self.actor.deterministic(x) if deterministic else self.actor.sample(x, self.generator)[0]

    def rollout(self, env: Any, norm: RunningNorm, alpha: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """H steps from the env's current (graph-cut) states; returns the actor loss and detached buffers."""
        cfg = self.cfg
        obs = env.cut_graph().to(self.device).float()
        n, horizon = obs.shape[0], cfg.horizon
        seg_return = torch.zeros(n, device=self.device)
        discount = torch.ones(n, device=self.device)
        objective = torch.zeros((), device=self.device)
        buf: dict[str, list[torch.Tensor]] = {k: [] for k in ("obs", "rew", "done", "next_v", "neg_logp", "reward",
                                                               "success", "log_lik")}
        for t in range(horizon):
            action, neg_logp, u = self.actor.rsample(norm(obs), self.generator)
            if cfg.zeroth_order_weight > 0:  # the score term: θ only through log π, state and draw held fixed
                buf["log_lik"].append(self.actor.gaussian_log_prob(norm(obs.detach()), u.detach()))
            next_obs, reward, terminated, truncated, extras = env.step(action)
            reward = reward.to(self.device).float()
            terminated = terminated.to(self.device)
            done = terminated | truncated.to(self.device)
            step_rew = cfg.reward_scale * reward + alpha * normalized_entropy(neg_logp, self.target_entropy)
            seg_return = seg_return + discount * step_rew
            discount = discount * cfg.gamma
            reached = extras["obs_before_reset"]
            if cfg.state_grad_clip > 0 and reached.requires_grad:
                reached.register_hook(lambda g: clip_row_norms(g, cfg.state_grad_clip))
            end_obs = norm(reached.to(self.device).float())
            alive = (~terminated).float()
            cut = done if t < horizon - 1 else torch.ones_like(done)
            end_value = self.critic(end_obs).mean(0) * alive if cfg.bootstrap else torch.zeros_like(seg_return)
            objective = objective + (cut.float() * (seg_return + discount * end_value)).sum()
            seg_return = torch.where(cut, torch.zeros_like(seg_return), seg_return)
            discount = torch.where(cut, torch.ones_like(discount), discount)
            with torch.no_grad():
                buf["next_v"].append(self.critic(end_obs).min(0).values * alive)
            buf["obs"].append(obs.detach())
            buf["rew"].append(step_rew.detach())
            buf["done"].append(done)
            buf["neg_logp"].append(neg_logp.detach())
            buf["reward"].append(reward.detach())
            buf["success"].append(extras["is_success"].to(self.device).float())
            obs = next_obs.to(self.device).float()
        loss = -objective / (n * horizon)
        if cfg.zeroth_order_weight > 0:
            lr_loss = self.score_function_loss(norm, torch.stack(buf.pop("log_lik")), buf)
            loss = (1.0 - cfg.zeroth_order_weight) * loss + cfg.zeroth_order_weight * lr_loss
        return loss, {k: torch.stack(v) for k, v in buf.items() if v}

    def score_function_loss(self, norm: RunningNorm, log_lik: torch.Tensor,
                            buf: dict[str, list[torch.Tensor]]) -> torch.Tensor:
        """``−mean_{t,i} log N(u_t,i; μ, σ) · Â_t,i`` over the rollout (H, N), Â detached: with ``bootstrap``
        the TD(λ) targets minus the critics' (min) value of s_t, else the in-window reward-to-go minus its
        mean over the envs at step t."""
        cfg = self.cfg
        rew, done = torch.stack(buf["rew"]), torch.stack(buf["done"])
        with torch.no_grad():
            if cfg.bootstrap:
                obs = torch.stack(buf["obs"])
                values = self.critic(norm(obs.reshape(-1, obs.shape[-1]))).min(0).values.reshape(rew.shape)
                adv = td_lambda_targets(rew, torch.stack(buf["next_v"]), done, cfg.gamma, cfg.lam) - values
            else:
                ret = reward_to_go(rew, done, cfg.gamma)
                adv = ret - ret.mean(dim=1, keepdim=True)
        return -(log_lik * adv).mean()

    def iteration(self, env: Any, local_refresh: Callable[[], dict[str, float]] | None = None) -> dict[str, float]:
        """One DMO-SAPO iteration on ``env`` (see the module docstring); returns scalar metrics."""
        cfg = self.cfg
        metrics: dict[str, float] = {}
        if local_refresh is not None:
            metrics.update(local_refresh())
        self._set_learning_rates()
        norm = copy.deepcopy(self.obs_norm)  # frozen statistics for the whole rollout
        actor_loss, buf = self.rollout(env, norm, self.alpha.detach())
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        actor_grad = nn.utils.clip_grad_norm_(self.actor.parameters(), cfg.actor_grad_clip)
        self.actor_opt.step()
        self.critic_opt.zero_grad(set_to_none=True)  # the actor loss also reached the critics' weights

        entropy = buf["neg_logp"].mean()
        alpha_loss = self.log_alpha.exp() * abs(self.target_entropy) * (entropy - self.target_entropy)
        self.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_opt.step()

        critic_loss = self._update_critic(norm, buf["obs"], buf["rew"], buf["done"], buf["next_v"])
        self.obs_norm.update(buf["obs"])
        n = buf["obs"].shape[1]
        self.iteration_count += 1
        self.imagined_steps += n * cfg.horizon
        metrics.update({
            "train/actor_loss": actor_loss.item(), "train/critic_loss": critic_loss,
            "train/actor_grad_norm": float(actor_grad), "train/alpha": self.alpha.item(),
            "train/entropy": entropy.item(), "train/reward": buf["reward"].mean().item(),
            "train/success_rate": buf["success"].mean().item(),
            "train/imagined_steps": float(self.imagined_steps),
        })
        return metrics

    def _update_critic(self, norm: RunningNorm, obs: torch.Tensor, rew: torch.Tensor, done: torch.Tensor,
                       next_v: torch.Tensor) -> float:
        cfg = self.cfg
        targets = td_lambda_targets(rew, next_v, done, cfg.gamma, cfg.lam).reshape(-1)
        x = norm(obs.reshape(-1, obs.shape[-1]))
        size = x.shape[0] // cfg.critic_minibatches
        total = 0.0
        for _ in range(cfg.critic_iterations):
            for b in range(cfg.critic_minibatches):
                sl = slice(b * size, (b + 1) * size)
                loss = (self.critic(x[sl]) - targets[sl]).pow(2).mean()
                self.critic_opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.critic_grad_clip)
                self.critic_opt.step()
                total += loss.item()
        return total / (cfg.critic_iterations * cfg.critic_minibatches)

    def checkpoint(self) -> dict[str, Any]:
        """Everything needed to resume exactly (weights, optimisers, RNG, counters)."""
        return {"model": self.state_dict(), "actor_opt": self.actor_opt.state_dict(),
                "critic_opt": self.critic_opt.state_dict(), "alpha_opt": self.alpha_opt.state_dict(),
                "generator": self.generator.get_state(), "iteration": self.iteration_count,
                "imagined_steps": self.imagined_steps}

    def restore(self, ckpt: dict[str, Any]) -> None:
        self.load_state_dict(ckpt["model"])
        self.actor_opt.load_state_dict(ckpt["actor_opt"])
        self.critic_opt.load_state_dict(ckpt["critic_opt"])
        self.alpha_opt.load_state_dict(ckpt["alpha_opt"])
        self.generator.set_state(ckpt["generator"])
        self.iteration_count = int(ckpt["iteration"])
        self.imagined_steps = int(ckpt["imagined_steps"])
