"""Train one task's world model (autoencoder -> latents -> denoiser, reward model, RSSM, probe) and bundle it.

Every stage checkpoints and resumes (see :mod:`fog_envs.wm.trainer`); ``progress.json`` in the run
directory records finished stages, so rerunning the same command after a kill continues where it stopped.
Runs under ``torchrun --nproc_per_node=N`` with DistributedDataParallel.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from fog_envs.runtime import resolve_device, use_bf16
from fog_envs.wm import stages as st
from fog_envs.wm.distributed import DistContext, init_distributed, shutdown_distributed
from fog_envs.wm.autoencoder import FrameAutoencoder
from fog_envs.wm.bundle import weights_fingerprint
from fog_envs.wm.presets import STAGES, Preset, make_preset, scale_steps
from fog_envs.wm.tasks import get_task
from fog_envs.wm.trainer import stage_progress, train_stage


@dataclass(frozen=True)
class WMTrainConfig:
    """Train a world model for one task from a play dataset."""

    task: str = "pusht"
    """'pusht' or 'cube'"""
    data: str = "datasets/pusht_play.h5"
    """play dataset (HDF5, see datasets/README.md)"""
    out: str = "runs/wm_pusht"
    """run directory: checkpoints, TensorBoard logs, and the bundle in out/bundle"""
    preset: str = "cpu"
    """'debug' (tests), 'cpu' (this 2-core machine) or 'gpu'"""
    steps_scale: float = 1.0
    """multiply every stage's step count (e.g. 0.1 for a quick look)"""
    seed: int = 0
    device: str = "auto"
    bf16: str = "auto"
    """'auto' (on CPUs with bf16 instructions and CUDA devices that support it), 'true' or 'false'"""
    threads: int = 0
    """torch CPU threads (0: all cores)"""
    stop_after: int | None = None
    """stop (as if killed) after this many optimisation steps in this call; for tests"""
    progress: bool = True
    """show progress bars"""
    init_from: str | None = None
    """a bundle (shipped name or path) to start from: the model configuration is taken from it (the preset
    then only sets the stages' optimisation), and the stages in ``reuse`` take its trained weights"""
    reuse: tuple[str, ...] = ("autoencoder",)
    """stages whose weights come from ``init_from`` instead of being trained (ignored without it)"""
    motion_weight: float | None = None
    """override the denoiser's ``EDMConfig.motion_weight`` (training-loss weight on moving latents)"""
    contact_sampling: float | None = None
    """override ``EDMConfig.contact_sampling``: denoiser windows are drawn ``∝ 1 + C·m/mean(m)``, m the passive
    object's motion into the target frame (more of the transitions where the agent pushes it)"""
    rssm_motion_weight: float | None = None
    """override ``RSSMConfig.motion_weight`` (the RSSM's reconstruction weight on moving latents)"""
    reuse_from: tuple[str, ...] = ()
    """``STAGE=BUNDLE`` entries: that stage's weights and model config come from another bundle (e.g. a new
    RSSM next to a shipped denoiser); the bundle must share ``init_from``'s autoencoder"""
    warm_start: tuple[str, ...] = ()
    """stages that start from ``init_from``'s weights and are then trained for their steps (fine-tuning)"""
    rollout_prob: float | None = None
    """override ``EDMConfig.rollout_prob``: the fraction of denoiser training samples whose context ends in
    the model's own samples (self-forcing against open-loop drift)"""
    rollout_steps: int | None = None
    """override ``EDMConfig.rollout_steps``: the most self-generated context latents"""
    ae_channels: tuple[int, ...] | None = None
    """override ``AutoencoderConfig.channels`` (one stride-2 stage each: two stages give 16×16 latents)"""
    ae_latent_channels: int | None = None
    """override ``AutoencoderConfig.latent_channels``"""
    ae_motion_weight: float | None = None
    """override ``AutoencoderConfig.motion_weight`` (the reconstruction weight on pixels that change between
    consecutive frames, for the small Push-T agent); needs the autoencoder trained anew"""
    denoiser_patch: int | None = None
    """override ``DenoiserConfig.patch_size`` (2 folds a 16×16 latent to the 8×8 map the default denoiser
    costs; the latent shape itself always follows the autoencoder)"""
    denoiser_channels: int | None = None
    """override ``DenoiserConfig.channels`` (the width of the denoiser; cost grows about quadratically)"""
    denoiser_blocks: int | None = None
    """override ``DenoiserConfig.num_blocks`` (residual blocks per resolution)"""
    context_noise_prob: float | None = None
    """override ``EDMConfig.context_noise_prob`` (the fraction of training contexts noised)"""
    context_sigma_max: float | None = None
    """override ``EDMConfig.context_sigma_max`` (the cap on the training context's noise level)"""
    predict_delta: float | None = None
    """train the denoiser on the change from the last context latent, in units of this scale
    (``EDMConfig.predict_delta/delta_scale``; Push-T: 0.4 ≈ std(Δz)/σ_data); 0 turns it off"""
    start_sigma: float | None = None
    """override ``EDMConfig.start_sigma``: the bundle's sampler starts from the last latent noised to this σ
    (0: from pure noise, DIAMOND)"""
    start_prob: float | None = None
    """override ``EDMConfig.start_prob``: the fraction of denoiser training samples that start where that
    sampler starts (needs ``start_sigma > 0``)"""
    rssm_state_weight: float | None = None
    """give the RSSM a state head trained on the true state (the task's probe targets) with this weight
    (``RSSMConfig.state_dim/state_weight``); 0 removes it"""
    state_guidance: bool | None = None
    """condition the denoiser on the physical states (the task's probe targets) of the last context frame and
    of the frame it generates (``DenoiserConfig.state_dim/state_points``; in imagination a state model supplies
    them). A warm-started unguided denoiser keeps its weights and starts with zero weights on the new inputs"""
    withhold_context: bool | None = None
    """the state-guided denoiser sees zeros in place of its context latents and draws the frame from the states
    alone (``DenoiserConfig.withhold_context``; needs state guidance, from this run or the warm-start source)"""
    silhouette: str | None = None
    """the state-guided denoiser also sees the task's objects drawn from both states (``DenoiserConfig.silhouette``,
    :mod:`fog_envs.wm.silhouette`; "pusht"); "" removes them"""
    probe_decoded_fraction: float | None = None
    """override ``ProbeConfig.decoded_fraction``: the fraction of the probe's training frames seen through
    the autoencoder (a reader for the state-space local model; 0: real frames only, the fidelity ruler)"""
    probe_goal_frames: int = 0
    """Push-T: render this many extra probe training frames on the reference system with the block near its goal
    (:mod:`fog_envs.real.pusht_goal_frames`, seeded by ``seed``) and draw half of every probe batch from them,
    where success needs the probe to read the block to ~2 px and the play data rarely goes; 0: play frames only"""


