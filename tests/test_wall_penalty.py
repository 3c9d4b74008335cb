"""The wall penalty of a state-model world (fog_envs.learned.wall_penalty): values by hand, the penalised env's
reward and its gradient against the plain env's, the sum with the ensemble penalty, bad configurations named."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

import fog_envs  # noqa: F401  (registers the envs)
from fog_envs.learned.wall_penalty import PenaltySum, WallPenalty, wall_proximity
from fog_envs.real.cube_scene import ARENA_HALF_SIZE, CUBE_HALF_SIZE
from fog_envs.wm.tasks import get_task

CUBE = {"obs_type": "latent", "forward_model": "state", "local_model": "state", "state_model": "cube_state",
        "bf16": False}
#: wide enough that the cube of every start below lies inside it, so that every step is penalised
MARGIN = 1.35


def _vec(**kwargs):
    return gym.make_vec("WMPushCube-v0", num_envs=4, vectorization_mode="vector_entry_point", **CUBE,
                        **kwargs).unwrapped


def test_wall_proximity_by_hand():
    positions = torch.tensor([[0.0, 0.0], [1.31, 0.2], [-0.3, -1.41], [1.0, 1.0], [1.2, -1.5]])
    expected = torch.tensor([0.0, 0.5, 1.0, 0.0, 1.45])  # 1 − (1.41 − max|·|) / 0.2
    torch.testing.assert_close(wall_proximity(positions, 1.41, 0.2), expected)


def test_the_cube_task_reaches_the_walls_where_the_arena_says():
    columns, reach = get_task("cube").walled_object
    assert columns == (4, 5) and reach == pytest.approx(ARENA_HALF_SIZE - CUBE_HALF_SIZE)
    assert get_task("pusht").walled_object is None


def test_the_penalised_world_loses_the_penalty_in_value_and_gradient(penalised_step):
    plain, penalised = _vec(), _vec(wall_penalty=0.5, wall_margin=MARGIN)
    assert isinstance(penalised.backend.penalty, WallPenalty)
    _, action, x_next, penalty = penalised_step(plain, penalised, atol=1e-5)
    cube_next = x_next[:, 4:6]
    expected = 0.5 * torch.clamp(1 - (1.41 - cube_next.abs().amax(-1)) / MARGIN, min=0.0)
    assert (expected > 0).all()
    torch.testing.assert_close(penalty, expected, atol=1e-5, rtol=1e-5)  # the penalty by hand
    # the global step's reward (no graph) loses the same
    plain.reset(seed=3)
    penalised.reset(seed=3)
    a = action.numpy()
    torch.testing.assert_close(torch.as_tensor(penalised.step(a)[1]), torch.as_tensor(plain.step(a)[1]) - expected,
                               atol=1e-5, rtol=1e-5)


def test_with_an_ensemble_the_penalties_add_up():
    both = _vec(wall_penalty=0.5, wall_margin=MARGIN, state_ensemble=("cube_state_walls",), disagreement_weight=2.0)
    penalty = both.backend.penalty
    assert isinstance(penalty, PenaltySum)
    ensemble, walls = penalty.penalties
    x = both.diff.reset(seed=5)
    action = torch.tensor([[1.0, 0.0, 0.0]]).expand(4, 3)
    torch.testing.assert_close(penalty(x, action), ensemble(x, action) + walls(x, action))


def test_bad_wall_penalties_are_named():
    from fog_envs.learned.factory import make_backend

    local = _vec(wall_penalty=0.5).backend.penalty.local
    with pytest.raises(ValueError, match="wall_penalty must be a finite number > 0"):
        WallPenalty(local, 0.0, (4, 5), 1.41, 0.2)
    with pytest.raises(ValueError, match=r"wall_margin must lie in \(0, 1.41\)"):
        WallPenalty(local, 1.0, (4, 5), 1.41, 2.0)
    with pytest.raises(ValueError, match=r"an \(x, y\) pair of state columns in \[0, 8\)"):
        WallPenalty(local, 1.0, (4, 8), 1.41, 0.2)
    with pytest.raises(ValueError, match="at least one penalty"):
        PenaltySum(local, [])
    with pytest.raises(ValueError, match="wall_penalty penalises a state-model world's reward"):
        make_backend("cube", 1, local_model="state", wall_penalty=0.5)
    with pytest.raises(ValueError, match="task 'pusht' has no walled object"):
        make_backend("pusht", 1, forward_model="state", local_model="state", wall_penalty=0.5)


def test_the_agents_config_reaches_the_world():
    from fog_agent.train import AgentTrainConfig, make_envs, resolve_sapo_config

    cfg = AgentTrainConfig(env_id="WMPushCube-v0", preset="debug", forward_model="state", local_model="state",
                           wall_penalty=0.25, wall_margin=0.3)
    penalty = make_envs(cfg, resolve_sapo_config(cfg)).backend.penalty
    assert isinstance(penalty, WallPenalty) and penalty.weight == 0.25 and penalty.margin == 0.3
