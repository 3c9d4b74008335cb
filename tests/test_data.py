"""Contracts of the play-dataset format, the collector (determinism, resume) and the window sampler."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import h5py
import numpy as np
import pytest

import fog_envs
from fog_envs.data.cli import format_report, main as cli_main
from fog_envs.data.collect import CollectConfig, CollectMismatchError, collect
from fog_envs.data.format import (
    ARRAY_NAMES, REQUIRED_ATTRS, ROW_ARRAYS, DatasetError, DatasetMeta, DatasetWriter, check_dataset,
    dataset_fingerprint, dataset_info, load_arrays, open_dataset, write_dataset,
)
from fog_envs.data.motion import OBJECT_MOTION, ObjectMotion, moved_counts, moved_fraction, object_motion
from fog_envs.data.reader import WindowSampler
from fog_envs.data.rollout import run_episode

# ---- a tiny deterministic env and policy (module level, so spawned workers can import them) ----------

FAKE_ID = "FakePlay-v0"
FAKE_MAX_STEPS = 12
#: The fake env's object: state [agent_x, agent_y, obj_x, obj_y, obj_angle, t, reset_seed].
FAKE_MOTION = ObjectMotion(xy=(2, 3), angle=4, position_tol=1e-6, angle_tol=1e-6)


class FakeEnv(gym.Env):
    """8×8×3 frames; an agent that pushes an object when close; random horizon 5..14 (some terminate)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 7}

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)
        self.action_space = gym.spaces.Box(-1, 1, (2,), np.float32)

    def _obs_info(self) -> tuple[np.ndarray, dict[str, Any]]:
        state = np.array([*self.agent, *self.obj, self.t, self.reset_seed], dtype=np.float64)
        frame = np.full((8, 8, 3), (self.t * 17 + self.reset_seed * 31) % 256, dtype=np.uint8)
        frame[0, 0] = np.clip((self.agent + 2) * 60, 0, 255).astype(np.uint8)[[0, 1, 0]]
        return frame, {"state": state, "is_success": bool(self.obj[0] > 0.2)}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.reset_seed = -1 if seed is None else seed
        self.agent = self.np_random.uniform(-0.5, 0.5, 2)
        self.obj = np.array([0.0, 0.0, 3.0])
        self.t = 0
        self.horizon = int(self.np_random.integers(5, 15))
        return self._obs_info()

    def step(self, action):
        action = np.asarray(action, dtype=np.float64)
        self.agent = self.agent + 0.2 * action
        if np.linalg.norm(self.agent - self.obj[:2]) < 0.4:
            self.obj = self.obj + np.array([0.1 * action[0], 0.1 * action[1], 0.05])
        self.t += 1
        obs, info = self._obs_info()
        return obs, float(-np.linalg.norm(self.obj[:2] - 0.3)), self.t >= self.horizon, False, info


class FakePolicy:
    """Uniform random actions from the episode's generator, nudged towards the object."""

    def reset(self, info: dict[str, Any], rng: np.random.Generator) -> None:
        self.rng = rng

    def __call__(self, info: dict[str, Any]) -> np.ndarray:
        towards = info["state"][2:4] - info["state"][0:2]
        return np.clip(0.5 * towards + self.rng.uniform(-0.7, 0.7, 2), -1, 1).astype(np.float32)


def fake_policy_factory(env_id: str) -> FakePolicy:
    return FakePolicy()


if FAKE_ID not in gym.registry:
    gym.register(FAKE_ID, entry_point=FakeEnv, max_episode_steps=FAKE_MAX_STEPS)


def fake_collect(out: Path, num_episodes: int = 6, seed: int = 3, workers: int = 1, **kwargs):
    config = CollectConfig(env_id=FAKE_ID, out=out, num_episodes=num_episodes, seed=seed, workers=workers)
    return collect(config, policy_factory=fake_policy_factory, motion=FAKE_MOTION, **kwargs)


