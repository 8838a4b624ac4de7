"""r2i's environment layer: one Env protocol (r2i.envs.base), adapters chosen by id prefix, checks, and a driver.

    from r2i.envs import make_env, make_specs, VectorDriver, describe_env

    env = make_env("r2i:memory_length/10", seed=0)       # or gym:CartPole-v1, popgym:RepeatPreviousEasy,
    obs = env.reset()                                      #    bsuite:memory_len/12, a bare Gymnasium id
    obs = env.step(env.act_space.sample(rng))

    with VectorDriver(make_specs("CartPole-v1", num_envs=8, seed=0)) as driver:
        batch = driver.step(actions)                       # dict of (8, ...) arrays, auto-reset after is_last

Only NumPy is needed for the built-in tasks; Gymnasium, POPGym, bsuite, DeepMind Control, Memory Maze and Atari are
optional extras (`pip install 'r2i[gymnasium]'`, `'r2i[popgym]'`, `'r2i[bsuite]'`, `'r2i[dmc]'`, `'r2i[memorymaze]'`,
`'r2i[atari]'`), imported when their prefix is first used. `make_env(id, seed, action_repeat=N)` repeats actions for
any env (r2i.envs.wrappers).
"""

from r2i.envs.base import FLAG_KEYS, ActionSpace, Env, Space
from r2i.envs.bsuite_env import discounting_chain_delay
from r2i.envs.checks import validate_spaces, validate_step
from r2i.envs.describe import describe_env
from r2i.envs.driver import EnvWorkerError, VectorDriver
from r2i.envs.make import PREFIXES, EnvSpec, make_env, make_specs

__all__ = [
    "FLAG_KEYS",
    "PREFIXES",
    "ActionSpace",
    "Env",
    "EnvSpec",
    "EnvWorkerError",
    "Space",
    "VectorDriver",
    "describe_env",
    "discounting_chain_delay",
    "make_env",
    "make_specs",
    "validate_spaces",
    "validate_step",
]
