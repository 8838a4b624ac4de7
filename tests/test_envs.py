"""The environment layer: built-in memory tasks, Gymnasium/POPGym/bsuite adapters, step checks, and the driver.

Adapter tests skip (with the reason) when their optional package is missing; install them with
pip install -e '.[test,gymnasium,popgym,bsuite]'.
"""

from __future__ import annotations

import os
import re
import signal
import sys

import numpy as np
import pytest

from r2i.envs import (
    EnvSpec,
    EnvWorkerError,
    VectorDriver,
    describe_env,
    discounting_chain_delay,
    make_env,
    make_specs,
    validate_step,
)
from r2i.envs.base import ActionSpace, Space
from r2i.envs.layout import resize_image
from r2i.errors import ConfigError, EnvError, MissingExtraError

try:
    import gymnasium as gym
    from gymnasium import spaces as gs
except ImportError:  # the gymnasium tests below skip
    gym = None


def one_hot(index: int, n: int) -> np.ndarray:
    out = np.zeros(n, np.float32)
    out[index] = 1.0
    return out


def run_episode(env, policy, seed=None):
    """Returns the list of step dicts of one episode (reset included); policy(obs_list) → action index."""
    steps = [env.reset(seed=seed)]
    while not steps[-1]["is_last"]:
        steps.append(env.step(one_hot(policy(steps), env.act_space.nvec[0])))
        assert len(steps) < 10_000
    return steps


# ---------------------------------------------------------------------------------------------------- built-ins


@pytest.mark.parametrize("n", [1, 5])
def test_memory_length_correct_answer_and_timeline(n):
    env = make_env(f"r2i:memory_length/{n}", seed=3)
    assert env.obs_space == {"vector": Space((4,))} and env.act_space == ActionSpace("discrete", nvec=(2,))
    steps = run_episode(env, lambda s: int(np.argmax(s[0]["vector"][2:])))  # answer the cue seen at t=0
    assert len(steps) == n + 2  # N + 1 actions
    vectors = np.stack([s["vector"] for s in steps])
    assert vectors[0, 2:].sum() == 1.0 and np.all(vectors[1:, 2:] == 0)  # cue only visible on the first observation
    assert list(vectors[:, 1]) == [0.0] * n + [1.0, 0.0]  # query flag exactly on observation N
    np.testing.assert_allclose(vectors[: n + 1, 0], (n - np.arange(n + 1)) / n)  # time remaining
    last = steps[-1]
    assert last["reward"] == 1.0 and last["log_success"] == 1.0 and last["is_last"] and last["is_terminal"]
    assert all(s["reward"] == 0.0 and not s["is_last"] for s in steps[:-1])
    assert steps[0]["is_first"] and not any(s["is_first"] for s in steps[1:])


def test_memory_length_wrong_answer_and_misuse():
    env = make_env("r2i:memory_length/3", seed=0)
    steps = run_episode(env, lambda s: 1 - int(np.argmax(s[0]["vector"][2:])))
    assert steps[-1]["reward"] == -1.0 and steps[-1]["log_success"] == 0.0 and steps[-1]["is_terminal"]
    with pytest.raises(EnvError, match="reset"):
        env.step(one_hot(0, 2))
    with pytest.raises(ConfigError, match="N >= 1"):
        make_env("r2i:memory_length/0")
    three = make_env("r2i:memory_length/2", cues=3)
    assert three.obs_space["vector"].shape == (5,) and three.act_space.nvec == (3,)
    assert run_episode(three, lambda s: int(np.argmax(s[0]["vector"][2:])))[-1]["reward"] == 1.0


def test_memory_length_is_deterministic_under_seed():
    def cues(seed):
        env = make_env("r2i:memory_length/1", seed=seed)
        return [int(np.argmax(env.reset()["vector"][2:])) for _ in range(40)]

    assert cues(7) == cues(7)
    assert cues(7) != cues(8)
    assert 0 < sum(cues(7)) < 40  # both cues occur
    env = make_env("r2i:memory_length/1", seed=7)
    assert [int(np.argmax(env.reset(seed=7)["vector"][2:])) for _ in range(3)] == cues(7)[:1] * 3  # reset(seed) reseeds


