"""The one environment protocol every adapter implements (its spaces are defined in `r2i.spaces`, re-exported here).

An environment returns, from `reset()` and from every `step(action)`, a dict of NumPy arrays:

* one entry per key of `obs_space`: vectors float32 `(d,)`, images uint8 `(S, S, C)`, S = 64 for every adapter (the
  world model takes any square power of two ≥ 8; the built-in `memory_length` task can draw at 16);
* `reward`: float32 scalar, the reward received on arriving at this observation (0 on the first step);
* `is_first`: bool scalar, True only on the observation returned by `reset()`;
* `is_last`: bool scalar, True on the last observation of an episode (termination *or* truncation);
* `is_terminal`: bool scalar, True only when the episode ended by termination (no bootstrapping). A time-limit
  truncation has `is_last=True, is_terminal=False`;
* any number of keys starting with `log_` (float32 scalars): logged, never fed to the agent.

Actions are always given in the agent's format, a float32 vector of `act_space.size` entries: the concatenated one-hot
encodings of the sub-actions for discrete spaces, values in [-1, 1] for continuous spaces. `ActionSpace.decode` turns
that into the environment's own format.

An episode starts with `reset()` and ends with the step that returns `is_last=True`; `step()` before the first
`reset()` or after the end of an episode is an error (EnvError) until the next `reset()`. The adapters share that
bookkeeping through `Episodic`.

Optional methods: `get_state()`/`set_state(state)` (exact checkpointing, see r2i.envs.driver) and the pair
`advance(action)`/`observe()` (a step without building the observation, then the observation on demand; used by
`action_repeat` to skip rendering/resizing the repeated frames, see r2i.envs.wrappers).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from r2i.errors import EnvError
from r2i.spaces import ActionSpace, Space

__all__ = ["FLAG_KEYS", "ActionSpace", "Env", "Episodic", "Space"]

FLAG_KEYS = ("reward", "is_first", "is_last", "is_terminal")


@runtime_checkable
class Env(Protocol):
    """What the driver, `r2i check-env` and the agent rely on. See the module docstring for the step dict."""

    obs_space: dict[str, Space]
    act_space: ActionSpace

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]: ...

    def step(self, action: np.ndarray) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...


class Episodic:
    """The episode state machine of the module doc, shared by the adapters: no episode until the first `reset()`;
    `reset()` starts one; the step that returns `is_last` ends it.

    An adapter sets `env_id`, calls `_begin_episode()` in `reset()`, `_check_running()` before it steps the env (in
    `step()`, or `advance()`), `_end_episode(is_last)` after, and `_check_started()` before it builds an observation
    in `observe()`. Environments that save their state (`get_state`) save `_done` with it.
    """

    env_id: str
    _done: bool = True  # no episode is running: step() is refused
    _started: bool = False  # reset() has been called at least once: there is an observation

    def _begin_episode(self) -> None:
        self._done = False
        self._started = True

    def _end_episode(self, last: bool) -> None:
        self._done = bool(last)

    def _check_running(self) -> None:
        if self._done:
            raise EnvError(f"{self.env_id}: step() called before reset() or after the episode ended; call reset()")

    def _check_started(self) -> None:
        if not self._started:
            raise EnvError(f"{self.env_id}: observe() called before reset()")
