"""baselines: stable-baselines3 PPO on fog's learned environments (see the project README)."""