def test_repeat_previous_returns_and_lengths():
    k, length = 3, 10
    env = make_env(f"r2i:repeat_previous/{k}", seed=1, length=length)
    right = run_episode(env, lambda s: int(np.argmax(s[max(len(s) - 1 - k, 0)]["vector"])))
    wrong = run_episode(env, lambda s: (int(np.argmax(s[max(len(s) - 1 - k, 0)]["vector"])) + 1) % 4)
    for steps, total, success in ((right, 1.0, 1.0), (wrong, -1.0, 0.0)):
        assert len(steps) == length + 1
        rewards = [float(s["reward"]) for s in steps]
        assert rewards[: k + 1] == [0.0] * (k + 1)  # the first K actions are not scored
        assert np.isclose(sum(rewards), total)
        assert steps[-1]["is_last"] and steps[-1]["is_terminal"] and steps[-1]["log_success"] == success
    default = make_env("r2i:repeat_previous/4")
    assert len(run_episode(default, lambda s: 0)) == 65  # default length 64
    with pytest.raises(ConfigError, match="length > K"):
        make_env("r2i:repeat_previous/5", length=5)


# ------------------------------------------------------------------------------------------------ ids and errors


def test_unknown_ids_suggest_what_exists():
    with pytest.raises(EnvError, match="Did you mean 'gym:CartPole-v1'"):
        make_env("gmy:CartPole-v1")
    with pytest.raises(EnvError, match="r2i:memory_length"):
        make_env("r2i:memory_lenght/3")
    with pytest.raises(EnvError, match="integer"):
        make_env("r2i:memory_length/abc")
    with pytest.raises(ConfigError, match="seed"):
        make_env("r2i:memory_length/3", seed="0")


def test_missing_extra_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnasium", None)  # makes `import gymnasium` fail as if it were not installed
    with pytest.raises(MissingExtraError, match=r"pip install 'r2i\[gymnasium\]'"):
        make_env("gym:CartPole-v1")
    monkeypatch.setitem(sys.modules, "bsuite", None)
    with pytest.raises(MissingExtraError, match=r"r2i\[bsuite\]"):
        make_env("bsuite:memory_len/0")
    with pytest.raises(EnvError, match="did you mean r2i:memory_length/3"):
        make_env("memory_length/3")  # a bare id is Gymnasium's, but this one looks like a built-in


def test_validate_step_flags_nan_and_shapes():
    space = {"vector": Space((2,))}
    good = {
        "vector": np.zeros(2, np.float32),
        "reward": np.float32(0),
        "is_first": np.bool_(True),
        "is_last": np.bool_(False),
        "is_terminal": np.bool_(False),
        "log_x": np.float32(1),
    }
    validate_step(good, space, "my-env", 0)
    with pytest.raises(EnvError, match=r"my-env at step 4: observation 'vector' contains NaN"):
        validate_step({**good, "vector": np.array([0, np.nan], np.float32)}, space, "my-env", 4)
    with pytest.raises(EnvError, match="float32\\[3\\] but obs_space says float32\\[2\\]"):
        validate_step({**good, "vector": np.zeros(3, np.float32)}, space, "my-env")
    with pytest.raises(EnvError, match="reward is inf"):
        validate_step({**good, "reward": np.float32(np.inf)}, space, "my-env")
    with pytest.raises(EnvError, match="'reward' must be a float32 scalar"):
        validate_step({**good, "reward": 0.0}, space, "my-env")
    with pytest.raises(EnvError, match="is_terminal=True needs is_last=True"):
        validate_step({**good, "is_first": np.bool_(False), "is_terminal": np.bool_(True)}, space, "my-env")
    with pytest.raises(EnvError, match="unexpected key 'extra'"):
        validate_step({**good, "extra": np.zeros(1)}, space, "my-env")


