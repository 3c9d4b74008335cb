"""Named world-model training presets: ``debug`` (tests), ``cpu`` (this 2-core machine), ``gpu``."""

from __future__ import annotations

from dataclasses import dataclass, replace

from fog_envs.wm.autoencoder import AutoencoderConfig
from fog_envs.wm.bundle import RewardConfig, WorldModelConfig
from fog_envs.wm.denoiser import DenoiserConfig
from fog_envs.wm.edm import EDMConfig
from fog_envs.wm.probe import ProbeConfig
from fog_envs.wm.rssm import RSSMConfig
from fog_envs.wm.tasks import get_task
from fog_envs.wm.trainer import StageConfig

STAGES = ("autoencoder", "denoiser", "reward", "rssm", "probe")


@dataclass(frozen=True)
class Preset:
    """Model sizes and per-stage optimisation settings."""

    model: WorldModelConfig
    stages: dict[str, StageConfig]
    rssm_seq_len: int
    num_start_windows: int
    checkpoint_every: int


def make_preset(name: str, task: str) -> Preset:
    """The preset ``name`` (``debug``, ``cpu`` or ``gpu``) for ``task`` (``pusht`` or ``cube``)."""
    spec = get_task(task)
    a = spec.action_dim
    probe_dim = spec.probe_dim
    if name == "debug":
        ae = AutoencoderConfig(latent_channels=4, channels=(8, 16, 16))
        model = WorldModelConfig(
            task=task, autoencoder=ae,
            denoiser=DenoiserConfig(latent_channels=4, latent_size=8, context_len=2, action_dim=a,
                                    channels=16, num_blocks=1, cond_dim=32),
            edm=EDMConfig(num_steps=1),
            rssm=RSSMConfig(latent_shape=ae.latent_shape, action_dim=a, deter=16, stoch=4, hidden=16, embed=16),
            reward=RewardConfig(channels=8, hidden=16),
            probe=ProbeConfig(channels=(8, 8, 8, 8), hidden=16, out_dim=probe_dim),
        )
        stage = StageConfig(steps=6, batch=4, lr=1e-3, warmup=2)
        return Preset(model, {s: stage for s in STAGES}, rssm_seq_len=6, num_start_windows=8, checkpoint_every=3)
    if name in ("cpu", "gpu"):
        ae = AutoencoderConfig()
        model = WorldModelConfig(
            task=task, autoencoder=ae,
            denoiser=DenoiserConfig(latent_channels=ae.latent_channels, latent_size=ae.latent_size,
                                    context_len=4, action_dim=a),
            edm=EDMConfig(),
            rssm=RSSMConfig(latent_shape=ae.latent_shape, action_dim=a),
            reward=RewardConfig(),
            probe=ProbeConfig(out_dim=probe_dim),
        )
        scale = 1 if name == "cpu" else 10
        stages = {
            "autoencoder": StageConfig(steps=3000 * scale, batch=64, lr=1e-3, warmup=100),
            "denoiser": StageConfig(steps=20000 * scale, batch=64, lr=3e-4, warmup=200),
            "reward": StageConfig(steps=2000 * scale, batch=128, lr=1e-3, warmup=100),
            "rssm": StageConfig(steps=3000 * scale, batch=32, lr=3e-4, warmup=100, grad_clip=100.0),
            "probe": StageConfig(steps=2000 * scale, batch=64, lr=1e-3, warmup=100),
        }
        return Preset(model, stages, rssm_seq_len=32, num_start_windows=512, checkpoint_every=250)
    raise ValueError(f"unknown preset {name!r}; choose one of 'debug', 'cpu', 'gpu'")


def scale_steps(preset: Preset, factor: float) -> Preset:
    """The same preset with every stage's step count multiplied by ``factor`` (at least 1 step)."""
    stages = {k: replace(v, steps=max(1, int(v.steps * factor)), warmup=min(v.warmup, max(1, int(v.steps * factor))))
              for k, v in preset.stages.items()}
    return replace(preset, stages=stages)
