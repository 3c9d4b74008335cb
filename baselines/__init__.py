"""baselines: stable-baselines3 PPO on fog's learned environments (see the project README).

* :class:`baselines.vec_env.LearnedVecEnv` / :func:`baselines.vec_env.make_learned_vec_env`: SB3 ``VecEnv``
  over a batched learned env (one model call per step for all envs).
* :class:`baselines.ppo.PPOConfig` / :func:`baselines.ppo.train_ppo`: the resumable training run
  (CLI: ``fog-ppo``, :mod:`baselines.cli`).
* :class:`baselines.controller.PPOController`: a trained policy on the reference system
  (``fog_envs.evaluation.evaluate``).
"""