def test_resize_image_area_and_nearest():
    blocks = np.arange(64 * 64 * 3, dtype=np.int64).reshape(64, 64, 3) % 251
    big = np.repeat(np.repeat(blocks, 2, axis=0), 2, axis=1).astype(np.uint8)  # 128×128, constant 2×2 blocks
    np.testing.assert_array_equal(resize_image(big), blocks)  # area average of constant blocks is exact
    small = (np.arange(32 * 32).reshape(32, 32, 1) % 256).astype(np.uint8)
    np.testing.assert_array_equal(resize_image(small), np.repeat(np.repeat(small, 2, 0), 2, 1))  # nearest ×2
    odd = np.full((210, 160, 3), 77, np.uint8)
    assert resize_image(odd).shape == (64, 64, 3) and np.all(resize_image(odd) == 77)


# ----------------------------------------------------------------------------------------------------- gymnasium

needs_gym = pytest.mark.skipif(gym is None, reason="gymnasium not installed: pip install 'r2i[gymnasium]'")

if gym is not None:

    class ToyEnv(gym.Env):
        """A configurable env: returns `obs_fn(t)` and records the actions it receives; ends after `horizon` steps."""

        def __init__(self, observation_space, action_space, obs_fn, horizon=3, reward_fn=None):
            self.observation_space, self.action_space = observation_space, action_space
            self.obs_fn, self.horizon, self.reward_fn = obs_fn, horizon, reward_fn or (lambda t: 1.0)
            self.actions, self.t = [], 0

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.t = 0
            return self.obs_fn(0), {}

        def step(self, action):
            self.actions.append(action)
            self.t += 1
            return self.obs_fn(self.t), self.reward_fn(self.t), self.t >= self.horizon, False, {"hits": self.t}

    class ExplodingEnv(gym.Env):
        """Raises on its second step: for the driver's error-propagation test (built in a worker process)."""

        observation_space = gs.Box(-1.0, 1.0, (1,), np.float32)
        action_space = gs.Discrete(2)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.t = 0
            return np.zeros(1, np.float32), {}

        def step(self, action):
            self.t += 1
            if self.t == 2:
                raise RuntimeError("boom at step 2")
            return np.zeros(1, np.float32), 0.0, False, False, {}

    def _nan_env():
        box = gs.Box(-1.0, 1.0, (2,), np.float32)
        return ToyEnv(box, gs.Discrete(2), lambda t: np.array([0.0, np.nan if t == 2 else 0.0], np.float32))

    def _counting_env():  # same spaces as r2i:memory_length/N, but logs info["hits"] instead of log_success
        return ToyEnv(gs.Box(0.0, 1.0, (4,), np.float32), gs.Discrete(2), lambda t: np.zeros(4, np.float32))

    _TOY_IDS = (
        ("R2ITest/Exploding-v0", ExplodingEnv),
        ("R2ITest/NaN-v0", _nan_env),
        ("R2ITest/Counting-v0", _counting_env),
    )
    for _id, _entry in _TOY_IDS:
        if _id not in gym.registry:
            gym.register(id=_id, entry_point=_entry, disable_env_checker=True)


@needs_gym
def test_cartpole_matches_gymnasium_and_terminates():
    from r2i.envs.gymnasium_env import GymnasiumEnv

    env = make_env("CartPole-v1", seed=5)  # a bare id means Gymnasium
    assert isinstance(env, GymnasiumEnv)
    assert env.obs_space == {"vector": Space((4,))} and env.act_space.nvec == (2,)
    reference = gym.make("CartPole-v1")
    np.testing.assert_array_equal(env.reset()["vector"], reference.reset(seed=5)[0])
    for _ in range(3):
        result = env.step(one_hot(1, 2))
        np.testing.assert_array_equal(result["vector"], reference.step(1)[0])
    while not result["is_last"]:  # always pushing right topples the pole: termination
        result = env.step(one_hot(1, 2))
    assert result["is_terminal"] and result["reward"] == np.float32(1.0) and result["reward"].dtype == np.float32


