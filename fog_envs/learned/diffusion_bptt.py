"""The "back-propagate through the diffusion sampler" ablation of the differentiable step.

Same interface as :class:`fog_envs.learned.diff.DifferentiableEnv`, but values *and* gradients come from the
global model: the Euler sampler, the reward model and the RSSM posterior are differentiated, and the
gradient flows back through the generated context frames. It exists to measure what FoG's RSSM
surrogate saves (``benchmarks/bench_learned_envs.py``) and as an agent ablation (``gradient_model="diffusion"``).
"""

from __future__ import annotations

import torch

from fog_envs.learned.backend import GlobalStep
from fog_envs.learned.diff import DifferentiableEnv
from fog_envs.learned.wm_backend import WorldModelBackend
from fog_envs.wm.edm import euler_sample


class DiffusionBPTTEnv(DifferentiableEnv):
    """Differentiable env whose gradients go through the diffusion model itself."""

    def __init__(self, backend: WorldModelBackend, max_episode_steps: int | None,
                 terminate_on_success: bool = False) -> None:
        if not isinstance(backend, WorldModelBackend) or backend.forward_model != "diffusion":
            raise ValueError("gradient_model='diffusion' needs a world-model env with forward_model='diffusion'")
        if backend.state_local is not None:
            raise ValueError("gradient_model='diffusion' back-propagates through the RSSM filter of the sampled "
                             "frames; it does not combine with local_model='state'")
        super().__init__(backend, max_episode_steps, terminate_on_success)
        self._ctx: torch.Tensor | None = None

    def reset(self, seed: int | None = None) -> torch.Tensor:
        x = super().reset(seed)
        self._ctx = self.backend.ctx.clone()
        return x

    def cut_graph(self) -> torch.Tensor:
        self._ctx = self._ctx.detach()
        return super().cut_graph()

    def resync(self) -> None:
        super().resync()
        self._ctx = self.backend.ctx.clone()

    def global_step(self, action: torch.Tensor) -> GlobalStep:
        out = super().global_step(action)
        self._ctx = self.backend.ctx.clone()
        return out

    def _transition(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, GlobalStep]:
        b, model = self.backend, self.backend.model
        gens = self.clock.generators
        noise = torch.stack([torch.randn(b.ctx.shape[2:], generator=g) for g in gens]).to(b.device)
        ctx_noise = torch.stack([torch.randn(b.ctx.shape[1:], generator=g) for g in gens]).to(b.device)
        ctx_act = torch.cat([b.ctx_act[:, :-1], action[:, None].to(b.ctx_act.dtype)], 1)
        z = euler_sample(model.denoiser, self._ctx, ctx_act, model.config.edm, None, b.denoising_steps,
                         noise=noise, context_noise=ctx_noise)
        out = model.reward(z)
        x_next = model.filter_step(self._x, action, z)
        self._ctx = torch.cat([self._ctx[:, 1:], z[:, None]], 1)
        with torch.no_grad():  # keep the backend (rendering, resets, snapshots) in step
            b.ctx = self._ctx.detach().clone()
            b.ctx_act = torch.cat([ctx_act[:, 1:], torch.zeros_like(ctx_act[:, :1])], 1).detach()
            b.x = x_next.detach().clone()
        aux = {name: out["aux"][:, k].detach() for k, name in enumerate(model.task.aux_names)}
        success = torch.sigmoid(out["success_logit"].detach()) > 0.5
        return x_next, out["reward"], GlobalStep(x_next.detach(), out["reward"].detach(), success, aux)

    def _on_reset(self, done: torch.Tensor) -> None:
        self._ctx = torch.where(done.to(self._ctx.device)[:, None, None, None, None], self.backend.ctx, self._ctx)
