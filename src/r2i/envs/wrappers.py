"""Wrappers that work on any r2i Env: `ActionRepeat` (the `action_repeat` option of `make_env`).

`make_env(env_id, seed, action_repeat=N)` wraps the env in `ActionRepeat(env, N)` (N = 1, the default, leaves it
unwrapped). One wrapped `step(action)`:

* calls the inner env's `step(action)` up to N times with the same action, stopping early at the first inner step with
  `is_last` (the episode never runs past its end, and the next call must be `reset()`, as usual);
* returns the observation of the last inner step taken, with `reward` = the sum of the inner rewards (float32) and
  `is_last`/`is_terminal` (and `is_first`, always False after a step) of that last inner step, so a termination inside
  the repeat stays a termination and a time-limit truncation stays a truncation;
* passes through the `log_*` keys of the last inner step only (keys reported on earlier inner steps are dropped).

`reset` is passed through unchanged. Other attributes (`env_id`, `unwrapped`, `get_state`/`set_state`, …) are looked
up on the inner env, so the wrapper is transparent to the driver's optional checkpointing (it keeps no state itself).

Skipping the observations of the repeated frames: an adapter may implement the optional pair

* `advance(action) -> dict`: one step, returning only `reward`, `is_first`, `is_last`, `is_terminal` and `log_*`;
* `observe() -> dict`: the observation entries (the keys of `obs_space`) of the current state,

with `step(action) == {**observe(), **advance(action)}` (evaluated in that order: advance first). `ActionRepeat` then
calls `advance` for every inner step and `observe` once at the end, so the frames in between are never rendered or
resized: the Gymnasium adapter (and so Atari, whose 210×160 frames are area-resized to 64×64) and the dm_env adapters
(DMC renders with MuJoCo on every observation) implement it. Results are identical either way.
"""

from __future__ import annotations

import numbers

import numpy as np

from r2i.envs.base import Env
from r2i.errors import ConfigError


def check_action_repeat(value) -> int:
    """The `action_repeat` option as an int >= 1, or ConfigError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise ConfigError(
            f"env option action_repeat must be an integer >= 1 (the number of env steps each action is repeated "
            f"for; 1 = no repeat), got {value!r}"
        )
    return int(value)


class ActionRepeat:
    """Repeat each action `repeat` times, summing rewards and stopping at the end of an episode (see module doc)."""

    def __init__(self, env: Env, repeat: int):
        self._env = env
        self.repeat = check_action_repeat(repeat)
        self.obs_space = env.obs_space
        self.act_space = env.act_space
        self._lazy = callable(getattr(env, "advance", None)) and callable(getattr(env, "observe", None))

    @property
    def env(self) -> Env:
        """The wrapped env."""
        return self._env

    def reset(self, seed: int | None = None) -> dict:
        return self._env.reset(seed=seed)

    def step(self, action: np.ndarray) -> dict:
        inner = self._env.advance if self._lazy else self._env.step
        total = 0.0
        for _ in range(self.repeat):
            result = inner(action)
            total += float(result["reward"])
            if result["is_last"]:
                break
        out = {**self._env.observe(), **result} if self._lazy else dict(result)
        out["reward"] = np.float32(total)
        return out

    def close(self) -> None:
        self._env.close()

    def __getattr__(self, name: str):
        if name.startswith("__") or name == "_env":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        if name in ("advance", "observe"):  # single inner steps: not what one step of this wrapper is
            raise AttributeError(f"{type(self).__name__} has no {name}()")
        return getattr(self._env, name)

    def __repr__(self) -> str:
        return f"ActionRepeat({self._env!r}, {self.repeat})"
