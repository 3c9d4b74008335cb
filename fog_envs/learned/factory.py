"""Build the backend behind a learned env id: the toy model, or a world-model bundle."""

from __future__ import annotations

from typing import Any

from fog_envs.learned.backend import Backend

OBS_TYPES = ("pixels", "latent")
#: "diffusion": FoG's global model; "rssm": the "no diffusion" ablation (the RSSM prior dreams); "reference": the
#: reference system itself (a diagnostic upper bound, :mod:`fog_envs.learned.reference_backend`); "state": the
#: state model of ``local_model="state"`` dreams in physical-state space (no frames; rewards from the task's formula)
FORWARD_MODELS = ("diffusion", "rssm", "reference", "state")
#: "rssm": the bundle's RSSM (FoG); "state": a state-space model on the probe's readings
#: (:mod:`fog_envs.learned.state_local`)
LOCAL_MODELS = ("rssm", "state")
#: task -> shipped bundle name
SHIPPED_BUNDLES = {"pusht": "pusht", "cube": "cube"}
#: below this batch, autocast's per-op overhead outweighs the faster convolutions (on this project's 2-core
#: CPU, WMPushT-v0 latent: 316 fp32 vs 236 bf16 steps/s at batch 1, 1,524 vs 2,015 at 16;
#: benchmarks/bench_learned_envs.py), so ``bf16="auto"`` stays in float32
BF16_MIN_ENVS = 16