@needs_gym
def test_time_limit_is_truncation_not_termination():
    env = make_env("gym:CartPole-v1", seed=0, max_episode_steps=4)
    results = [env.reset()] + [env.step(one_hot(t % 2, 2)) for t in range(4)]  # alternating keeps the pole up
    assert [bool(r["is_last"]) for r in results] == [False] * 4 + [True]
    assert not results[-1]["is_terminal"]


@needs_gym
def test_pendulum_box_actions_are_rescaled():
    env = make_env("gym:Pendulum-v1", seed=0, max_episode_steps=2)
    assert env.act_space.kind == "continuous" and env.act_space.low == (-2.0,) and env.act_space.high == (2.0,)
    env.reset()
    env.step(np.array([1.0], np.float32))
    assert env.unwrapped.unwrapped.last_u == pytest.approx(2.0)  # +1 → high
    assert env.step(np.array([-0.5], np.float32))["is_last"]
    assert env.unwrapped.unwrapped.last_u == pytest.approx(-1.0)  # -0.5 → -1 on [-2, 2]


@needs_gym
def test_dict_tuple_multidiscrete_observations_and_multidiscrete_actions():
    from r2i.envs.gymnasium_env import GymnasiumEnv

    obs_space = gs.Dict(
        {
            "pos": gs.Box(-1.0, 1.0, (2,), np.float32),
            "cell": gs.Discrete(3, start=1),
            "inner": gs.Tuple((gs.MultiDiscrete([2, 3]), gs.MultiBinary(2))),
            "cam": gs.Box(0, 255, (32, 48, 3), np.uint8),
            "reward": gs.Box(-1.0, 1.0, (1,), np.float32),  # clashes with the step flag: renamed obs_reward
        }
    )

    def obs_fn(t):
        return {
            "pos": np.array([0.5, -t], np.float32),
            "cell": 2,
            "inner": (np.array([1, 2]), np.array([1, 0])),
            "cam": np.full((32, 48, 3), t, np.uint8),
            "reward": np.zeros(1, np.float32),
        }

    toy = ToyEnv(obs_space, gs.MultiDiscrete([2, 3]), obs_fn)
    env = GymnasiumEnv(toy, seed=0, env_id="toy")
    assert env.obs_space == {
        "pos": Space((2,)),
        "cell": Space((3,)),
        "inner_0": Space((5,)),
        "inner_1": Space((2,)),
        "cam": Space((64, 64, 3), np.uint8),
        "obs_reward": Space((1,)),
    }
    first = env.reset()
    validate_step(first, env.obs_space, "toy")
    np.testing.assert_array_equal(first["cell"], [0, 1, 0])  # Discrete(3, start=1): value 2 is index 1
    np.testing.assert_array_equal(first["inner_0"], [0, 1, 0, 0, 1])
    np.testing.assert_array_equal(first["inner_1"], [1, 0])
    assert env.act_space.nvec == (2, 3)
    result = env.step(np.concatenate([one_hot(1, 2), one_hot(2, 3)]))
    np.testing.assert_array_equal(toy.actions[-1], [1, 2])
    assert np.all(result["cam"] == 1) and result["log_hits"] == 1.0  # numeric info entries are logged


