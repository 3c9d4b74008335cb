"""The differentiable interface of a learned env in a dozen lines (runs on the analytic toy model).

    python examples/differentiable_step.py
"""

import gymnasium as gym
import torch

import fog_envs  # noqa: F401

envs = gym.make_vec("WMToy-v0", num_envs=4, vectorization_mode="vector_entry_point")
diff = envs.unwrapped.diff                     # torch view: values from the global model, gradients from the local
obs = diff.reset(seed=0)                       # (4, state_dim) local states
actions = torch.zeros(4, 2, requires_grad=True)
obs = diff.cut_graph()                         # start of a short-horizon window
total = 0.0
for t in range(8):
    obs, reward, terminated, truncated, extras = diff.step(actions)
    total = total + reward.sum()               # extras["obs_before_reset"] keeps the pre-reset state
total.backward()
print("d(return)/d(actions):", actions.grad)

out = diff.diffusion_step(torch.zeros(4, 2))   # the global model's step alone (no gradient)
x, a = diff.obs.detach(), torch.zeros(4, 2)
print("local step:", diff.local_step(x, a).shape)       # the RSSM Jacobian hook: one-step function,
print("VJP:", [g.shape for g in diff.vjp(x, a, torch.ones_like(x))])          # its VJP,
print("JVP:", diff.jvp(x, a, torch.zeros_like(x), torch.ones_like(a))[1].shape)  # its JVP,
print("Jacobians:", {k: v.shape for k, v in diff.jacobians(x, a).items()})    # dense (forward mode for a)