def load_play_arrays(path: str | os.PathLike, task: str) -> st.PlayArrays:
    """Read a play dataset fully into memory and compute the task's auxiliary and probe targets."""
    from fog_envs.data.format import open_dataset

    spec = get_task(task)
    with open_dataset(path) as f:
        env_id = f.attrs["env_id"]
        if env_id != spec.real_env_id:
            raise ValueError(f"dataset {path} was collected on {env_id}, but task {task!r} needs {spec.real_env_id}")
        arrays = {k: f[k][()] for k in ("frames", "actions", "rewards", "is_success", "state", "episode_ends")}
    state = arrays["state"]
    return st.PlayArrays(
        frames=arrays["frames"], actions=arrays["actions"].astype(np.float32),
        rewards=arrays["rewards"].astype(np.float32), is_success=arrays["is_success"].astype(bool),
        state=state, episode_ends=arrays["episode_ends"].astype(np.int64),
        aux=spec.aux_targets(state), probe=spec.probe_targets(state),
    )


def _read_progress(out: Path) -> dict[str, Any]:
    path = out / "progress.json"
    return json.loads(path.read_text()) if path.exists() else {"done": {}, "wall_s": 0.0}


def _write_progress(out: Path, progress: dict[str, Any]) -> None:
    tmp = out / "progress.json.tmp"
    tmp.write_text(json.dumps(progress, indent=2))
    os.replace(tmp, out / "progress.json")


