"""Python API for trained runs: `policy = r2i.load(logdir)`, then `carry = policy.initial(n)` and
`carry, action = policy.act(carry, obs)` (carry first, in and out: the order of `jax.lax.scan`).

Observations (`obs`) are what an r2i environment returns, batched over N environments: a dict with

* every key of `policy.obs_space` (see `r2i check-env ID`): float32 vectors (N, d) — discrete observations arrive
  as one-hots, several native entries flattened into one vector — and uint8 images (N, H, W, C), e.g. (N, 64, 64, 3);
* `is_first`: bool (N,), True on the first observation of an episode (it resets that environment's memory; the
  first call after `policy.initial(N)` must have it True).

Other keys (reward, is_last, log_…) may be present and are ignored. The easiest way to get this format is to step
the environment through r2i: `env = r2i.envs.make_env(policy.config.env.id)` and `VectorDriver`, or one env's step
dict with a leading batch axis of 1 (`{k: v[None] for k, v in env.reset().items()}`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import numpy as np

from r2i.checkpoint import Checkpointer
from r2i.errors import ConfigError
from r2i.schema import ACT_MODES


class Policy:
    """A trained agent's policy with its own PRNG stream.

    `act(carry, obs)` returns the new carry and actions in the agent's format (float32 (N, A): one-hots for discrete spaces, [−1, 1]
    for continuous); `env_actions(action)` turns them into the environment's own action format (for Gymnasium envs
    what `gym_env.step` accepts, e.g. a Python int for a Discrete space).
    """

    def __init__(self, agent, params, config, mode: str = "greedy", seed: int = 0, env_decode=None):
        self.agent, self.params, self.config, self.mode = agent, params, config, mode
        self.obs_space, self.act_space = agent.obs_space, agent.act_space
        self._key = jax.random.key(seed)
        self._env_decode = env_decode or self.act_space.decode

    def initial(self, batch_size: int) -> dict:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ConfigError(f"policy.initial(batch_size): batch_size must be a positive int, got {batch_size!r}")
        return self.agent.initial(int(batch_size))

    def act(self, carry: dict, obs: dict, mode: str | None = None):
        """The carry of `initial(N)` or of the previous call and obs (see the module doc) → (carry, action (N, A))."""
        mode = mode or self.mode
        if mode not in ACT_MODES:
            raise ConfigError(f"policy.act: mode must be one of {', '.join(ACT_MODES)}, got {mode!r}")
        if isinstance(carry, dict) and "is_first" in carry and isinstance(obs, dict) and "is_first" not in obs:
            raise ConfigError("policy.act takes (carry, obs) and returns (carry, action); the arguments are swapped")
        inputs = self._check_obs(obs, _carry_batch(carry))
        self._key, key = jax.random.split(self._key)
        carry, action = self.agent.act(self.params, carry, inputs, key, mode)
        return carry, np.asarray(action)

    def env_actions(self, action) -> list:
        """Agent actions (N, A) → a list of N actions in the environment's own format."""
        action = np.asarray(action)
        if action.ndim != 2 or action.shape[1] != self.act_space.size:
            raise ConfigError(f"policy.env_actions: expected actions of shape (N, {self.act_space.size}) as returned "
                              f"by policy.act, got {action.shape}")
        return [self._env_decode(a) for a in action]

    def _check_obs(self, obs, batch: int | None) -> dict:
        if not isinstance(obs, dict):
            raise ConfigError(f"policy.act: obs must be a dict of arrays, got {type(obs).__name__}")
        keys = [*self.agent.obs_keys, "is_first"]
        missing = [k for k in keys if k not in obs]
        if missing:
            raise ConfigError(f"policy.act: obs lacks {', '.join(map(repr, missing))}; it needs "
                              f"{', '.join(map(repr, keys))} (see `r2i check-env {self.config.env.id}`)")
        out = {}
        for key in keys:
            value = np.asarray(obs[key])
            space = self.obs_space.get(key)
            shape = (1,) if space is None else space.shape  # is_first: one flag per environment
            want = "(N,)" if space is None else f"(N, {', '.join(map(str, shape))})"
            if space is not None and value.shape == shape:
                raise ConfigError(f"policy.act: obs['{key}'] has shape {value.shape}, without the batch axis; "
                                  f"expected {want} — add one, e.g. obs['{key}'][None]")
            if value.ndim != len(shape) + (space is not None) or (space is not None and value.shape[1:] != shape):
                raise ConfigError(f"policy.act: obs['{key}'] has shape {value.shape}, expected {want}")
            if batch is not None and value.shape[0] != batch:
                raise ConfigError(f"policy.act: obs['{key}'] holds {value.shape[0]} environments but the carry "
                                  f"{batch} (from policy.initial({batch})); use one batch size for both")
            if space is None:
                if value.dtype != np.bool_:
                    raise ConfigError(f"policy.act: obs['is_first'] must be bool (N,), got {value.dtype}")
            elif value.dtype != space.dtype:
                if space.dtype == np.uint8 or value.dtype.kind not in "biuf":
                    raise ConfigError(f"policy.act: obs['{key}'] must be {space.dtype} {want}, got {value.dtype}")
                value = value.astype(space.dtype)
            if value.dtype.kind == "f" and not np.isfinite(value).all():
                raise ConfigError(f"policy.act: obs['{key}'] contains NaN or inf; observations must be finite")
            out[key] = value
        return out


