"""benchmarks/bench_planner_finish.py: its planner variants parse as written, its observer hands the true state to
the local model, its episodes end where it says, and its real-physics planning model steps as the real env does."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import fog_envs  # noqa: F401
from benchmarks.bench_planner_finish import BASE, TrueDynamics, TrueStateObserver, parse_variant, play
from fog_envs.wm.tasks import get_task


def test_variants_override_the_deployed_planner_with_typed_values():
    name, cfg = parse_variant("wide:samples=256,elites=16,value_weight=0,engage_reward=none")
    assert name == "wide"
    assert (cfg.samples, cfg.elites, cfg.value_weight, cfg.engage_reward) == (256, 16, 0.0, None)
    assert isinstance(cfg.samples, int) and cfg.horizon == BASE.horizon
    assert parse_variant("default") == ("default", BASE) and BASE.engage_reward == 0.6
    assert parse_variant("actor") == ("actor", None)
    _, big = parse_variant("big:finish_reward=0.9,finish_samples=256,finish_iterations=6")
    assert (big.finish_samples, big.finish_iterations) == (256, 6) and isinstance(big.finish_samples, int)
    _, icem = parse_variant("icem:noise_beta=2,keep_elites=4,act=best")
    assert (icem.noise_beta, icem.keep_elites, icem.act) == (2.0, 4, "best") and isinstance(icem.keep_elites, int)


@pytest.mark.parametrize("text, match", [
    ("wide:sample=256", "not key=value with a PlannerConfig field"),
    ("wide:samples", "not key=value"),
    (":samples=8", "needs a name"),
    ("actor:samples=8", "takes no planner settings"),
    ("few:elites=100", "must not exceed samples"),
    ("long:horizon=1.5", "horizon takes int values, got '1.5'"),
    ("pick:act=median", "act must be 'mean' or 'best'"),
])
def test_variants_name_what_is_wrong(text, match):
    with pytest.raises(ValueError, match=match):
        parse_variant(text)


def test_true_state_observer_starts_and_advances_on_the_true_state(stand_in_local):
    spec = get_task("pusht")
    local = stand_in_local([0.0] * 6)
    observer = TrueStateObserver(local, spec)
    first = np.array([100.0, 200.0, 256.0, 300.0, np.pi / 2])
    second = np.array([110.0, 190.0, 250.0, 310.0, np.pi])
    x0 = observer.reset(first)
    s0 = torch.from_numpy(spec.probe_targets(first[None]).astype(np.float32))[0]
    torch.testing.assert_close(x0, torch.cat([s0, s0]))
    torch.testing.assert_close(s0, torch.tensor([100 / 512, 200 / 512, 0.5, 300 / 512, 0.0, 1.0]), atol=1e-6, rtol=0)
    x1 = observer.update(np.zeros(2, np.float32), second)
    s1 = torch.from_numpy(spec.probe_targets(second[None]).astype(np.float32))[0]
    torch.testing.assert_close(x1, torch.cat([s1, s0]))


class _StillController:
    """Stands still: the agent's target is its own position."""

    def reset(self, obs, info):
        pass

    def act(self, obs, info):
        return np.zeros(2, np.float32)


def test_episodes_end_the_given_steps_after_the_engage_coverage_and_are_seeded():
    env = gym.make("RealPushT-v0", obs_type="state")
    short = play(_StillController(), env, episodes=2, seed=200_000, engage_coverage=0.0, steps_after=3)
    assert [r["length"] for r in short] == [4, 4] and all(r["engaged"] == 1.0 for r in short)
    never = play(_StillController(), env, episodes=1, seed=200_000, engage_coverage=2.0, steps_after=3)
    assert never[0]["length"] == 300 and never[0]["engaged"] == 0.0
    # a still agent leaves the block where the seed put it: the same coverage either way
    assert never[0]["max_coverage"] == pytest.approx(short[0]["max_coverage"])


def test_true_dynamics_steps_as_the_reference_system_does():
    spec = get_task("pusht")
    real = gym.make("RealPushT-v0", obs_type="state")
    obs, _ = real.reset(seed=7)
    rng = np.random.default_rng(0)
    for a in rng.uniform(-1, 1, (5, 2)).astype(np.float32):  # moving bodies: their velocities matter
        prev, obs = obs, real.step(a)[0]
    model = TrueDynamics(real.unwrapped, spec)
    root = torch.from_numpy(np.concatenate([spec.probe_targets(obs[None]), spec.probe_targets(prev[None])], -1))
    actions = rng.uniform(-1, 1, (3, 3, 2)).astype(np.float32)  # 3 rollouts of 3 steps from the root
    x = root.expand(3, -1)
    for k in range(3):
        x = model(x, torch.from_numpy(actions[:, k]))
    # the real env, untouched by the rollouts, goes where the first rollout went under the same actions
    truth = [real.step(a)[0] for a in actions[0]]
    np.testing.assert_allclose(x[0, :6].numpy(), spec.probe_targets(truth[-1][None])[0], atol=1e-6)
    np.testing.assert_allclose(x[0, 6:].numpy(), spec.probe_targets(truth[-2][None])[0], atol=1e-6)
    assert not torch.allclose(x[0], x[1])
    # a new rollout from the root copies the real env's bodies again (now three steps on)
    again = model(root.expand(2, -1), torch.from_numpy(actions[:2, 0]))
    step4 = real.step(actions[0, 0])[0]
    np.testing.assert_allclose(again[0, :6].numpy(), spec.probe_targets(step4[None])[0], atol=1e-6)
