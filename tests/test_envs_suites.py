"""`action_repeat` (no extra needed) and the DeepMind Control, Memory Maze and Atari adapters.

The suite tests step a real environment a few times and skip (with the reason) when the suite's package is missing
(pip install -e '.[test,dmc,memorymaze,atari]') or, for the MuJoCo suites, when MuJoCo cannot render on this machine
(set MUJOCO_GL, see r2i.envs.dmenv). The missing-extra errors are tested without the packages.
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from r2i.envs import EnvSpec, VectorDriver, make_env, make_specs, validate_step
from r2i.envs.base import ActionSpace, Space
from r2i.envs.wrappers import ActionRepeat
from r2i.errors import ConfigError, EnvError, MissingExtraError


def one_hot(index: int, n: int) -> np.ndarray:
    out = np.zeros(n, np.float32)
    out[index] = 1.0
    return out


def run_validated(env, env_id: str, steps: int, rng) -> list[dict]:
    """reset + `steps` random steps (fewer if the episode ends), every step dict validated."""
    out = [env.reset()]
    validate_step(out[0], env.obs_space, env_id, 0)
    for t in range(1, steps + 1):
        out.append(env.step(env.act_space.sample(rng)))
        validate_step(out[-1], env.obs_space, env_id, t)
        if out[-1]["is_last"]:
            break
    return out


# ------------------------------------------------------------------------------------------------- action_repeat


class ScriptedEnv:
    """Reward t on step t, log_t = t, ends after `horizon` steps (terminal or truncated). With `lazy=True` it also has
    the optional advance/observe pair and counts how often it builds an observation."""

    def __init__(self, horizon=5, terminal=True, lazy=False):
        self.obs_space = {"vector": Space((1,))}
        self.act_space = ActionSpace("discrete", nvec=(2,))
        self.horizon, self.terminal, self.observed, self.t = horizon, terminal, 0, 0
        self.actions = []
        if lazy:
            self.advance, self.observe = self._advance, self._observe

    def _observe(self):
        self.observed += 1
        return {"vector": np.array([self.t], np.float32)}

    def _flags(self, first=False):
        last = self.t >= self.horizon
        return {
            "reward": np.float32(self.t),
            "is_first": np.bool_(first),
            "is_last": np.bool_(last),
            "is_terminal": np.bool_(last and self.terminal),
            "log_t": np.float32(self.t),
        }

    def reset(self, seed=None):
        self.t = 0
        return {**self._observe(), **self._flags(first=True)}

    def _advance(self, action):
        self.actions.append(int(np.argmax(action)))
        self.t += 1
        return self._flags()

    def step(self, action):
        flags = self._advance(action)
        return {**self._observe(), **flags}

    def close(self):
        pass


@pytest.mark.parametrize("lazy", [False, True])
@pytest.mark.parametrize("terminal", [True, False])
def test_action_repeat_sums_rewards_and_stops_at_last(lazy, terminal):
    inner = ScriptedEnv(horizon=5, terminal=terminal, lazy=lazy)
    env = ActionRepeat(inner, 2)
    first = env.reset()
    assert first["is_first"] and first["reward"] == 0.0
    steps = [env.step(one_hot(1, 2)) for _ in range(3)]  # inner steps 1+2, 3+4, then 5 (the episode ends: no 6th)
    assert [float(s["reward"]) for s in steps] == [3.0, 7.0, 5.0]
    assert [float(s["vector"][0]) for s in steps] == [2.0, 4.0, 5.0]  # the observation of the last inner step
    assert [float(s["log_t"]) for s in steps] == [2.0, 4.0, 5.0]  # log keys of the last inner step
    assert [bool(s["is_last"]) for s in steps] == [False, False, True]
    assert bool(steps[-1]["is_terminal"]) == terminal and not any(s["is_first"] for s in steps)
    assert inner.actions == [1] * 5
    for t, step in enumerate(steps, 1):
        validate_step(step, env.obs_space, "scripted", t)
        assert step["reward"].dtype == np.float32
    if lazy:  # one observation per reset and per wrapped step, none for the skipped frames
        assert inner.observed == 1 + 3


def test_action_repeat_of_a_builtin_matches_the_unwrapped_env():
    k, length, repeat = 2, 10, 4
    plain = make_env(f"r2i:repeat_previous/{k}", seed=3, length=length)
    wrapped = make_env(f"r2i:repeat_previous/{k}", seed=3, length=length, action_repeat=repeat)
    assert isinstance(wrapped, ActionRepeat) and wrapped.repeat == repeat
    assert wrapped.obs_space == plain.obs_space and wrapped.act_space == plain.act_space
    action = one_hot(0, 4)
    reference = [plain.reset()] + [plain.step(action) for _ in range(length)]
    results = [wrapped.reset()]
    while not results[-1]["is_last"]:
        results.append(wrapped.step(action))
    assert len(results) == 1 + 3  # 4 + 4 + 2 inner steps: the last repeat stops at the end of the episode
    for result, end, start in zip(results[1:], (4, 8, 10), (0, 4, 8)):
        np.testing.assert_array_equal(result["vector"], reference[end]["vector"])
        expected = sum(float(r["reward"]) for r in reference[start + 1 : end + 1])
        assert np.isclose(float(result["reward"]), expected)
        assert result["log_success"] == reference[end]["log_success"]
    assert results[-1]["is_terminal"] and results[-1]["is_last"]
    with pytest.raises(EnvError, match="reset"):
        wrapped.step(action)
    assert callable(wrapped.get_state)  # optional protocol methods of the inner env stay reachable
    assert make_env("r2i:memory_length/2", action_repeat=1).__class__.__name__ == "MemoryLength"  # 1: no wrapper


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "4", None])
def test_action_repeat_must_be_a_positive_integer(bad):
    with pytest.raises(ConfigError, match="action_repeat must be an integer >= 1"):
        make_env("r2i:memory_length/3", action_repeat=bad)


def test_action_repeat_in_the_driver_and_specs():
    specs = make_specs("r2i:memory_length/2", 2, seed=0, action_repeat=2)
    assert all(s.options == {"action_repeat": 2} for s in specs)
    with VectorDriver(specs, parallel=False) as driver:
        first = driver.reset()
        second = driver.step(np.zeros((2, 2), np.float32))  # 2 of the 3 actions of the episode
        third = driver.step(np.zeros((2, 2), np.float32))  # the third ends it (the repeat stops there)
    assert first["is_first"].all() and not second["is_last"].any() and third["is_last"].all()
    assert EnvSpec("r2i:memory_length/2", 0, {"action_repeat": 3}).make().repeat == 3


# -------------------------------------------------------------------------------------------- ids without extras


def _block(monkeypatch, *packages):
    """Make `import <package>` (and its submodules) fail as if the packages were not installed."""
    for package in packages:
        for name in [n for n in sys.modules if n.startswith(package + ".")]:
            monkeypatch.setitem(sys.modules, name, None)
        monkeypatch.setitem(sys.modules, package, None)


def test_missing_suite_extras_name_the_install_command(monkeypatch):
    _block(monkeypatch, "dm_control", "memory_maze", "ale_py")
    with pytest.raises(MissingExtraError, match=r"'dm-control': pip install 'r2i\[dmc\]'"):
        make_env("dmc:walker-walk")
    with pytest.raises(MissingExtraError, match=r"pip install 'r2i\[memorymaze\]'"):
        make_env("memorymaze:9x9")
    with pytest.raises(MissingExtraError, match=r"'ale-py': pip install 'r2i\[atari\]'"):
        make_env("atari:Pong", action_repeat=4)
    with pytest.raises(EnvError, match="Did you mean: memorymaze:9x9"):
        make_env("memorymaze:9x8")  # sizes are checked before importing anything
    with pytest.raises(EnvError, match="Did you mean 'dmc:walker-walk'"):
        make_env("dcm:walker-walk")


def test_memory_maze_without_dm_control_names_the_extra(monkeypatch):
    _block(monkeypatch, "dm_control")
    with pytest.raises(MissingExtraError, match=r"'dm-control': pip install 'r2i\[memorymaze\]'"):
        make_env("memorymaze:11x11")


def test_dm_env_timestep_flags():
    dm_env = pytest.importorskip("dm_env", reason="dm-env not installed: pip install 'r2i[dmc]'")
    from r2i.envs.dmenv import timestep_flags

    obs = np.zeros(1)
    cases = (
        (dm_env.restart(obs), (0.0, True, False, False)),
        (dm_env.transition(0.5, obs), (0.5, False, False, False)),
        (dm_env.termination(1.0, obs), (1.0, False, True, True)),
        (dm_env.truncation(2.0, obs), (2.0, False, True, False)),  # a time limit: discount 1
    )
    for timestep, (reward, first, last, terminal) in cases:
        flags = timestep_flags(timestep)
        assert flags["reward"] == np.float32(reward) and flags["reward"].dtype == np.float32
        assert (flags["is_first"], flags["is_last"], flags["is_terminal"]) == (first, last, terminal)


# ------------------------------------------------------------------------------------------------------------ dmc


def _needs_mujoco_rendering():
    pytest.importorskip("dm_control", reason="dm-control not installed: pip install 'r2i[dmc]'")
    from r2i.envs.dmenv import rendering_problem

    problem = rendering_problem()
    if problem is not None:
        pytest.skip(f"MuJoCo cannot render here: {problem}")


def test_dmc_pixels_truncation_and_action_repeat():
    _needs_mujoco_rendering()
    env = make_env("dmc:cartpole-swingup", seed=0, action_repeat=600)
    assert env.obs_space == {"image": Space((64, 64, 3), np.uint8)}
    assert env.act_space == ActionSpace("continuous", dims=1, low=(-1.0,), high=(1.0,))
    steps = run_validated(env, "dmc:cartpole-swingup", 3, np.random.default_rng(0))
    # 1000 control steps per episode: 600 frames, then the remaining 400 (the repeat stops there), by time limit
    assert len(steps) == 3 and not steps[1]["is_last"] and steps[2]["is_last"] and not steps[2]["is_terminal"]
    assert 0.0 <= float(steps[1]["reward"]) <= 600.0 and steps[2]["image"].std() > 0
    env.close()


def test_dmc_repeat_renders_the_same_frames_and_options():
    _needs_mujoco_rendering()
    rng = np.random.default_rng(1)
    plain = make_env("dmc:walker-walk", seed=4, proprio=True)
    wrapped = make_env("dmc:walker-walk", seed=4, proprio=True, action_repeat=2)
    assert plain.obs_space == {"image": Space((64, 64, 3), np.uint8), "proprio": Space((24,))}
    a, b = plain.reset(), wrapped.reset()
    np.testing.assert_array_equal(a["image"], b["image"])
    action = wrapped.act_space.sample(rng)
    r1, r2 = plain.step(action), plain.step(action)
    combined = wrapped.step(action)
    validate_step(combined, wrapped.obs_space, "dmc:walker-walk", 1)
    np.testing.assert_array_equal(combined["image"], r2["image"])  # only the last frame is rendered, identically
    np.testing.assert_allclose(combined["proprio"], r2["proprio"])
    assert np.isclose(float(combined["reward"]), float(r1["reward"]) + float(r2["reward"]), atol=1e-6)
    other = make_env("dmc:walker-walk", seed=5)
    assert not np.array_equal(other.reset()["image"], a["image"])  # the seed reaches the task's RNG
    assert np.array_equal(other.reset(seed=4)["image"], a["image"])  # reset(seed) reseeds in place
    for env in (plain, wrapped, other):
        env.close()
    with pytest.raises(EnvError, match="Did you mean: dmc:walker-walk"):
        make_env("dmc:walker-wlak")
    with pytest.raises(EnvError, match="unknown option"):
        make_env("dmc:walker-walk", size=64)
    assert make_env("dmc:cup-catch").env_id == "dmc:cup-catch"  # DreamerV3's name for ball_in_cup


# ----------------------------------------------------------------------------------------------------- memorymaze


def test_memory_maze_steps():
    if importlib.util.find_spec("memory_maze") is None:  # not importorskip: its __init__ needs the old gym package
        pytest.skip("memory-maze not installed: pip install 'r2i[memorymaze]'")
    _needs_mujoco_rendering()
    env = make_env("memorymaze:9x9", seed=0)
    assert env.obs_space == {"image": Space((64, 64, 3), np.uint8)}
    assert env.act_space == ActionSpace("discrete", nvec=(6,))
    steps = run_validated(env, "memorymaze:9x9", 4, np.random.default_rng(0))
    assert len(steps) == 5 and not steps[-1]["is_last"]
    assert steps[-1]["image"].std() > 0  # a rendered view, not a blank frame
    env.close()


# ---------------------------------------------------------------------------------------------------------- atari


def _needs_ale():
    pytest.importorskip("gymnasium", reason="gymnasium not installed: pip install 'r2i[atari]'")
    pytest.importorskip("ale_py", reason="ale-py not installed: pip install 'r2i[atari]'")


def test_atari_protocol_and_frames():
    _needs_ale()
    env = make_env("atari:Pong", seed=0, action_repeat=4)
    assert env.obs_space == {"image": Space((64, 64, 3), np.uint8)} and env.act_space.nvec == (6,)
    ale = env.unwrapped.unwrapped.ale  # GymnasiumEnv → gymnasium wrappers → AtariEnv → ALEInterface
    assert ale.getFloat("repeat_action_probability") == pytest.approx(0.25)  # sticky actions
    steps = run_validated(env, "atari:Pong", 3, np.random.default_rng(0))
    # frameskip 1 in ALE × action_repeat 4 = 4 frames per agent step
    assert [float(s["log_episode_frame_number"]) for s in steps] == [0.0, 4.0, 8.0, 12.0]
    env.close()
    short = make_env("atari:pong", seed=0, action_repeat=4, max_num_frames_per_episode=40)  # snake case id
    results = run_validated(short, "atari:pong", 20, np.random.default_rng(0))
    assert len(results) == 11 and results[-1]["is_last"] and not results[-1]["is_terminal"]  # 108k-frame-style cap
    short.close()
    with pytest.raises(EnvError, match="Did you mean: atari:Pong"):
        make_env("atari:Pongg")


def test_atari_life_loss_is_not_terminal():
    _needs_ale()
    env = make_env("atari:Breakout", seed=0, action_repeat=4, repeat_action_probability=0.0)
    first = env.reset()
    lives = float(first["log_lives"])
    for _ in range(300):  # FIRE launches the ball; nobody moves the paddle, so a life is soon lost
        result = env.step(one_hot(1, 4))
        validate_step(result, env.obs_space, "atari:Breakout")
        if float(result["log_lives"]) < lives:
            break
    assert float(result["log_lives"]) == lives - 1 and not result["is_last"] and not result["is_terminal"]
    env.close()


def test_atari100k_protocol_options():
    """noops: random no-op starts in [0, N]; max_pool: each observation ≥ the plain frame (max with the previous one)."""
    _needs_ale()
    protocol = dict(action_repeat=4, repeat_action_probability=0.0)
    pooled = make_env("atari:Pong", seed=3, noops=30, max_pool=True, **protocol)
    plain = make_env("atari:Pong", seed=3, noops=30, **protocol)
    starts = []
    for _ in range(4):
        a, b = pooled.reset(), plain.reset()
        assert a["log_episode_frame_number"] == b["log_episode_frame_number"]  # same seed: same no-op draws
        starts.append(float(a["log_episode_frame_number"]))
        np.testing.assert_array_equal(a["image"], b["image"])  # after a reset the previous frame is the frame
    assert all(0 <= s <= 30 for s in starts) and len(set(starts)) > 1, starts
    differ = False
    for t in range(40):
        a, b = pooled.step(one_hot(t % 6, 6)), plain.step(one_hot(t % 6, 6))
        assert (a["image"] >= b["image"]).all()  # area resize averages, so the max of two frames stays ≥
        differ |= bool((a["image"] != b["image"]).any())
    assert differ
    pooled.close(), plain.close()
    with pytest.raises(EnvError, match="option noops must be an integer >= 0"):
        make_env("atari:Pong", noops=-1)