@needs_gym
def test_tuple_grayscale_and_multibinary_action():
    from r2i.envs.gymnasium_env import GymnasiumEnv

    space = gs.Tuple((gs.Box(0, 255, (100, 80), np.uint8), gs.Box(0, 255, (3, 16, 16), np.uint8)))
    toy = ToyEnv(
        space, gs.MultiBinary(3), lambda t: (np.full((100, 80), 9, np.uint8), np.full((3, 16, 16), 5, np.uint8))
    )
    env = GymnasiumEnv(toy)
    assert env.obs_space == {"obs_0": Space((64, 64, 1), np.uint8), "obs_1": Space((64, 64, 3), np.uint8)}
    assert env.act_space.nvec == (2, 2, 2)
    result = env.reset()
    assert np.all(result["obs_0"] == 9) and np.all(result["obs_1"] == 5)
    env.step(np.concatenate([one_hot(1, 2), one_hot(0, 2), one_hot(1, 2)]))
    np.testing.assert_array_equal(toy.actions[-1], [1, 0, 1])


@needs_gym
def test_unsupported_spaces_give_helpful_errors():
    from r2i.envs.gymnasium_env import GymnasiumEnv

    text = ToyEnv(gs.Text(5), gs.Discrete(2), lambda t: "hi")
    with pytest.raises(EnvError, match=r"observation space Text.*not supported.*Box, Discrete"):
        GymnasiumEnv(text, env_id="texty")
    nested_action = ToyEnv(gs.Discrete(2), gs.Tuple((gs.Discrete(2), gs.Discrete(3))), lambda t: 0)
    with pytest.raises(EnvError, match="action space Tuple"):
        GymnasiumEnv(nested_action)
    unbounded = ToyEnv(gs.Discrete(2), gs.Box(-np.inf, np.inf, (2,), np.float32), lambda t: 0)
    with pytest.raises(EnvError, match="infinite bounds.*RescaleAction"):
        GymnasiumEnv(unbounded)
    with pytest.raises(EnvError, match="Did you mean: gym:CartPole-v1"):
        make_env("gym:CartPol-v1")


@needs_gym
def test_nan_observation_is_reported_with_key_and_step():
    with pytest.raises(EnvError, match=r"gym:R2ITest/NaN-v0 at step 2: observation 'vector' contains NaN"):
        describe_env("gym:R2ITest/NaN-v0", episodes=1)


def test_describe_env_report():
    report = describe_env("r2i:memory_length/4", seed=0, episodes=2)
    assert "vector" in report and "float32[4]" in report and "discrete[2]" in report
    assert report.count(": length 5,") == 2 and "terminated" in report and "log_success" in report


# -------------------------------------------------------------------------------------------------------- popgym


def test_popgym_repeat_previous_easy():
    pytest.importorskip("popgym", reason="popgym not installed: pip install 'r2i[popgym]'")
    env = make_env("popgym:RepeatPreviousEasy", seed=0)
    assert env.obs_space == {"vector": Space((4,))} and env.act_space.nvec == (4,)
    # POPGym's k=4 scores the action chosen on observation i against the card of observation i - 3.
    steps = run_episode(env, lambda s: int(np.argmax(s[max(len(s) - 4, 0)]["vector"])))
    assert len(steps) == 52 and steps[-1]["is_terminal"]
    assert np.isclose(sum(float(s["reward"]) for s in steps), 1.0)  # POPGym's normalised best return
    assert make_env("popgym:AutoencodeEasy").obs_space.keys() == {"obs_0", "obs_1"}  # Tuple observation
    with pytest.raises(EnvError, match="Did you mean: popgym:RepeatPreviousEasy"):
        make_env("popgym:RepeatPrevousEasy")


# -------------------------------------------------------------------------------------------------------- bsuite


