"""Adapter from any Gymnasium environment to r2i's Env protocol (`gym:<id>`, or a bare id).

Observations are flattened by `r2i.envs.layout` (see there for the exact rules):

* Box float → float32 vector; Box uint8 of shape (H, W) or (H, W, C) → uint8 image (64, 64, C), area/nearest resized;
* Discrete → one-hot; MultiDiscrete → concatenated one-hots; MultiBinary → float32 0/1 vector;
* Dict entries keep their names, Tuple entries are `obs_0`, `obs_1`, …; nesting joins names with `_`; a plain space is
  the key `vector` (or `image`).

Actions (agent format → Gymnasium):

* Discrete(n, start) → one-hot (n,) → int; MultiDiscrete(nvec) → concatenated one-hots → int array shaped like nvec;
* MultiBinary(n) → one 2-way categorical per bit (nvec of 2s) → int8 0/1 array;
* Box → [-1, 1] vector, rescaled linearly to [low, high]; infinite bounds are refused (EnvError naming the fix:
  `gymnasium.wrappers.RescaleAction` or finite bounds) rather than silently clipped.

Text, Graph, Sequence, OneOf and other spaces → EnvError naming the space and what is supported.

`terminated` → `is_last = is_terminal = True`; `truncated` (e.g. TimeLimit) → `is_last = True, is_terminal = False`.
Numeric scalar entries of `info` (bool/int/float) are passed on as float32 `log_<name>` on the steps where the env
reports them (cheap; nested or array entries are skipped).

`advance(action)` / `observe()` split a step into the env step and the observation conversion (resizing), so that
`action_repeat` converts only the observation it returns (see r2i.envs.wrappers).

Seeding: the first `reset()` passes the construction seed to `env.reset(seed=...)`; later resets pass no seed, so the
env's RNG continues and a sequence of episodes is reproducible from the one seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from r2i.envs import layout
from r2i.envs.base import Episodic, Space
from r2i.envs.extras import require
from r2i.errors import EnvError, did_you_mean

SUPPORTED_OBS = "Box, Discrete, MultiDiscrete, MultiBinary, and Dict/Tuple of these"
SUPPORTED_ACT = "Discrete, MultiDiscrete, MultiBinary and Box (with finite bounds)"


def describe_space(space, env_id: str):
    """Gymnasium observation space → `layout` tree (leaves, dicts, tuples)."""
    from gymnasium import spaces

    if isinstance(space, spaces.Dict):
        return {key: describe_space(child, env_id) for key, child in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(describe_space(child, env_id) for child in space.spaces)
    if isinstance(space, spaces.Box):
        return layout.Box(tuple(space.shape), np.dtype(space.dtype))
    if isinstance(space, spaces.Discrete):
        return layout.Discrete(int(space.n), int(space.start))
    if isinstance(space, spaces.MultiDiscrete):
        return layout.MultiDiscrete(np.asarray(space.nvec), np.asarray(getattr(space, "start", 0 * space.nvec)))
    if isinstance(space, spaces.MultiBinary):
        return layout.MultiBinary(tuple(np.atleast_1d(space.n).tolist()))
    raise EnvError(
        f"{env_id}: observation space {type(space).__name__} ({space}) is not supported; "
        f"r2i supports {SUPPORTED_OBS}. Wrap the environment in a gymnasium.ObservationWrapper that maps it to one"
    )


def action_converter(space, env_id: str):
    """Gymnasium action space → (ActionSpace, decode: agent float32 vector → Gymnasium action)."""
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        return layout.discrete_action([space.n], [space.start])
    if isinstance(space, spaces.MultiDiscrete):
        start = getattr(space, "start", None)
        return layout.discrete_action(space.nvec, start, shape=tuple(space.nvec.shape), dtype=space.dtype)
    if isinstance(space, spaces.MultiBinary):
        shape = tuple(np.atleast_1d(space.n).tolist())
        return layout.discrete_action(np.full(int(np.prod(shape)), 2), shape=shape, dtype=np.int8)
    if isinstance(space, spaces.Box):
        return layout.continuous_action(space.low, space.high, env_id, shape=tuple(space.shape), dtype=space.dtype)
    raise EnvError(
        f"{env_id}: action space {type(space).__name__} ({space}) is not supported; r2i supports {SUPPORTED_ACT}. "
        "Wrap the environment in a gymnasium.ActionWrapper that exposes one of these"
    )


def info_logs(info: Any) -> dict:
    """Numeric scalar entries of a Gymnasium info dict → {'log_<name>': float32}."""
    out = {}
    if isinstance(info, dict):
        for key, value in info.items():
            if isinstance(value, (bool, int, float, np.bool_, np.integer, np.floating)):
                out[f"log_{key}"] = np.float32(value)
    return out


class GymnasiumEnv(Episodic):
    """Wraps a constructed `gymnasium.Env` instance. `obs_space`/`act_space` as built by `r2i.envs.layout`."""

    def __init__(self, env, seed: int = 0, env_id: str | None = None, log_info: bool = True):
        self.env_id = env_id or f"gym:{getattr(getattr(env, 'spec', None), 'id', type(env).__name__)}"
        self._env = env
        self._seed = int(seed)
        self._seeded = False
        self._log_info = log_info
        self.obs_space: dict[str, Space]
        self.obs_space, self._convert = layout.observation_converter(
            describe_space(env.observation_space, self.env_id), self.env_id
        )
        self.act_space, self._decode = action_converter(env.action_space, self.env_id)
        self._obs = None  # the latest native observation, converted by observe()

    @property
    def unwrapped(self):
        """The Gymnasium env (for tests and debugging)."""
        return self._env

    def _flags(self, reward, first: bool, last: bool, terminal: bool, info) -> dict:
        result = {
            "reward": np.float32(np.asarray(reward, np.float32).reshape(())),
            "is_first": np.bool_(first),
            "is_last": np.bool_(last),
            "is_terminal": np.bool_(terminal),
        }
        if self._log_info:
            result.update(info_logs(info))
        return result

    def reset(self, seed: int | None = None) -> dict:
        if seed is None and not self._seeded:
            seed = self._seed
        self._seeded = True
        self._obs, info = self._env.reset(seed=seed)
        self._begin_episode()
        flags = self._flags(0.0, True, False, False, info)
        return {**self.observe(), **flags}

    def advance(self, action: np.ndarray) -> dict:
        """One step without converting the observation (for ActionRepeat; `observe()` converts it on demand)."""
        self._check_running()
        self._obs, reward, terminated, truncated, info = self._env.step(self._decode(action))
        terminated, truncated = bool(terminated), bool(truncated)
        self._end_episode(terminated or truncated)
        return self._flags(reward, False, terminated or truncated, terminated, info)

    def observe(self) -> dict:
        """The converted observation of the latest reset/step."""
        self._check_started()
        return self._convert(self._obs)

    def step(self, action: np.ndarray) -> dict:
        flags = self.advance(action)
        return {**self.observe(), **flags}

    def close(self) -> None:
        self._env.close()


def _not_found(gym, name: str, error: Exception) -> EnvError:
    ids = list(gym.registry.keys())
    hint = did_you_mean(name, ids, n=3, show=lambda c: f"gym:{c}")
    return EnvError(
        f"unknown Gymnasium environment '{name}' ({error}).{hint} "
        "Registered ids: python -c 'import gymnasium; gymnasium.pprint_registry()'; "
        "built-in tasks are r2i:memory_length/N and r2i:repeat_previous/K"
    )


def make_gymnasium(name: str, seed: int = 0, log_info: bool = True, **options) -> GymnasiumEnv:
    """`gymnasium.make(name, **options)` wrapped as an r2i Env (options: e.g. max_episode_steps, env kwargs)."""
    env_id = f"gym:{name}"
    gym = require("gymnasium", f"the Gymnasium environment '{name}'", "gymnasium")
    try:
        env = gym.make(name, **options)
    except gym.error.Error as error:  # NameNotFound, VersionNotFound, DependencyNotInstalled, …
        if isinstance(error, (gym.error.NameNotFound, gym.error.NamespaceNotFound, gym.error.VersionNotFound)):
            raise _not_found(gym, name, error) from None
        raise EnvError(f"{env_id}: Gymnasium could not build it: {error}") from None
    except TypeError as error:  # unknown keyword options
        raise EnvError(f"{env_id}: bad option for gymnasium.make ({error})") from None
    try:
        return GymnasiumEnv(env, seed=seed, env_id=env_id, log_info=log_info)
    except BaseException:
        env.close()
        raise