def start_windows(data: st.PlayArrays, context_len: int, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` real windows of ``context_len`` latents and actions (the last action zeroed: the policy's)."""
    starts = st.valid_window_starts(data.episode_ends, context_len + 1)
    rng = np.random.default_rng([seed, 7])
    chosen = np.sort(rng.choice(starts, size=min(count, len(starts)), replace=False))
    rows = chosen[:, None] + np.arange(context_len)[None]
    actions = torch.from_numpy(data.actions[rows].copy())
    actions[:, -1] = 0.0
    return data.latents[torch.from_numpy(rows)], actions


#: the model-config sections that belong to each stage (taken along with its weights by ``reuse_from``)
STAGE_CONFIG_SECTIONS = {"denoiser": ("denoiser", "edm"), "reward": ("reward",), "rssm": ("rssm",),
                         "probe": ("probe",)}
#: stages that read frames, not latents: they may come from a bundle with another autoencoder
FRAME_STAGES = frozenset({"probe"})


def _other_sources(cfg: WMTrainConfig, source) -> dict[str, tuple[str, object]]:
    """``reuse_from`` parsed and loaded: stage -> (bundle, WorldModel); checked against ``source``."""
    out: dict[str, tuple[str, object]] = {}
    if cfg.reuse_from and source is None:
        raise ValueError("reuse_from needs init_from (the bundle whose autoencoder the stages were trained on)")
    from fog_envs.wm.model import WorldModel

    for entry in cfg.reuse_from:
        stage, sep, bundle = entry.partition("=")
        if not sep or not bundle:
            raise ValueError(f"reuse_from: expected STAGE=BUNDLE, got {entry!r}")
        if stage not in STAGE_CONFIG_SECTIONS:
            raise ValueError(f"reuse_from: stage {stage!r} cannot come from another bundle; choose from "
                             f"{list(STAGE_CONFIG_SECTIONS)}")
        if stage in cfg.warm_start:
            raise ValueError(f"stage {stage!r} is both taken from another bundle and warm-started")
        other = WorldModel.load(bundle, map_location="cpu")
        if other.config.task != cfg.task:
            raise ValueError(f"reuse_from bundle {bundle!r} is a {other.config.task!r} model, not {cfg.task!r}")
        same_ae = stage in FRAME_STAGES or other.config.autoencoder == source.config.autoencoder and all(
            torch.equal(a, b) for a, b in zip(other.autoencoder.state_dict().values(),
                                              source.autoencoder.state_dict().values()))
        if not same_ae:
            raise ValueError(f"reuse_from bundle {bundle!r} was trained on a different autoencoder than "
                             f"{cfg.init_from!r}; its {stage} reads other latents")
        out[stage] = (bundle, other)
    return out


def taken_stages(cfg: WMTrainConfig, source, others: dict[str, tuple[str, object]]) -> tuple[set[str], set[str]]:
    """(stages whose weights are taken as they are: ``reuse`` and ``reuse_from``; stages warm-started)."""
    if source is None:
        return set(), set()
    return set(cfg.reuse) | set(others), set(cfg.warm_start)


def resolve_model(cfg: WMTrainConfig, preset: Preset, source, others: dict[str, tuple[str, object]]) -> Preset:
    """``preset`` with the model configuration this run trains: ``init_from``'s (when given), the stage
    sections of ``reuse_from`` bundles, then the overrides of ``cfg`` (denoiser size, motion weights,
    self-forcing, context noise, the delta parameterisation, the RSSM state head)."""
    if source is not None:
        preset = replace(preset, model=source.config)
    for stage, (_, other) in others.items():
        sections = {k: getattr(other.config, k) for k in STAGE_CONFIG_SECTIONS[stage]}
        preset = replace(preset, model=replace(preset.model, **sections))
    edm_overrides = {k: v for k, v in (("motion_weight", cfg.motion_weight), ("rollout_prob", cfg.rollout_prob),
                                       ("contact_sampling", cfg.contact_sampling),
                                       ("rollout_steps", cfg.rollout_steps),
                                       ("context_noise_prob", cfg.context_noise_prob),
                                       ("context_sigma_max", cfg.context_sigma_max),
                                       ("start_sigma", cfg.start_sigma), ("start_prob", cfg.start_prob))
                    if v is not None}
    reused, warm = taken_stages(cfg, source, others)
    if cfg.start_prob and "denoiser" in reused:
        raise ValueError("start_prob trains the denoiser; this run reuses it (warm-start it or train it anew)")
    if cfg.predict_delta is not None:
        if cfg.predict_delta < 0:
            raise ValueError(f"predict_delta must be >= 0 (the change's scale; 0: off), got {cfg.predict_delta}")
        if "denoiser" in reused:
            raise ValueError("predict_delta changes what the denoiser outputs; a reused denoiser keeps its own "
                             "parameterisation (warm-start it or train it anew)")
        edm_overrides["predict_delta"] = cfg.predict_delta > 0
        if cfg.predict_delta > 0:
            edm_overrides["delta_scale"] = cfg.predict_delta
    ae_overrides = {k: tuple(v) if k == "channels" else v for k, v in (("channels", cfg.ae_channels),
                                                                      ("latent_channels", cfg.ae_latent_channels),
                                                                      ("motion_weight", cfg.ae_motion_weight))
                    if v is not None}
    readers = (reused | warm) - {"probe"}  # the probe reads frames, every other stage reads latents
    if ae_overrides and readers:
        raise ValueError(f"autoencoder overrides {ae_overrides} change the latent space the other stages read; "
                         f"this run takes {sorted(readers)} from another bundle (train them anew)")
    if "autoencoder" not in reused and readers & reused:
        raise ValueError(f"the autoencoder is trained anew in this run, so its latents are not the ones "
                         f"{sorted(readers & reused)} were trained on; train or warm-start them (or reuse the "
                         "autoencoder)")
    denoiser_overrides = {k: v for k, v in (("channels", cfg.denoiser_channels), ("num_blocks", cfg.denoiser_blocks),
                                            ("patch_size", cfg.denoiser_patch)) if v is not None}
    if denoiser_overrides and "denoiser" in reused | warm:
        raise ValueError(f"denoiser size overrides {denoiser_overrides} need a denoiser trained anew; this run "
                         "takes its weights from another bundle (reuse, warm_start or reuse_from)")
    if cfg.state_guidance is not None:
        if "denoiser" in reused:
            raise ValueError("state_guidance changes the denoiser's inputs; this run reuses it (warm-start it or "
                             "train it anew)")
        spec = get_task(cfg.task)
        denoiser_overrides.update(state_dim=spec.probe_dim if cfg.state_guidance else 0,
                                  state_points=spec.frame_points if cfg.state_guidance else ())
    if cfg.withhold_context is not None:
        if "denoiser" in reused:
            raise ValueError("withhold_context changes what the denoiser reads; this run reuses it (warm-start it or "
                             "train it anew)")
        denoiser_overrides["withhold_context"] = cfg.withhold_context
    if cfg.silhouette is not None:
        if "denoiser" in reused:
            raise ValueError("silhouette changes the denoiser's inputs; this run reuses it (warm-start it or train it "
                             "anew)")
        denoiser_overrides["silhouette"] = cfg.silhouette
    rssm_overrides: dict[str, object] = {}
    if cfg.rssm_motion_weight is not None:
        rssm_overrides["motion_weight"] = cfg.rssm_motion_weight
    if cfg.rssm_state_weight is not None:
        if cfg.rssm_state_weight < 0:
            raise ValueError(f"rssm_state_weight must be >= 0, got {cfg.rssm_state_weight}")
        on = cfg.rssm_state_weight > 0
        rssm_overrides["state_dim"] = get_task(cfg.task).probe_dim if on else 0
        if on:
            rssm_overrides["state_weight"] = cfg.rssm_state_weight
    model = preset.model
    if cfg.probe_decoded_fraction is not None:
        if "probe" in reused:
            raise ValueError("probe_decoded_fraction trains the probe; this run reuses it (warm-start it or "
                             "train it anew)")
        model = replace(model, probe=replace(model.probe, decoded_fraction=cfg.probe_decoded_fraction))
    if ae_overrides:
        ae = replace(model.autoencoder, **ae_overrides)
        model = replace(model, autoencoder=ae,
                        denoiser=replace(model.denoiser, latent_channels=ae.latent_channels, latent_size=ae.latent_size),
                        rssm=replace(model.rssm, latent_shape=ae.latent_shape))
    if edm_overrides:
        model = replace(model, edm=replace(model.edm, **edm_overrides))
    if denoiser_overrides:
        model = replace(model, denoiser=replace(model.denoiser, **denoiser_overrides))
    if rssm_overrides:
        model = replace(model, rssm=replace(model.rssm, **rssm_overrides))
    if model.denoiser.state_dim and model.edm.rollout_prob > 0:
        raise ValueError("self-forcing (rollout_prob > 0) is not supported with a state-guided denoiser "
                         "(state_guidance): its own samples have no true states")
    return replace(preset, model=model)


def probe_goal_data(task: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(frames, probe targets)`` of ``n`` near-goal frames for the probe (``WMTrainConfig.probe_goal_frames``)."""
    from fog_envs.real.pusht_goal_frames import goal_frames

    frames, states = goal_frames(n, seed=seed + 1_000_003)
    return frames, get_task(task).probe_targets(states)


def _init_source(cfg: WMTrainConfig):
    """The bundle ``cfg.init_from`` (on CPU), checked against the task and ``cfg.reuse``; None without it."""
    for field_name in ("reuse", "warm_start"):
        unknown = sorted(set(getattr(cfg, field_name)) - set(STAGES))
        if unknown:
            raise ValueError(f"{field_name}: unknown stages {unknown}; choose from {list(STAGES)}")
    both = sorted(set(cfg.reuse) & set(cfg.warm_start)) if cfg.init_from is not None else []
    if both:
        raise ValueError(f"stages {both} are both reused and warm-started; a stage is one or the other")
    if "autoencoder" in cfg.warm_start:
        raise ValueError("warm_start: the autoencoder cannot be warm-started (every other stage reads its "
                         "latents); reuse it or train it")
    if cfg.init_from is None:
        if cfg.warm_start:
            raise ValueError("warm_start needs init_from (the bundle whose weights the stages start from)")
        return None
    from fog_envs.wm.model import WorldModel

    source = WorldModel.load(cfg.init_from, map_location="cpu")
    if source.config.task != cfg.task:
        raise ValueError(f"init_from bundle {cfg.init_from!r} is a {source.config.task!r} model, not {cfg.task!r}")
    return source


def train_world_model(cfg: WMTrainConfig, progress_bar: bool = True,
                      log_fn: Callable[[str, dict[str, float], int], None] | None = None) -> Path:
    """Run (or resume) every stage, then write the bundle to ``<out>/bundle``; return its path."""
    if cfg.probe_goal_frames < 0 or (cfg.probe_goal_frames and cfg.task != "pusht"):
        raise ValueError(f"probe_goal_frames must be >= 0 and needs task 'pusht' (near-goal frames are Push-T's), "
                         f"got {cfg.probe_goal_frames} for task {cfg.task!r}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    ctx: DistContext = init_distributed(device)
    bf16 = use_bf16(ctx.device, {"true": True, "false": False}.get(str(cfg.bf16).lower(), "auto"))
    preset: Preset = scale_steps(make_preset(cfg.preset, cfg.task), cfg.steps_scale)
    source = _init_source(cfg)
    others = _other_sources(cfg, source)
    preset = resolve_model(cfg, preset, source, others)
    reused, warm = taken_stages(cfg, source, others)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "checkpoints"
    ckpt.mkdir(exist_ok=True)
    progress = _read_progress(out)
    if ctx.is_main:
        (out / "config.json").write_text(json.dumps({"train": cfg.__dict__, "model": preset.model.to_dict(),
                                                     "stages": {k: v.__dict__ for k, v in preset.stages.items()}},
                                                    indent=2, default=str))
    data = load_play_arrays(cfg.data, cfg.task)
    torch.manual_seed(cfg.seed)
    autoencoder = FrameAutoencoder(preset.model.autoencoder).to(ctx.device)
    writer = None
    if ctx.is_main and log_fn is None:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tb"))
        log_fn = lambda stage, m, step: [writer.add_scalar(k, v, step) for k, v in m.items()]  # noqa: E731
    t_start = time.perf_counter()
    steps_left = cfg.stop_after

    def run(name: str, module: torch.nn.Module, loss_fn, sampler) -> None:
        nonlocal steps_left
        scfg = preset.stages[name]
        with stage_progress(name, f"{cfg.task}/{name}", scfg.steps, progress_bar and ctx.is_main) as on_step:
            metrics = train_stage(name, module, loss_fn, sampler, scfg, ckpt, cfg.seed, ctx, bf16, log_fn, on_step,
                                  preset.checkpoint_every, steps_left)
        if steps_left is not None:
            steps_left -= scfg.steps  # only reached when the stage finished within the budget
        progress["done"][name] = {k: v for k, v in metrics.items() if np.isfinite(v)}

    def take(name: str, module: torch.nn.Module) -> None:
        """Use ``source``'s (or the ``reuse_from`` bundle's) weights for stage ``name`` (recorded as done, and
        as reused in the card, with the source's own provenance of that stage when it had reused it)."""
        where, model_from = others.get(name, (cfg.init_from, source))
        module.load_state_dict(getattr(model_from, name).state_dict())
        progress["done"][name] = {}
        steps = model_from.card.get("steps", {}).get(name)
        entry = {"from": where, "steps": steps, "weights_sha256": weights_fingerprint(module.state_dict())}
        if name in model_from.card.get("reused", {}):
            entry["originally"] = model_from.card["reused"][name]
        if "dataset" in model_from.card:
            entry["dataset"] = model_from.card["dataset"]
        progress.setdefault("reused", {})[name] = entry

    next_rows = data.next_rows  # rows with a successor in their episode: the autoencoder's and reward's samples
    # 1. autoencoder, then the latents every other stage reads
    if "autoencoder" in reused and "autoencoder" not in progress["done"]:
        take("autoencoder", autoencoder)
        if ctx.is_main:
            torch.save(autoencoder.state_dict(), ckpt / "autoencoder_final.pt")
            _write_progress(out, progress)
        ctx.barrier()
    elif "autoencoder" not in progress["done"]:
        prev_rows = next_rows if preset.model.autoencoder.motion_weight > 0 else None
        run("autoencoder", autoencoder, st.autoencoder_loss,
            lambda r, b: st.autoencoder_batch(data, r, b, prev_rows))
        fit = data.frames[np.random.default_rng([cfg.seed, 3]).choice(len(data.frames), size=min(4096, len(data.frames)),
                                                                         replace=False)]
        autoencoder.fit_latent_scaling(torch.from_numpy(fit).to(ctx.device))
        if ctx.is_main:
            torch.save(autoencoder.state_dict(), ckpt / "autoencoder_final.pt")
            _write_progress(out, progress)
        ctx.barrier()
    else:
        autoencoder.load_state_dict(torch.load(ckpt / "autoencoder_final.pt", map_location=ctx.device))
    data.latents = st.encode_all(autoencoder, data.frames, ctx.device, bf16)

    from fog_envs.wm.model import WorldModel  # the other stages need the full model

    torch.manual_seed(cfg.seed + 1)
    model = WorldModel(preset.model).to(ctx.device)
    model.autoencoder.load_state_dict(autoencoder.state_dict())

    L = preset.model.denoiser.context_len
    den_window = st.denoiser_window(preset.model.edm, L)
    den_starts = st.valid_window_starts(data.episode_ends, den_window)
    passive = get_task(cfg.task).passive_dims
    den_p = st.window_probabilities(st.passive_motion(data.probe, den_starts + den_window - 1, passive),
                                    preset.model.edm.contact_sampling) if passive else None
    rssm_starts = st.valid_window_starts(data.episode_ends, preset.rssm_seq_len)
    goal = None
    if cfg.probe_goal_frames and "probe" not in progress["done"] and "probe" not in reused:
        goal = probe_goal_data(cfg.task, cfg.probe_goal_frames, cfg.seed)
    jobs = {
        "denoiser": (model.denoiser, st.make_denoiser_loss(preset.model.edm, L),
                     lambda r, b: st.denoiser_batch(data, L, r, b, den_starts, preset.model.edm, den_p,
                                                    states=preset.model.denoiser.state_dim > 0)),
        "reward": (model.reward, st.reward_loss, lambda r, b: st.reward_batch(data, r, b, next_rows)),
        "rssm": (model.rssm, st.rssm_loss, lambda r, b: st.rssm_batch(data, preset.rssm_seq_len, r, b, rssm_starts)),
        "probe": (model.probe, st.probe_loss,
                  lambda r, b: st.probe_batch(data, r, b, model.autoencoder.decode,
                                              preset.model.probe.decoded_fraction, goal)),
    }
    for name, (module, loss_fn, sampler) in jobs.items():
        if name in progress["done"]:
            module.load_state_dict(torch.load(ckpt / f"{name}_final.pt", map_location=ctx.device))
            continue
        if name in reused:
            take(name, module)
        else:
            if name in warm and not (ckpt / f"{name}.pt").exists():
                weights = getattr(source, name).state_dict()
                grow = name == "denoiser" and module.config.state_dim and not source.config.denoiser.state_dim
                module.load_unguided(weights) if grow else module.load_state_dict(weights)
                steps = source.card.get("steps", {}).get(name)
                progress.setdefault("warm_start", {})[name] = {"from": cfg.init_from, "steps": steps}
                if ctx.is_main:  # recorded now: a resumed run starts from the checkpoint, not from here
                    _write_progress(out, progress)
            run(name, module, loss_fn, sampler)
        if ctx.is_main:
            torch.save(module.state_dict(), ckpt / f"{name}_final.pt")
            progress["wall_s"] = progress.get("wall_s", 0.0) + time.perf_counter() - t_start
            t_start = time.perf_counter()
            _write_progress(out, progress)
        ctx.barrier()

    model.set_start_windows(*start_windows(data, L, preset.num_start_windows, cfg.seed))
    bundle = out / "bundle"
    if ctx.is_main:
        from fog_envs.data.format import dataset_fingerprint

        card = {
            "task": cfg.task, "dataset": str(cfg.data), "dataset_fingerprint": dataset_fingerprint(cfg.data),
            "dataset_frames": int(len(data.frames)), "dataset_episodes": int(len(data.episode_ends)),
            "preset": cfg.preset,
            "steps": {k: (int(torch.load(ckpt / f"{k}.pt", weights_only=False, map_location="cpu")["step"])
                          if k not in progress.get("reused", {}) else progress["reused"][k]["steps"])
                      for k in STAGES},
            "reused": progress.get("reused", {}),
            **({"warm_start": progress["warm_start"]} if progress.get("warm_start") else {}),
            "wall_time_s": round(progress.get("wall_s", 0.0) + time.perf_counter() - t_start, 1),
            "final_metrics": progress["done"], "bf16": bf16, "world_size": ctx.world_size,
            **({"probe_goal_frames": cfg.probe_goal_frames} if cfg.probe_goal_frames else {}),
            "fidelity": None,
        }
        model.save(bundle, card)
        if writer is not None:
            writer.close()
    ctx.barrier()
    shutdown_distributed(ctx)
    return bundle