def test_bsuite_memory_len():
    pytest.importorskip("bsuite", reason="bsuite not installed: pip install 'r2i[bsuite]'")
    env = make_env("bsuite:memory_len/12", seed=0)  # setting 12 is memory_length 17
    assert env.obs_space == {"vector": Space((3,))} and env.act_space.nvec == (2,)

    def answer(steps):  # the context is shown as ±1 on the first observation
        return int(steps[0]["vector"][2] > 0)

    right = run_episode(env, answer)
    wrong = run_episode(env, lambda s: 1 - answer(s))
    for steps, reward in ((right, 1.0), (wrong, -1.0)):
        assert len(steps) == 19 and steps[-1]["is_last"] and steps[-1]["is_terminal"]
        assert steps[-1]["reward"] == reward and steps[-1]["log_success"] == (reward > 0)
        assert all(s["reward"] == 0 for s in steps[:-1])

    def contexts(seed):
        env = make_env("bsuite:memory_len/0", seed=seed)
        return [float(env.reset()["vector"][2]) for _ in range(30)]

    assert contexts(1) == contexts(1) and contexts(1) != contexts(2)  # r2i's seed reaches bsuite's RNG


def test_bsuite_discounting_chain_and_delay_helper():
    pytest.importorskip("bsuite", reason="bsuite not installed: pip install 'r2i[bsuite]'")
    from r2i.envs.bsuite_env import _load

    for n in range(20):  # the helper agrees with the chain bsuite actually boosts
        raw = _load(f"discounting_chain/{n}", 0, {})
        assert discounting_chain_delay(f"bsuite:discounting_chain/{n}") == raw._reward_timestep[np.argmax(raw._rewards)]
    assert discounting_chain_delay("discounting_chain/3") == 30
    with pytest.raises(EnvError):
        discounting_chain_delay("discounting_chain/20")
    env = make_env("bsuite:discounting_chain/3")
    assert env.act_space.nvec == (5,)
    for action, delay, payout in ((3, 30, 1.1), (0, 1, 1.0)):
        steps = [env.reset()] + [env.step(one_hot(action, 5))]
        while not steps[-1]["is_last"]:
            steps.append(env.step(one_hot(0, 5)))
        rewards = np.array([float(s["reward"]) for s in steps])
        assert len(steps) == 101 and steps[-1]["is_terminal"]
        assert np.flatnonzero(rewards).tolist() == [delay] and np.isclose(rewards[delay], payout)
        assert steps[-1]["log_chain_delay"] == delay and steps[-1]["log_bonus_delay"] == 30
        assert steps[-1]["log_bonus_chain"] == steps[-1]["log_success"] == (delay == 30)


# ------------------------------------------------------------------------------------------- episode state machine


@pytest.mark.parametrize(
    "env_id, options, package",
    [("r2i:memory_length/1", {}, None), ("gym:CartPole-v1", {"max_episode_steps": 2}, "gymnasium"),
     ("bsuite:memory_len/0", {}, "bsuite")],
)
def test_every_adapter_refuses_to_step_outside_an_episode(env_id, options, package):
    """The built-ins, the Gymnasium adapter and the dm_env adapters share one episode state machine (Episodic): the
    same errors before the first reset() and after the step that ended the episode, and a new episode after reset()."""
    if package is not None:
        pytest.importorskip(package, reason=f"{package} not installed: pip install 'r2i[{package}]'")
    env = make_env(env_id, seed=0, **options)
    action = one_hot(0, env.act_space.size)
    refused = re.escape(f"{env_id}: step() called before reset() or after the episode ended; call reset()")
    if hasattr(env, "observe"):
        with pytest.raises(EnvError, match=re.escape(f"{env_id}: observe() called before reset()")):
            env.observe()
    with pytest.raises(EnvError, match=refused):
        env.step(action)
    for _ in range(2):
        steps = [env.reset()]
        while not steps[-1]["is_last"]:
            steps.append(env.step(action))
        assert 2 <= len(steps) <= 10
        if hasattr(env, "observe"):  # the last observation stays readable after the end
            for key in env.obs_space:
                np.testing.assert_array_equal(env.observe()[key], steps[-1][key])
        with pytest.raises(EnvError, match=refused):
            env.step(action)
    env.close()


# -------------------------------------------------------------------------------------------------------- driver


