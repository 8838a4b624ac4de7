"""Replay buffer: windows are consecutive steps of one env, sampling is uniform, FIFO eviction, exact resume."""

import numpy as np
import pytest

from r2i.replay import Replay

F32, U8 = np.dtype(np.float32), np.dtype(np.uint8)
SPEC = {
    "vector": ((2,), F32),  # (env id, time index)
    "image": ((4, 4, 3), U8),
    "action": ((2,), F32),
    "reward": ((), F32),
    "is_first": ((), np.dtype(bool)),
    "is_last": ((), np.dtype(bool)),
    "is_terminal": ((), np.dtype(bool)),
}


def make_step(t: int, num_envs: int, episode: int = 5) -> dict[str, np.ndarray]:
    """Step t of every env: vector = (env, t), image filled with (env + 3 t) mod 256, episodes of `episode` steps."""
    env = np.arange(num_envs)
    return {
        "vector": np.stack([env, np.full(num_envs, t)], -1).astype(np.float32),
        "image": np.broadcast_to(((env + 3 * t) % 256).astype(np.uint8)[:, None, None, None], (num_envs, 4, 4, 3)),
        "action": np.stack([np.full(num_envs, t), -env], -1).astype(np.float32),
        "reward": np.full(num_envs, float(t), np.float32),
        "is_first": np.full(num_envs, t % episode == 0),
        "is_last": np.full(num_envs, t % episode == episode - 1),
        "is_terminal": np.zeros(num_envs, bool),
        "log_ignored": np.zeros(num_envs, np.float32),
    }


def filled(capacity=40, num_envs=2, length=4, steps=13, seed=0) -> Replay:
    replay = Replay(SPEC, capacity, num_envs, length, seed=seed)
    for t in range(steps):
        replay.add(make_step(t, num_envs))
    return replay


def test_windows_are_consecutive_steps_of_one_env():
    replay = filled(steps=30)  # per-env capacity 20: wrapped
    batch = replay.sample(64)
    for key, (shape, dtype) in SPEC.items():
        assert batch[key].shape == (64, 4, *shape) and batch[key].dtype == dtype
    env, t = batch["vector"][..., 0], batch["vector"][..., 1]
    assert (env == env[:, :1]).all()
    assert (np.diff(t, axis=1) == 1).all()
    assert (t >= 10).all() and (t <= 29).all()  # only the newest 20 steps per env
    np.testing.assert_array_equal(batch["image"][:, :, 0, 0, 0], (env + 3 * t) % 256)
    np.testing.assert_array_equal(batch["action"][..., 0], t)
    np.testing.assert_array_equal(batch["action"][..., 1], -env)
    np.testing.assert_array_equal(batch["reward"], t)


def test_is_first_forced_on_window_start_only():
    replay = filled(steps=30)
    batch = replay.sample(256)
    t = batch["vector"][..., 1].astype(int)
    assert batch["is_first"][:, 0].all()
    np.testing.assert_array_equal(batch["is_first"][:, 1:], t[:, 1:] % 5 == 0)
    np.testing.assert_array_equal(batch["is_last"], t % 5 == 4)
    assert (t[:, 1:] % 5 == 0).any()  # windows do cross episode boundaries
    again = replay.sample(8)  # the stored flags are not modified by sampling
    assert not again["is_first"][:, 1:][again["vector"][:, 1:, 1] % 5 != 0].any()


def test_seen_start_marks_the_steps_after_the_windows_first_episode_start():
    """`seen_start` is False on the steps of the episode the window's start cut into (their episode began before the
    window) and True from the first stored episode start on, from step 0 when the window starts an episode."""
    replay = filled(steps=30, length=7)  # episodes of 5 steps: every window of 7 holds an episode start
    batch = replay.sample(256)
    t = batch["vector"][..., 1].astype(int)
    first_start = (-t[:, 0]) % 5  # index in the window of its first step with t % 5 == 0
    np.testing.assert_array_equal(batch["seen_start"], np.arange(7)[None, :] >= first_start[:, None])
    assert (first_start == 0).any() and (first_start > 0).any()
    assert batch["seen_start"].dtype == bool


def test_uniform_over_all_valid_windows():
    num_envs, length, steps = 3, 5, 17  # not wrapped: 13 starts per env, 39 windows
    replay = filled(capacity=60, num_envs=num_envs, length=length, steps=steps, seed=1)
    assert replay.num_windows() == num_envs * (steps - length + 1)
    n = 39_000
    batch = replay.sample(n)
    starts = batch["vector"][:, 0, 0].astype(int) * 100 + batch["vector"][:, 0, 1].astype(int)
    expected = {e * 100 + t for e in range(num_envs) for t in range(steps - length + 1)}
    values, counts = np.unique(starts, return_counts=True)
    assert set(values) == expected  # every valid window reachable, nothing else
    mean = n / len(expected)  # 1000 per window, std ~31: a 25% band is > 7 sigma
    assert np.abs(counts - mean).max() < 0.25 * mean


