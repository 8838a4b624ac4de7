"""Checks that an environment keeps the Env protocol (`r2i check-env ID` reports them, see r2i.envs.describe).

`validate_spaces` checks the declared spaces once; `validate_step` checks every step dict (cheap: a few dict look-ups
and one `isfinite` per float array), so a broken env fails at the step where it breaks, with the env id, the key, the
step and the fix in the message, instead of as a NaN loss much later.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from r2i.envs.base import FLAG_KEYS, ActionSpace, Space
from r2i.errors import EnvError


def _where(env_id: str, step: int | None) -> str:
    return f"{env_id}" if step is None else f"{env_id} at step {step}"


def validate_spaces(obs_space: Mapping, act_space, env_id: str) -> None:
    """Raise EnvError unless obs_space is {key: Space} with float32 vectors (d,) / uint8 images (H, W, C) and
    act_space is an ActionSpace."""
    if not isinstance(obs_space, Mapping) or not obs_space:
        raise EnvError(f"{env_id}: obs_space must be a non-empty dict of r2i.envs.Space, got {obs_space!r}")
    for key, space in obs_space.items():
        if not isinstance(space, Space):
            raise EnvError(f"{env_id}: obs_space['{key}'] must be an r2i.envs.Space, got {type(space).__name__}")
        if key in FLAG_KEYS or str(key).startswith("log_"):
            raise EnvError(f"{env_id}: observation key '{key}' is reserved for the step flags/logs; rename it")
        vector = len(space.shape) == 1 and space.dtype == np.float32
        image = len(space.shape) == 3 and space.dtype == np.uint8
        if not (vector or image):
            raise EnvError(
                f"{env_id}: observation '{key}' is {space}; r2i feeds float32 vectors (d,) and uint8 images "
                "(H, W, C) to the agent: flatten other arrays into a vector"
            )
    if not isinstance(act_space, ActionSpace):
        raise EnvError(f"{env_id}: act_space must be an r2i.envs.ActionSpace, got {type(act_space).__name__}")


def _is_scalar(value, dtype) -> bool:
    array = np.asarray(value)
    return array.shape == () and array.dtype == dtype


def validate_step(obs: Mapping, obs_space: Mapping, env_id: str, step: int | None = None) -> None:
    """Raise EnvError unless `obs` is a valid step dict for `obs_space` (see r2i.envs.base).

    Checks: every obs_space key present with its exact shape and dtype; no unknown keys; `reward` a finite float32
    scalar; `is_first`/`is_last`/`is_terminal` bool scalars with is_terminal ⇒ is_last and not both first and last;
    float observations finite; `log_*` numeric scalars. `step` (index in the episode) only goes into messages.
    """
    where = _where(env_id, step)
    for key, space in obs_space.items():
        if key not in obs:
            raise EnvError(f"{where}: the step dict has no '{key}'; the env must return every key of its obs_space")
        value = obs[key]
        if not isinstance(value, np.ndarray) or value.shape != space.shape or value.dtype != space.dtype:
            got = f"{value.dtype.name}{list(value.shape)}" if isinstance(value, np.ndarray) else type(value).__name__
            raise EnvError(
                f"{where}: observation '{key}' is {got} but obs_space says {space}; "
                "the env must return arrays of exactly the declared shape and dtype"
            )
        if space.dtype.kind == "f" and not np.all(np.isfinite(value)):
            bad = "NaN" if np.any(np.isnan(value)) else "inf"
            raise EnvError(
                f"{where}: observation '{key}' contains {bad}; fix the environment, or replace non-finite values "
                "in a wrapper (e.g. gymnasium.wrappers.TransformObservation with np.nan_to_num) before training"
            )
    for key in FLAG_KEYS:
        if key not in obs:
            raise EnvError(f"{where}: the step dict has no '{key}'; every step must return {', '.join(FLAG_KEYS)}")
    if not _is_scalar(obs["reward"], np.float32):
        raise EnvError(
            f"{where}: 'reward' must be a float32 scalar, got {np.asarray(obs['reward']).dtype.name}"
            f"{list(np.shape(obs['reward']))}"
        )
    if not np.isfinite(obs["reward"]):
        raise EnvError(f"{where}: reward is {float(obs['reward'])}; the environment must return finite rewards")
    for key in ("is_first", "is_last", "is_terminal"):
        if not _is_scalar(obs[key], np.bool_):
            raise EnvError(f"{where}: '{key}' must be a bool scalar, got {obs[key]!r}")
    if obs["is_terminal"] and not obs["is_last"]:
        raise EnvError(f"{where}: is_terminal=True needs is_last=True (termination ends the episode)")
    if obs["is_first"] and obs["is_last"]:
        raise EnvError(f"{where}: an observation cannot be both the first and the last of an episode")
    for key, value in obs.items():
        if key in obs_space or key in FLAG_KEYS:
            continue
        if not str(key).startswith("log_"):
            raise EnvError(f"{where}: unexpected key '{key}'; declare it in obs_space or name it log_{key}")
        array = np.asarray(value)
        if array.shape != () or array.dtype.kind not in "biuf":
            raise EnvError(
                f"{where}: log key '{key}' must be a numeric scalar, got {array.dtype.name}{list(array.shape)}"
            )