def _drive(specs, parallel, steps, seed=0):
    rng = np.random.default_rng(seed)
    with VectorDriver(specs, parallel=parallel) as driver:
        out = [driver.reset()]
        for _ in range(steps):
            actions = np.stack([driver.act_space.sample(rng) for _ in range(driver.num_envs)])
            out.append(driver.step(actions))
    return out


def test_driver_parallel_equals_in_process_and_seeds_differ():
    specs = make_specs("r2i:repeat_previous/1", 3, seed=0, length=6)
    assert len({s.seed for s in specs}) == 3
    parallel = _drive(specs, True, 15)
    local = _drive(specs, False, 15)
    for a, b in zip(parallel, local):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    cards = np.stack([b["vector"] for b in local])  # (T, N, cards)
    assert cards.shape == (16, 3, 4) and local[0]["reward"].dtype == np.float32
    assert not np.array_equal(cards[:, 0], cards[:, 1]) and not np.array_equal(cards[:, 1], cards[:, 2])


@pytest.mark.parametrize("parallel", [False, True])
def test_driver_step_async_then_wait_equals_step(parallel):
    """The training loop sends the actions, runs its updates, then collects: the same results as `step`, and a
    second send before the collect, or a reset or state call in between, is refused (the replies would mix)."""
    specs = make_specs("r2i:repeat_previous/1", 2, seed=0, length=4)
    reference = _drive(specs, False, 9)
    rng = np.random.default_rng(0)
    with VectorDriver(specs, parallel=parallel) as driver:
        out = [driver.reset()]
        for _ in range(9):
            driver.step_async(np.stack([driver.act_space.sample(rng) for _ in range(driver.num_envs)]))
            out.append(driver.step_wait())
        for a, b in zip(out, reference):
            assert a.keys() == b.keys()
            for key in a:
                np.testing.assert_array_equal(a[key], b[key])
        with pytest.raises(EnvError, match="without a step_async"):
            driver.step_wait()
        driver.step_async(np.zeros((2, driver.act_space.size), np.float32))
        for call in (lambda: driver.step_async(np.zeros((2, driver.act_space.size), np.float32)), driver.reset,
                     driver.get_state):
            with pytest.raises(EnvError, match="call step_wait first"):
                call()
        assert driver.step_wait()["reward"].shape == (2,)


def test_driver_auto_reset_loses_no_step():
    specs = [EnvSpec("r2i:memory_length/2", seed) for seed in (0, 1)]
    out = _drive(specs, False, 9)
    first = np.stack([b["is_first"] for b in out])
    last = np.stack([b["is_last"] for b in out])
    # episodes are 3 actions long: last at t = 3, 7; the following call is the reset (t = 4, 8), never a step
    assert last[:, 0].nonzero()[0].tolist() == [3, 7] and first[:, 0].nonzero()[0].tolist() == [0, 4, 8]
    for t in (4, 8):
        assert np.all(out[t]["reward"] == 0) and np.all(out[t]["vector"][:, 0] == 1.0)  # a fresh episode
    assert np.all(np.stack([b["log_success"] for b in out])[~last] == 0)


def test_driver_step_right_after_construction_resets():
    with VectorDriver([EnvSpec("r2i:memory_length/1", 0)], parallel=False) as driver:
        assert driver.step(np.zeros((1, 2), np.float32))["is_first"].all()
        with pytest.raises(ValueError, match="shape"):
            driver.step(np.zeros((2, 2), np.float32))


def test_driver_worker_errors_name_the_env():
    with pytest.raises(ConfigError, match=r"env 1 \(r2i:memory_length/0, seed 5\).*N >= 1"):
        VectorDriver([EnvSpec("r2i:memory_length/1", 0), EnvSpec("r2i:memory_length/0", 5)], parallel=True)
    with pytest.raises(ConfigError, match="picklable"):
        VectorDriver([EnvSpec("r2i:memory_length/1", 0, {"cues": lambda: 2})], parallel=True)
    with VectorDriver([EnvSpec("r2i:memory_length/1", 0), EnvSpec("r2i:memory_length/1", 1)]) as driver:
        driver.reset()
        os.kill(driver._handles[1].process.pid, signal.SIGKILL)
        with pytest.raises(EnvError, match=r"worker process of env 1 \(r2i:memory_length/1, seed 1\) died"):
            driver.step(np.zeros((2, 2), np.float32))