def test_fifo_eviction_keeps_newest_and_never_crosses_wrap():
    replay = filled(capacity=20, num_envs=2, length=3, steps=27)  # per-env 10: holds t = 17..26
    assert len(replay) == 20 and replay.added == 54
    assert replay.num_windows() == 2 * 8
    batch = replay.sample(4000)
    t = batch["vector"][..., 1].astype(int)
    assert set(np.unique(t)) == set(range(17, 27))
    assert (np.diff(t, axis=1) == 1).all()  # never joins t=26 (newest) to t=17 (oldest)
    assert set(np.unique(t[:, 0])) == set(range(17, 25))


def test_sizes_and_ready():
    replay = Replay(SPEC, capacity=41, num_envs=2, length=4)
    assert replay.per_env == 20 and len(replay) == 0 and replay.num_windows() == 0 and not replay.ready(1)
    with pytest.raises(ValueError, match="need 4 per env"):
        replay.sample(1)
    for t in range(4):
        replay.add(make_step(t, 2))
    assert len(replay) == 8 and replay.num_windows() == 2 and replay.ready(2) and not replay.ready(3)
    line = replay.describe()
    assert "\n" not in line and "40" in line and "20" in line and "KiB" in line


def test_estimate_bytes_matches_allocation():
    spec = dict(SPEC, image=((64, 64, 3), U8))
    replay = Replay(spec, capacity=1000, num_envs=4, length=8)
    allocated = sum(a.nbytes for a in replay._data.values())
    estimate = Replay.estimate_bytes(spec, 1000)
    assert abs(estimate - allocated) <= 0.03 * allocated
    assert Replay.estimate_bytes(spec, 1003, num_envs=4) == allocated


def test_state_dict_round_trip_resumes_exactly():
    original = filled(steps=33, seed=3)  # wrapped
    original.sample(5)  # advance the RNG
    state = original.state_dict()
    for key, value in state.items():
        assert isinstance(value, np.ndarray) and "." not in key and value.dtype.kind not in "USO"
    assert state["data_image"].shape == (2, 20, 4, 4, 3)  # only the filled part
    restored = Replay(SPEC, capacity=40, num_envs=2, length=4, seed=99)
    restored.load_state_dict(state)
    assert len(restored) == len(original) and restored.num_windows() == original.num_windows()
    assert restored.added == original.added
    for t in range(33, 41):  # identical after more adds and samples
        a, b = original.sample(7), restored.sample(7)
        for key in SPEC:
            np.testing.assert_array_equal(a[key], b[key])
        original.add(make_step(t, 2))
        restored.add(make_step(t, 2))


def test_state_dict_partial_and_smaller_capacity():
    original = filled(steps=7)
    state = original.state_dict()
    assert state["data_vector"].shape == (2, 7, 2)
    restored = Replay(SPEC, capacity=40, num_envs=2, length=4)
    restored.load_state_dict(state)
    np.testing.assert_array_equal(original.sample(9)["vector"], restored.sample(9)["vector"])
    small = Replay(SPEC, capacity=10, num_envs=2, length=4)  # 5 per env: keeps the newest t = 2..6
    small.load_state_dict(state)
    assert len(small) == 10
    assert set(np.unique(small.sample(200)["vector"][..., 1])) == set(range(2, 7))


def test_restore_into_a_ring_exactly_as_long_as_the_saved_fill():
    """10 unwrapped steps per env from a 20-step ring into a 10-step ring: the ring is full and the next step
    overwrites the oldest one (t = 0), not a position past its end."""
    restored = Replay(SPEC, capacity=20, num_envs=2, length=4)
    restored.load_state_dict(filled(capacity=40, steps=10).state_dict())
    assert len(restored) == 20
    restored.add(make_step(10, 2))
    assert len(restored) == 20
    assert set(np.unique(restored.sample(200)["vector"][..., 1])) == set(range(1, 11))


def test_errors():
    with pytest.raises(ValueError, match=r"replay\.capacity=7 .*num_envs \* length = 2 \* 4"):
        Replay(SPEC, capacity=7, num_envs=2, length=4)
    state = filled().state_dict()
    with pytest.raises(ValueError, match="num_envs=2.*num_envs=4"):
        Replay(SPEC, 40, 4, 4).load_state_dict(state)
    with pytest.raises(ValueError, match="length=4.*length=5"):
        Replay(SPEC, 40, 2, 5).load_state_dict(state)
    with pytest.raises(ValueError, match=r"missing \['extra'\]"):
        Replay(dict(SPEC, extra=((), F32)), 40, 2, 4).load_state_dict(state)
    with pytest.raises(ValueError, match=r"'image'.*uint8\[4, 4, 3\].*uint8\[8, 8, 3\]"):
        Replay(dict(SPEC, image=((8, 8, 3), U8)), 40, 2, 4).load_state_dict(state)
    replay = Replay(SPEC, 40, 2, 4)
    step = make_step(0, 2)
    with pytest.raises(ValueError, match="missing key 'reward'"):
        replay.add({k: v for k, v in step.items() if k != "reward"})
    with pytest.raises(ValueError, match=r"'vector' has shape \(3, 2\)"):
        replay.add(dict(step, vector=np.zeros((3, 2), np.float32)))
    with pytest.raises(ValueError, match="'image' has dtype float32"):
        replay.add(dict(step, image=np.zeros((2, 4, 4, 3), np.float32)))
    assert len(replay) == 0
