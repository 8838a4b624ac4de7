"""The report behind `r2i check-env ID`: build an environment, validate it step by step, summarise what the agent sees.

Apart from `r2i.envs.checks` because it builds environments (`make_env`), and `make` itself runs the checks.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from r2i.envs.checks import validate_spaces, validate_step
from r2i.envs.make import make_env
from r2i.errors import EnvError


def describe_env(env_id: str, seed: int = 0, episodes: int = 3, max_steps: int = 10_000, **options) -> str:
    """Build `env_id`, validate its spaces, run `episodes` random-action episodes (at most `max_steps` steps in all)
    through `validate_step`, and return a readable report: observation keys (shape, dtype, min, max over the run),
    action space, episode lengths and returns, and the logged keys. Raises EnvError at the first invalid step."""
    env = make_env(env_id, seed=seed, **options)
    try:
        validate_spaces(env.obs_space, env.act_space, env_id)
        if episodes < 1:
            raise EnvError(f"episodes must be >= 1, got {episodes}")
        # Not the env's seed: an env that draws its task from the same seed would be "solved" by the random actions
        # (r2i:repeat_previous scored a perfect return), which is no chance baseline.
        rng = np.random.default_rng([seed, 0x5EED])
        low = {key: np.inf for key in env.obs_space}
        high = {key: -np.inf for key in env.obs_space}
        logged: set[str] = set()
        finished: list[tuple[int, float, str]] = []
        total = 0
        unfinished = None

        def record(obs: Mapping, step: int) -> None:
            validate_step(obs, env.obs_space, env_id, step)
            for key in env.obs_space:
                low[key] = min(low[key], float(obs[key].min()))
                high[key] = max(high[key], float(obs[key].max()))
            logged.update(key for key in obs if str(key).startswith("log_"))

        for _ in range(episodes):
            obs = env.reset()
            record(obs, 0)
            length, ret = 0, 0.0
            while not obs["is_last"] and total < max_steps:
                obs = env.step(env.act_space.sample(rng))
                length += 1
                total += 1
                ret += float(obs["reward"])
                record(obs, length)
            if not obs["is_last"]:
                unfinished = (length, ret)
                break
            finished.append((length, ret, "terminated" if obs["is_terminal"] else "truncated"))
    finally:
        env.close()

    lines = [f"Environment {env_id} (seed {seed}{', options ' + repr(options) if options else ''})", "Observations:"]
    width = max(len(key) for key in env.obs_space)
    for key, space in env.obs_space.items():
        kind = "image" if space.is_image else "vector"
        lines.append(f"  {key:<{width}}  {kind:<6} {space!s:<18} min {low[key]:.4g}  max {high[key]:.4g}")
    act = env.act_space
    lines.append(f"Actions: {act} (agent gives a float32 vector of {act.size})")
    lines.append(f"Random-action episodes ({total} steps, every step validated; the actions' seed differs from the "
                 "env's):")
    for index, (length, ret, how) in enumerate(finished):
        lines.append(f"  episode {index + 1}: length {length}, return {ret:.4g}, {how}")
    if finished:
        lengths = [f[0] for f in finished]
        returns = [f[1] for f in finished]
        lines.append(f"  mean length {np.mean(lengths):.4g}, mean return {np.mean(returns):.4g}")
    if unfinished is not None:
        lines.append(f"  stopped after {max_steps} steps in all: an episode ran {unfinished[0]} steps without ending")
    lines.append(f"Logged keys: {', '.join(sorted(logged)) if logged else 'none'}")
    return "\n".join(lines)