def random_episodes(rng: np.random.Generator, lengths=(5, 1, 9), a=2, s=4) -> list[dict[str, np.ndarray]]:
    return [{
        "frames": rng.integers(0, 256, (n, 6, 5, 3), dtype=np.uint8),
        "actions": rng.uniform(-1, 1, (n, a)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "terminated": rng.random(n) < 0.2, "truncated": rng.random(n) < 0.2,
        "state": rng.normal(size=(n, s)), "is_success": rng.random(n) < 0.5,
    } for n in lengths]


META = DatasetMeta(env_id="Fake-v0", collector_policy="tests.Policy", seed=11, control_hz=7.0,
                   reward_definition="r = -|x|")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted in-process collection of the fake env (6 episodes, seed 3)."""
    out = tmp_path_factory.mktemp("ref") / "fake.h5"
    report = fake_collect(out)
    assert report.complete and not report.already_existed
    return out


def assert_same_arrays(a: Path, b: Path) -> None:
    arr_a, arr_b = load_arrays(a), load_arrays(b)
    for name in ARRAY_NAMES:
        np.testing.assert_array_equal(arr_a[name], arr_b[name], err_msg=name)
        assert arr_a[name].dtype == arr_b[name].dtype
    assert dataset_fingerprint(a) == dataset_fingerprint(b)


# ---- format ---------------------------------------------------------------------------------------------

def test_round_trip_attributes_and_atomicity(tmp_path):
    episodes = random_episodes(np.random.default_rng(0))
    path = write_dataset(tmp_path / "d.h5", episodes, META)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.h5"]  # no .tmp left behind
    with open_dataset(path) as f:
        for name in ROW_ARRAYS:
            np.testing.assert_array_equal(f[name][()], np.concatenate([e[name] for e in episodes]))
            assert f[name].dtype == ROW_ARRAYS[name][0]
        np.testing.assert_array_equal(f["episode_ends"][()], [5, 6, 15])
        assert f["frames"].chunks[0] == 64 and f["frames"].compression == "gzip"
        assert set(REQUIRED_ATTRS) <= set(f.attrs)
    info = dataset_info(path)
    assert info.attrs["format_name"] == "fog-play-dataset" and info.attrs["format_version"] == 1
    assert info.attrs["env_version"] == fog_envs.__version__ and info.attrs["reward_definition"] == "r = -|x|"
    assert (info.num_frames, info.num_episodes, info.frame_shape, info.action_dim, info.state_dim) == (15, 3, (6, 5, 3), 2, 4)
    assert check_dataset(path) == info


def test_fingerprint_depends_on_content_not_compression(tmp_path):
    episodes = random_episodes(np.random.default_rng(0))
    a = write_dataset(tmp_path / "a.h5", episodes, META, compression="gzip")
    b = write_dataset(tmp_path / "b.h5", episodes, META, compression="none")
    assert dataset_fingerprint(a) == dataset_fingerprint(b)
    episodes[2]["rewards"][3] += 1.0
    c = write_dataset(tmp_path / "c.h5", episodes, META)
    assert dataset_fingerprint(c) != dataset_fingerprint(a)
    assert len(dataset_fingerprint(a)) == 64


def test_failed_write_leaves_nothing(tmp_path):
    path = tmp_path / "d.h5"
    with pytest.raises(ValueError, match="rows"):
        with DatasetWriter(path, META) as writer:
            writer.append(random_episodes(np.random.default_rng(0))[0])
            bad = random_episodes(np.random.default_rng(1))[0]
            bad["actions"] = bad["actions"][:-1]
            writer.append(bad)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="no episodes"):
        write_dataset(path, [], META)
    assert list(tmp_path.iterdir()) == []


def test_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="no such dataset file"):
        open_dataset(tmp_path / "nope.h5")


def test_garbage_and_truncated_files(tmp_path):
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"this is not hdf5 at all" * 100)
    with pytest.raises(DatasetError, match="not a readable HDF5 file"):
        open_dataset(garbage)
    good = write_dataset(tmp_path / "good.h5", random_episodes(np.random.default_rng(0), lengths=(100, 80)), META)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="corrupt or truncated"):
        WindowSampler(truncated, window=4)


def test_foreign_and_unsupported_files(tmp_path):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["images"] = np.zeros((4, 2, 2, 3), np.uint8)
        f.attrs["author"] = "someone else"
    with pytest.raises(DatasetError, match="not a fog play dataset.*'format_name' is missing"):
        open_dataset(foreign)
    path = write_dataset(tmp_path / "d.h5", random_episodes(np.random.default_rng(0)), META)
    with h5py.File(path, "r+") as f:
        f.attrs["format_name"] = "other-format"
    with pytest.raises(DatasetError, match="format_name is 'other-format'"):
        open_dataset(path)
    with h5py.File(path, "r+") as f:
        f.attrs["format_name"] = "fog-play-dataset"
        f.attrs["format_version"] = 2
    with pytest.raises(DatasetError, match="unsupported format_version 2"):
        open_dataset(path)
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = 1
        del f.attrs["reward_definition"]
    with pytest.raises(DatasetError, match=r"missing the attributes \['reward_definition'\]"):
        open_dataset(path)


@pytest.mark.parametrize("damage, words", [
    (lambda f: (f.__delitem__("rewards"), f.create_dataset("rewards", data=np.zeros(14, np.float32))),
     "inconsistent lengths"),
    (lambda f: f["episode_ends"].__setitem__(slice(None), [5, 6, 14]), "episode_ends"),
    (lambda f: f["episode_ends"].__setitem__(slice(None), [6, 5, 15]), "strictly increasing"),
    (lambda f: f.__delitem__("state"), r"missing the arrays \['state'\]"),
    (lambda f: f.attrs.__setitem__("num_frames", 99), "attributes say 99 frames"),
])
def test_inconsistent_files(tmp_path, damage, words):
    path = write_dataset(tmp_path / "d.h5", random_episodes(np.random.default_rng(0)), META)
    with h5py.File(path, "r+") as f:
        damage(f)
    with pytest.raises(DatasetError, match=words):
        open_dataset(path)


# ---- object motion ------------------------------------------------------------------------------------

def test_moved_fraction_hand_made():
    motion = OBJECT_MOTION["RealPushT-v0"]
    # [agent_x, agent_y, block_x, block_y, block_angle]; two episodes of 4 and 3 rows.
    state = np.array([
        [0, 0, 100.0, 100.0, 0.0],
        [5, 5, 100.4, 100.0, 0.0],      # 0.4 px: not moved (agent motion is irrelevant)
        [5, 5, 100.4, 101.0, 0.0],      # 1 px: moved
        [5, 5, 100.4, 101.0, 0.004],    # 0.004 rad: not moved
        [0, 0, 300.0, 300.0, 6.282],    # new episode (the jump is not a step)
        [0, 0, 300.0, 300.0, 0.0005],   # wraps through 2π: change 0.0017 rad, not moved
        [0, 0, 300.0, 300.0, 0.02],     # 0.0195 rad: moved
    ])
    ends = np.array([4, 7])
    np.testing.assert_array_equal(motion.moved(state[:4]), [False, True, False])
    assert moved_counts(state, ends, motion) == (2, 5)
    assert moved_fraction(state, ends, motion) == pytest.approx(0.4)
    cube = object_motion("RealPushCube-v0")
    cube_state = np.zeros((3, 6))
    cube_state[1, 3] = 0.0009  # 0.9 mm
    cube_state[2, 3] = 0.0021  # 1.2 mm more
    np.testing.assert_array_equal(cube.moved(cube_state), [False, True])
    assert object_motion("unknown-v0") is None and object_motion("somemod:RealPushT-v0") is motion


# ---- collection -----------------------------------------------------------------------------------------

def test_collected_rows_follow_the_convention(reference):
    arrays = load_arrays(reference)
    attrs = dataset_info(reference).attrs
    assert attrs["env_id"] == FAKE_ID and attrs["seed"] == 3 and attrs["control_hz"] == 7.0
    assert attrs["max_episode_steps"] == FAKE_MAX_STEPS and "FakePolicy" in attrs["collector_policy"]
    starts = np.concatenate([[0], arrays["episode_ends"][:-1]])
    for e, (s, end) in enumerate(zip(starts, arrays["episode_ends"])):
        state = arrays["state"][s:end]
        np.testing.assert_array_equal(state[:, 5], np.arange(end - s))  # state is the state at o_t: t = 0..T-1
        assert np.all(state[:, 6] == 3 + e)  # episode e was reset with seed + e
        done = arrays["terminated"][s:end] | arrays["truncated"][s:end]
        assert done[-1] and not done[:-1].any()
        # each episode is reproducible on its own: replay it on a fresh env
        replay = run_episode(gym.make(FAKE_ID), FakePolicy(), seed=3 + e, rng=np.random.default_rng([3, e]))
        for name in ROW_ARRAYS:
            np.testing.assert_array_equal(replay[name], arrays[name][s:end], err_msg=name)
    assert arrays["truncated"].any() and arrays["terminated"].any()  # horizons 5..14 against the 12-step limit


def test_resume_after_interruption_equals_uninterrupted_run(tmp_path, reference):
    out = tmp_path / "fake.h5"
    partial = fake_collect(out, stop_after=3)
    assert not partial.complete and partial.new_episodes == 3 and not out.exists()
    parts = Path(f"{out}.parts")
    assert sorted(p.name for p in parts.iterdir()) == [f"episode_00000{i}.h5" for i in range(3)]
    (parts / "episode_000003.h5.tmp").write_bytes(b"half a shard")  # killed while writing
    (parts / "episode_000001.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 40)  # a damaged shard is redone
    report = fake_collect(out)
    assert report.complete and report.new_episodes == 4 and report.episodes == 6
    assert not parts.exists() and not Path(f"{out}.tmp").exists()
    assert_same_arrays(out, reference)
    assert report.moved_fraction == pytest.approx(moved_fraction(load_arrays(out)["state"],
                                                                 load_arrays(out)["episode_ends"], FAKE_MOTION))


def test_parallel_workers_resume_equals_reference(tmp_path, reference):
    out = tmp_path / "fake.h5"
    fake_collect(out, stop_after=2)
    report = fake_collect(out, workers=2)
    assert report.complete and report.new_episodes == 4 and report.frames_per_s > 0
    assert_same_arrays(out, reference)


def test_existing_dataset_is_kept_or_refused(tmp_path, reference):
    out = tmp_path / "fake.h5"
    out.write_bytes(reference.read_bytes())
    Path(f"{out}.parts").mkdir()  # as if killed between the merge's rename and the clean-up
    mtime = out.stat().st_mtime_ns
    report = fake_collect(out)
    assert report.already_existed and report.new_episodes == 0 and report.frames == dataset_info(out).num_frames
    assert out.stat().st_mtime_ns == mtime and not Path(f"{out}.parts").exists()
    assert "already complete" in format_report(report)
    with pytest.raises(CollectMismatchError, match="different collection config.*seed"):
        fake_collect(out, seed=4)
    with pytest.raises(CollectMismatchError, match="num_episodes"):
        fake_collect(out, num_episodes=7)
    other = tmp_path / "other.h5"
    fake_collect(other, stop_after=1)
    with pytest.raises(CollectMismatchError, match="shards of a different collection"):
        fake_collect(other, seed=5)


def test_collect_config_validation():
    with pytest.raises(ValueError, match="num_episodes"):
        CollectConfig(num_episodes=0)
    with pytest.raises(ValueError, match="workers"):
        CollectConfig(workers=0)
    with pytest.raises(ValueError, match="unknown env id"):
        collect(CollectConfig(env_id="NoSuchEnv-v9", num_episodes=1), policy_factory=fake_policy_factory)


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--env-id" in out and "--num-episodes" in out and "--workers" in out


# ---- reader ----------------------------------------------------------------------------------------------

def test_window_shapes_masks_and_episode_ends(reference):
    sampler = WindowSampler(reference, window=4, seed=0)
    batch = sampler.sample(32)
    assert batch.frames.shape == (32, 4, 8, 8, 3) and batch.frames.dtype == np.uint8
    assert batch.actions.shape == (32, 4, 2) and batch.actions.dtype == np.float32
    assert batch.rewards.shape == batch.terminated.shape == batch.mask.shape == (32, 4)
    assert batch.state.shape == (32, 4, 7) and batch.state.dtype == np.float64
    last_rows = sampler.episode_ends - 1
    at_end = sampler.windows(last_rows)
    np.testing.assert_array_equal(at_end.mask, np.tile([True, False, False, False], (len(last_rows), 1)))
    assert not at_end.frames[:, 1:].any() and not at_end.state[:, 1:].any()  # padding is zero
    np.testing.assert_array_equal(at_end.episode, np.arange(sampler.num_episodes))
    full = sampler.windows(sampler.episode_starts)
    assert full.mask.all()  # every fake episode has at least 5 rows


def test_windows_never_cross_episodes(reference):
    sampler = WindowSampler(reference, window=8, seed=1)
    batch = sampler.sample(256)
    seeds = batch.state[..., 6]
    t = batch.state[..., 5]
    expected_seed = 3 + batch.episode[:, None]
    assert np.all(seeds[batch.mask] == np.broadcast_to(expected_seed, seeds.shape)[batch.mask])
    steps = np.diff(t, axis=1)
    assert np.all(steps[batch.mask[:, 1:]] == 1)  # consecutive rows of one episode
    assert (~batch.mask).any()  # some windows were padded


def test_sampler_is_seeded_and_disk_mode_matches(reference):
    a = WindowSampler(reference, window=5, seed=7).sample(16)
    b = WindowSampler(reference, window=5, seed=7).sample(16)
    memory = WindowSampler(reference, window=5, seed=7)
    with WindowSampler(reference, window=5, seed=7, in_memory=False) as disk:
        c = disk.sample(16)
        for name, arr in disk.episode(2).items():
            np.testing.assert_array_equal(arr, memory.episode(2)[name])
    for name in ("frames", "actions", "rewards", "state", "mask", "start"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        np.testing.assert_array_equal(getattr(a, name), getattr(c, name))
    d = WindowSampler(reference, window=5, seed=8).sample(16)
    assert not np.array_equal(a.start, d.start)


def test_sampler_unpadded_torch_and_episodes(reference):
    torch = pytest.importorskip("torch")
    sampler = WindowSampler(reference, window=5, seed=0, pad=False)
    assert sampler.sample(64).mask.all()
    tensors = sampler.sample_torch(4)
    assert tensors["frames"].dtype == torch.uint8 and tuple(tensors["frames"].shape) == (4, 5, 8, 8, 3)
    assert tensors["mask"].dtype == torch.bool and tensors["actions"].dtype == torch.float32
    arrays = load_arrays(reference)
    episodes = list(sampler.episodes())
    assert len(episodes) == 6
    np.testing.assert_array_equal(np.concatenate([e["frames"] for e in episodes]), arrays["frames"])
    with pytest.raises(ValueError, match="no episode has"):
        WindowSampler(reference, window=50, pad=False)


# ---- the real reference system ----------------------------------------------------------------------------

def test_collect_real_pusht_two_workers(tmp_path):
    pytest.importorskip("fog_envs.real.pusht")
    out = tmp_path / "pusht.h5"
    config = CollectConfig(env_id="RealPushT-v0", out=out, num_episodes=2, seed=0, workers=2, max_episode_steps=20)
    report = collect(config)
    assert report.complete and report.frames == 40 and report.episodes == 2
    assert report.moved_fraction is not None and 0.0 <= report.moved_fraction <= 1.0
    info = dataset_info(out)
    assert info.frame_shape == (64, 64, 3) and info.action_dim == 2 and info.state_dim == 5
    assert info.attrs["control_hz"] == 10.0 and "coverage" in info.attrs["reward_definition"]
    assert "PushTPlayPolicy" in info.attrs["collector_policy"]
    arrays = load_arrays(out)
    assert arrays["truncated"][[19, 39]].all() and not arrays["terminated"].any()


def test_random_action_mix_replaces_actions_reproducibly():
    """prob 0 leaves the play policy's actions as they are; prob 1 replaces every one by a uniform draw in the
    box; the same generator gives the same actions; the provenance names the wrapped policy and the
    probability; a probability outside [0, 1] is refused (policy and collection config alike)."""
    from fog_envs.play import make_play_policy
    from fog_envs.play.random_mix import RandomActionMix

    env = gym.make("RealPushT-v0")

    def actions(policy, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        _, info = env.reset(seed=0)
        policy.reset(info, rng)
        out = []
        for _ in range(30):
            a = policy(info)
            out.append(a)
            *_, info = env.step(a)
        return np.stack(out)

    plain = actions(make_play_policy("RealPushT-v0"), 3)
    np.testing.assert_array_equal(actions(make_play_policy("RealPushT-v0", random_action_prob=0.0), 3), plain)
    mixed = actions(make_play_policy("RealPushT-v0", random_action_prob=1.0), 3)
    assert mixed.dtype == np.float32 and np.all(np.abs(mixed) <= 1.0)
    assert not np.allclose(mixed, plain)
    assert 0.4 < mixed.std() < 0.75  # uniform on [-1, 1]: std 0.577
    half = make_play_policy("RealPushT-v0", random_action_prob=0.5)
    np.testing.assert_array_equal(actions(half, 7), actions(make_play_policy("RealPushT-v0", 0.5), 7))
    assert isinstance(half, RandomActionMix)
    from fog_envs.data.rollout import policy_name

    assert "PushTPlayPolicy" in policy_name(half) and "random_action_prob=0.5" in policy_name(half)
    with pytest.raises(ValueError, match="random_action_prob must be in"):
        make_play_policy("RealPushT-v0", random_action_prob=1.5)
    with pytest.raises(ValueError, match="random_action_prob must be in"):
        CollectConfig(random_action_prob=-0.1)


def _play(policy_config, episodes: int, steps: int) -> tuple[str, np.ndarray, list[float]]:
    """Seeded Push-T play as the collector runs it: (sha256 of the actions, the block's per-step displacement
    in px, the agent-to-block gap in px where each push begins)."""
    import hashlib

    import shapely.geometry as sg

    from fog_envs.play.pusht import PushTPlayPolicy
    from fog_envs.real.pusht_reward import tee_polygon

    digest, moves, gaps = hashlib.sha256(), [], []
    env = gym.make("RealPushT-v0", obs_type="state")
    for ep in range(episodes):
        policy, rng = PushTPlayPolicy(policy_config), np.random.default_rng([0, ep])
        _, info = env.reset(seed=ep, options=policy.reset_options(rng))
        policy.reset(info, rng)
        for _ in range(steps):
            before = policy._mode
            action = policy(info)
            digest.update(action.tobytes())
            s = info["state"]
            if before == "approach" and policy._mode == "push":
                gaps.append(tee_polygon(s[2:5]).distance(sg.Point(*s[:2])))
            *_, info = env.step(action)
            moves.append(float(np.linalg.norm(info["state"][2:4] - s[2:4])))
    return digest.hexdigest(), np.asarray(moves), gaps


def test_nudges_off_leave_the_play_data_unchanged_and_on_push_gently_from_contact():
    """``p_nudge=0`` (the default) draws nothing extra: the play policy's actions hash as they did before
    nudges existed (the datasets' manifest stays true). ``p_nudge=1``: every push starts at the block (the
    agent's 15 px radius away, the approach stopping within 8 px of its waypoint) and is slow, so the
    block's per-step moves stay small; out-of-range probabilities and nudges on the cube are refused."""
    from fog_envs.data.collect import CollectConfig
    from fog_envs.play import make_play_policy
    from fog_envs.play.pusht import PushTPlayConfig

    digest, plain_moves, plain_gaps = _play(PushTPlayConfig(), episodes=2, steps=150)
    assert digest == "03163bd02d623daa979712159d7b1ffd251da9425a21caedee6d475cd569b710"
    _, nudge_moves, nudge_gaps = _play(PushTPlayConfig(p_nudge=1.0), episodes=2, steps=150)
    assert len(nudge_gaps) > len(plain_gaps) and np.median(nudge_gaps) < 16.0 < np.median(plain_gaps)
    assert np.quantile(nudge_moves, 0.99) < np.quantile(plain_moves, 0.99)
    assert "p_nudge=0.5" in repr(make_play_policy("RealPushT-v0", nudge_prob=0.5).config)
    with pytest.raises(ValueError, match="p_nudge must be in"):
        PushTPlayConfig(p_nudge=1.5)
    with pytest.raises(ValueError, match="nudge_prob applies to RealPushT-v0"):
        make_play_policy("RealPushCube-v0", nudge_prob=0.5)
    with pytest.raises(ValueError, match="nudge_prob must be in"):
        CollectConfig(nudge_prob=-0.1)