def test_driver_workers_outlive_a_sigterm_to_the_process_group():
    """`timeout`, a terminal or a batch scheduler signal the whole process group: the workers must still answer, so
    that the training process can write its checkpoint (which reads their env states) before it closes them."""
    with VectorDriver([EnvSpec("r2i:memory_length/1", 0), EnvSpec("r2i:memory_length/1", 1)]) as driver:
        driver.reset()
        for handle in driver._handles:
            os.kill(handle.process.pid, signal.SIGTERM)
        assert driver.step(np.zeros((2, 2), np.float32))["reward"].shape == (2,)
        driver.get_state()  # every worker answers (a dead one raises EnvError)
        processes = [handle.process for handle in driver._handles]
    assert not any(process.is_alive() for process in processes)


@needs_gym
def test_driver_log_keys_missing_in_some_envs_are_nan():
    specs = [EnvSpec("r2i:memory_length/1", 0), EnvSpec("gym:R2ITest/Counting-v0", 0)]
    with VectorDriver(specs, parallel=False) as driver:
        first = driver.reset()
        second = driver.step(np.zeros((2, 2), np.float32))
    np.testing.assert_array_equal(first["log_success"], [0.0, np.nan])
    assert "log_hits" not in first  # no env reported it at this step
    np.testing.assert_array_equal(second["log_success"], [0.0, np.nan])
    np.testing.assert_array_equal(second["log_hits"], [np.nan, 1.0])


@needs_gym
def test_driver_worker_exception_during_step():
    # Gymnasium's "module:id" form makes the worker import this test module, which registers ExplodingEnv.
    spec = EnvSpec(f"gym:{__name__}:R2ITest/Exploding-v0", 0)
    with VectorDriver([spec], parallel=True) as driver:
        driver.reset()
        driver.step(np.zeros((1, 2), np.float32))
        with pytest.raises(EnvWorkerError, match=r"R2ITest/Exploding-v0.*RuntimeError: boom at step 2") as info:
            driver.step(np.zeros((1, 2), np.float32))
        assert "raise RuntimeError" in info.value.remote_traceback  # the traceback from inside the worker


@pytest.mark.parametrize("size", [64, 16])
def test_memory_length_drawn_as_images(size):
    env = make_env("r2i:memory_length/2", seed=5, image=True, size=size)
    assert env.obs_space == {"image": Space((size, size, 3), np.uint8)}
    vector_env = make_env("r2i:memory_length/2", seed=5)
    cue = int(np.argmax(vector_env.reset()["vector"][2:]))
    steps = run_episode(env, lambda s: cue)  # the same seed draws the same cue
    images = np.stack([s["image"] for s in steps])
    assert images.shape == (4, size, size, 3) and images.dtype == np.uint8
    middle = images[:, size // 2, size // 2]
    np.testing.assert_array_equal(middle[0], env.CUE_COLOURS[cue])  # the cue square, on the first frame only
    assert np.all(middle[1:] == 0)
    band = images[:, -1, 0]
    assert [bool(b.any()) for b in band] == [False, False, True, False]  # the query band on observation N
    bar = (images[:, 0, :, 0] > 0).sum(1)
    assert list(bar) == [size, size // 2, 0, 0]  # time remaining along the top row
    assert steps[-1]["reward"] == 1.0


def test_memory_length_image_size_errors():
    with pytest.raises(ConfigError, match="power of two >= 16"):
        make_env("r2i:memory_length/2", image=True, size=24)
    with pytest.raises(ConfigError, match="add image: true"):
        make_env("r2i:memory_length/2", size=16)
