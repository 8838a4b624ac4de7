"""The one environment protocol every adapter implements (its spaces are defined in `r2i.spaces`, re-exported here).

An environment returns, from `reset()` and from every `step(action)`, a dict of NumPy arrays:

* one entry per key of `obs_space`: vectors float32 `(d,)`, images uint8 `(64, 64, C)`;
* `reward`: float32 scalar, the reward received on arriving at this observation (0 on the first step);
* `is_first`: bool scalar, True only on the observation returned by `reset()`;
* `is_last`: bool scalar, True on the last observation of an episode (termination *or* truncation);
* `is_terminal`: bool scalar, True only when the episode ended by termination (no bootstrapping). A time-limit
  truncation has `is_last=True, is_terminal=False`;
* any number of keys starting with `log_` (float32 scalars): logged, never fed to the agent.

Actions are always given in the agent's format, a float32 vector of `act_space.size` entries: the concatenated one-hot
encodings of the sub-actions for discrete spaces, values in [-1, 1] for continuous spaces. `ActionSpace.decode` turns
that into the environment's own format.

Optional methods: `get_state()`/`set_state(state)` (exact checkpointing, see r2i.envs.driver) and the pair
`advance(action)`/`observe()` (a step without building the observation, then the observation on demand; used by
`action_repeat` to skip rendering/resizing the repeated frames, see r2i.envs.wrappers).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from r2i.spaces import ActionSpace, Space

__all__ = ["FLAG_KEYS", "ActionSpace", "Env", "Space"]

FLAG_KEYS = ("reward", "is_first", "is_last", "is_terminal")


@runtime_checkable
class Env(Protocol):
    """What the driver, `r2i check-env` and the agent rely on. See the module docstring for the step dict."""

    obs_space: dict[str, Space]
    act_space: ActionSpace

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]: ...

    def step(self, action: np.ndarray) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...
