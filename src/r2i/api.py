"""Python API for trained runs: `policy = r2i.load(logdir)`, then `carry = policy.initial(n)` and
`action, carry = policy.act(obs, carry)`."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from r2i.checkpoint import Checkpointer


class Policy:
    """A trained agent's policy with its own PRNG stream.

    obs: dict of batched arrays (N, …) with the env's observation keys and `is_first` (N,) bool, as returned by an
    r2i env or `VectorDriver`. Actions are in the agent's format (float32 (N, A): one-hots for discrete spaces, [−1, 1]
    for continuous); `policy.act_space.decode(action[i])` gives one env's native action.
    """

    def __init__(self, agent, params, config, mode: str = "greedy", seed: int = 0):
        self.agent, self.params, self.config, self.mode = agent, params, config, mode
        self.obs_space, self.act_space = agent.obs_space, agent.act_space
        self._key = jax.random.key(seed)

    def initial(self, batch_size: int) -> dict:
        return self.agent.initial(batch_size)

    def act(self, obs: dict, carry: dict, mode: str | None = None):
        self._key, key = jax.random.split(self._key)
        action, carry = self.agent.act(self.params, carry, obs, key, mode or self.mode)
        return np.asarray(action), carry


def load(logdir: str | Path, step: int | None = None, mode: str = "greedy", seed: int = 0) -> Policy:
    """Load the latest (or `step`) checkpoint of a run directory written by `r2i train`."""
    from r2i.agent import Agent
    from r2i.envs import make_env
    from r2i.errors import ConfigError
    from r2i.run import load_config

    config = load_config(logdir)
    env = make_env(config.env.id, config.seed, **config.env.options)  # for its spaces
    try:
        agent = Agent.from_config(config, env.obs_space, env.act_space)
    finally:
        env.close()
    checkpointer = Checkpointer(Path(logdir) / "checkpoints")
    if checkpointer.latest() is None:
        raise ConfigError(f"{logdir} has no checkpoint yet; train longer or check the path")
    target = {"agent": agent.abstract_state(), "carry": agent.initial(config.env.num_envs),
              "key": jax.random.key_data(jax.random.key(0))}
    state, _, _ = checkpointer.restore(target, step, mmap_replay=True)
    return Policy(agent, state["agent"].params, config, mode, seed)