def _carry_batch(carry) -> int | None:
    if not isinstance(carry, dict):
        raise ConfigError(f"policy.act: carry must be the dict from policy.initial(N) or the previous act, got "
                          f"{type(carry).__name__}")
    leaves = jax.tree.leaves(carry)
    return int(leaves[0].shape[0]) if leaves and getattr(leaves[0], "ndim", 0) else None


def _native_decoder(env):
    """The env's decoder of agent actions to what its own library accepts: Gymnasium's format for Gymnasium-based
    envs (the adapter's own converter), else `act_space.decode`."""
    try:
        from r2i.envs.gymnasium_env import GymnasiumEnv, action_converter
    except ImportError:  # pragma: no cover - the adapter module imports gymnasium lazily
        return None
    inner, seen = env, set()
    while inner is not None and id(inner) not in seen:
        seen.add(id(inner))
        if isinstance(inner, GymnasiumEnv):
            return action_converter(inner.unwrapped.action_space, inner.env_id)[1]
        inner = getattr(inner, "env", None)
    return None


def _holding(logdir: str | Path, checkpoints: Checkpointer, step: int) -> Checkpointer:
    """The checkpoints, or else the snapshots, of a run that hold env step `step`."""
    from r2i.rundir import SNAPSHOTS

    if step in checkpoints.steps():
        return checkpoints
    directory = Path(logdir) / SNAPSHOTS
    snapshots = Checkpointer(directory) if directory.is_dir() else None
    if snapshots is not None and step in snapshots.steps():
        return snapshots
    kept = sorted(checkpoints.steps() + (snapshots.steps() if snapshots else []))
    raise ConfigError(f"{logdir} has no checkpoint or snapshot at env step {step}; it has {kept} (keep more with "
                      "run.snapshot_every)")


def load(logdir: str | Path, step: int | None = None, mode: str | None = None, seed: int = 0) -> Policy:
    """Load the newest intact checkpoint of a run directory written by `r2i train`, or the one of env step `step`:
    one of its two newest checkpoints or a snapshot (`run.snapshot_every`); the policy acts in `mode` ('greedy',
    'deterministic' or 'sample'; by default the run's `run.eval_mode`, as its evaluation rounds did).

    Only the agent's parameters are read: the replay buffer stored beside them is not needed (nor read).
    """
    from r2i.agent import Agent
    from r2i.envs import make_env
    from r2i.run import load_config

    config = load_config(logdir)
    env = make_env(config.env.id, config.seed, **config.env.options)  # for its spaces
    try:
        agent = Agent.from_config(config, env.obs_space, env.act_space)
        decode = _native_decoder(env)
    finally:
        env.close()
    checkpointer = Checkpointer(Path(logdir) / "checkpoints")
    if checkpointer.latest() is None:
        raise ConfigError(f"{logdir} has no checkpoint yet; train longer or check the path")
    target = {"agent": agent.abstract_state(), "carry": agent.initial(config.env.num_envs),
              "key": jax.random.key_data(jax.random.key(0))}
    if step is None:
        _, state, _, _ = checkpointer.restore_intact(target, replay=False,
                                                     warn=lambda line: print(line, file=sys.stderr))
    else:
        state, _, _ = _holding(logdir, checkpointer, step).restore(target, step, replay=False)
    return Policy(agent, state["agent"].params, config, mode or config.run.eval_mode, seed, env_decode=decode)
