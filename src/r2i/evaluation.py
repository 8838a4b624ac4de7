"""Evaluation: run a policy for a number of full episodes in fresh envs, and report their mean statistics.

The episode bookkeeping (running return and length per env, `log_*` values at episode end, means over episodes) is
`r2i.metrics.Aggregator`'s, the same that counts training episodes; this module decides which episodes count.
"""

from __future__ import annotations

import jax
import numpy as np

from r2i.agent import Agent
from r2i.config import Config
from r2i.envs import VectorDriver, make_specs
from r2i.errors import EnvError
from r2i.metrics import Aggregator

EVAL_SEED_OFFSET = 1_000_003  # evaluation envs never share seeds with training envs


def evaluate(agent: Agent, params, config: Config, episodes: int, mode: str, key,
             frames: list | None = None) -> dict:
    """Mean return, length and every `log_*` value at episode end (e.g. eval/success) over `episodes` episodes run in
    fresh evaluation envs (seeds disjoint from the training envs'). With a `frames` list, the first image observation
    of every env is appended to it at every policy step, `(envs, H, W, C)`, black for envs whose episodes are done.

    `min(env.eval_envs, episodes)` envs run at once; each begins one episode, and an env whose episode ends starts
    another only while fewer than `episodes` have begun, so exactly `episodes` episodes are counted.
    """
    env = config.env
    num = max(1, min(env.eval_envs, episodes))
    specs = make_specs(env.id, num, config.seed + EVAL_SEED_OFFSET, **env.options)
    stats = Aggregator("eval")
    with VectorDriver(specs, env.parallel) as driver:
        image = next((k for k in sorted(driver.obs_space) if driver.obs_space[k].is_image), None)
        if frames is not None and image is None:
            raise EnvError(f"{env.id} has no image observation to record a video of")
        obs = driver.reset()
        if frames is not None:
            frames.append(np.array(obs[image]))
        carry = agent.initial(num)
        started = num  # episodes begun so far
        active = np.ones(num, bool)  # envs whose current episode counts
        while active.any():
            key, sub = jax.random.split(key)
            carry, action = agent.act(params, carry, obs, sub, mode)
            obs = driver.step(np.asarray(action))
            if frames is not None:
                frames.append(np.where(active[:, None, None, None], obs[image], 0).astype(np.uint8))
            stats.add_steps(obs, mask=active)
            for i in np.flatnonzero(obs["is_last"] & active):
                if started < episodes:
                    started += 1
                else:
                    active[i] = False
    out = stats.result()
    return {"eval/episodes": int(out.pop("eval/count")), **out}
