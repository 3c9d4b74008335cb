"""Learned environments: world models as Gymnasium envs, batched envs and a differentiable step."""