def make_backend(task: str, num_envs: int, world_model: str | None = None, forward_model: str = "diffusion",
                 denoising_steps: int | None = None, device: str = "cpu", bf16: bool | str = "auto",
                 start_sigma: float | None = None, local_model: str = "rssm",
                 state_model: str | None = None, goal_starts: float = 0.0, state_ensemble: tuple[str, ...] = (),
                 disagreement_weight: float = 0.0, disagreement_dims: tuple[int, ...] = (),
                 wall_penalty: float = 0.0, wall_margin: float = 0.2, reset_starts: float = 0.0,
                 reward_options: dict[str, Any] | None = None, ensemble_forward: bool = False,
                 wall_starts: float = 0.0) -> Backend:
    """The backend for ``task`` (``"toy"``, ``"pusht"`` or ``"cube"``) with ``num_envs`` copies.

    ``bf16``: run the diffusion sampler's network and the pixel decoder under bf16 autocast (``"auto"``: where
    the device has fast bf16, see :func:`fog_envs.runtime.use_bf16`, and ``num_envs >= BF16_MIN_ENVS``;
    ``False`` for plain float32). ``start_sigma``: override the bundle's sampler start
    (:attr:`fog_envs.wm.edm.EDMConfig.start_sigma`; 0 = from pure noise, > 0 = from the last latent noised
    to that σ). ``forward_model``: one of :data:`FORWARD_MODELS`. ``local_model``: ``"rssm"`` or ``"state"`` (the state model ``state_model``, a bundle name or
    path; default: the task's shipped ``<task>_state``). ``goal_starts``: the fraction of a state-model
    world's episode starts moved near the goal, ``reset_starts`` the fraction drawn as the reference system's
    resets, ``wall_starts`` the fraction drawn as those resets with the object next to a wall
    (:class:`~fog_envs.learned.wm_backend.WorldModelBackend`).
    ``state_ensemble`` (state-model bundles, names or paths) and ``disagreement_weight`` λ > 0: a state-model
    world's reward loses λ times the ensemble's disagreement over the state columns ``disagreement_dims``
    (all if empty; :mod:`fog_envs.learned.disagreement`). ``ensemble_forward``: each imagined episode of a
    state-model world is dreamt by one of the world's own state model and ``state_ensemble``'s, drawn at its start
    (``WorldModelBackend(forward_members=)``; with or without the penalty). ``wall_penalty`` w > 0: a state-model
    world's reward loses up to w per step for the task's object within ``wall_margin`` (m) of a wall
    (:mod:`fog_envs.learned.wall_penalty`; the cube). ``reward_options``: options of the task's reward formula
    (:attr:`~fog_envs.wm.tasks.TaskSpec.reward_options`; Push-T: ``{"coverage_cap": c}``, the coverage where the
    coverage term stops growing, 0.95 by default), for ``local_model="state"``, whose rewards that formula gives.
    """
    if local_model not in LOCAL_MODELS:
        raise ValueError(f"unknown local_model {local_model!r}; choose one of {LOCAL_MODELS}")
    if state_model is not None and local_model != "state":
        raise ValueError("state_model= is the model of local_model='state'; this env uses local_model="
                         f"{local_model!r}")
    if forward_model not in FORWARD_MODELS:
        raise ValueError(f"unknown forward_model {forward_model!r}; choose one of {FORWARD_MODELS}")
    if forward_model == "state" and local_model != "state":
        raise ValueError("forward_model='state' steps the state model of local_model='state'; pass "
                         f"local_model='state' (got {local_model!r})")
    if ensemble_forward and not state_ensemble:
        raise ValueError("ensemble_forward dreams each episode with one of state_ensemble's models or the world's own; "
                         "pass state_ensemble")
    if disagreement_weight != 0 and not state_ensemble:
        raise ValueError(f"disagreement_weight={disagreement_weight} penalises an ensemble's disagreement; pass "
                         "state_ensemble")
    if state_ensemble and not (disagreement_weight or ensemble_forward):
        raise ValueError(f"state_ensemble ({len(state_ensemble)} member(s)) is used by a disagreement_weight > 0 (the "
                         "penalty) or ensemble_forward=True; neither is set")
    if disagreement_dims and not state_ensemble:
        raise ValueError("disagreement_dims choose the columns of an ensemble's disagreement; pass state_ensemble")
    if state_ensemble and forward_model != "state":
        raise ValueError(f"state_ensemble penalises a state-model world's reward; it needs forward_model='state', "
                         f"got {forward_model!r}")
    if wall_penalty and forward_model != "state":
        raise ValueError(f"wall_penalty penalises a state-model world's reward; it needs forward_model='state', got "
                         f"{forward_model!r}")
    if reward_options and local_model != "state":
        raise ValueError(f"reward_options set the task's reward formula, which local_model='state' uses; this env "
                         f"uses local_model={local_model!r} (its rewards are learned)")
    if task == "toy":
        from fog_envs.learned.toy import ToyBackend

        if start_sigma is not None:
            raise ValueError("start_sigma applies to world-model envs, not the toy env")
        if goal_starts or reset_starts or wall_starts:
            raise ValueError("goal_starts, reset_starts and wall_starts apply to world-model envs with "
                             "forward_model='state', not the toy env")
        if forward_model != "diffusion" or local_model != "rssm":
            raise ValueError(f"forward_model={forward_model!r} / local_model={local_model!r} apply to world-model "
                             "envs; the toy env has one model (its true dynamics) and its own surrogate")
        return ToyBackend(num_envs, device=device)
    from fog_envs.learned.wm_backend import WorldModelBackend
    from fog_envs.wm.bundle import BundleError
    from fog_envs.wm.model import WorldModel
    from fog_envs.runtime import resolve_device, use_bf16

    if task not in SHIPPED_BUNDLES:
        raise ValueError(f"unknown task {task!r}; choose one of {['toy', *SHIPPED_BUNDLES]}")
    dev = resolve_device(device)
    model = WorldModel.load(world_model if world_model is not None else SHIPPED_BUNDLES[task], map_location=dev)
    if model.config.task != task:
        raise BundleError(f"world model {world_model!r} was trained for task {model.config.task!r}, "
                          f"not {task!r}")
    model.task = model.task.with_reward_options(reward_options or {})
    if start_sigma is not None:
        if forward_model != "diffusion":
            raise ValueError(f"start_sigma sets the diffusion sampler; forward_model={forward_model!r} does not use it")
        model.set_sampler(start_sigma=float(start_sigma))
    bf16_on = use_bf16(dev, bf16) and (bf16 is True or num_envs >= BF16_MIN_ENVS)
    state_local = None
    if local_model == "state":
        from fog_envs.learned.state_local import StateLocalModel
        from fog_envs.wm.state_model import StateModel

        sm, _ = StateModel.load(state_model if state_model is not None else f"{task}_state", task=task,
                                map_location=dev)
        state_local = StateLocalModel(model, sm, bf16=bf16_on)
    penalty = None
    members = [StateModel.load(m, task=task, map_location=dev)[0] for m in state_ensemble]
    if disagreement_weight:
        from fog_envs.learned.disagreement import EnsemblePenalty

        penalty = EnsemblePenalty(state_local, members, disagreement_weight, disagreement_dims)
    if wall_penalty:
        from fog_envs.learned.wall_penalty import PenaltySum, WallPenalty

        if model.task.walled_object is None:
            raise ValueError(f"task {task!r} has no walled object to keep off the walls; use wall_penalty=0")
        columns, reach = model.task.walled_object
        walls = WallPenalty(state_local, wall_penalty, columns, reach, wall_margin)
        penalty = walls if penalty is None else PenaltySum(state_local, [penalty, walls])
    if forward_model == "reference":
        from fog_envs.learned.reference_backend import ReferenceBackend

        if goal_starts or reset_starts or wall_starts:
            raise ValueError("goal_starts, reset_starts and wall_starts apply to forward_model='state'; the "
                             "reference system starts from its own resets")
        return ReferenceBackend(model, num_envs, bf16=bf16_on, state_local=state_local)
    return WorldModelBackend(model, num_envs, forward_model=forward_model, denoising_steps=denoising_steps,
                             bf16=bf16_on, state_local=state_local, goal_starts=goal_starts, penalty=penalty,
                             reset_starts=reset_starts, forward_members=members if ensemble_forward else (),
                             wall_starts=wall_starts)
