"""`make_env(id)`: one entry point for every environment family, chosen by the id's prefix.

| id                                   | family                                              | extra      |
| ------------------------------------ | --------------------------------------------------- | ---------- |
| `r2i:memory_length/N`                | built-in cue-recall task (r2i.envs.builtin)         | none       |
| `r2i:repeat_previous/K`              | built-in repeat-the-card-K-ago task                 | none       |
| `gym:<id>` or a bare `<id>`          | any registered Gymnasium env, e.g. `CartPole-v1`    | gymnasium  |
| `popgym:<ClassName>`                 | any POPGym env class, e.g. `popgym:RepeatPreviousEasy` | popgym  |
| `bsuite:<experiment>/<n>`            | a bsuite id, e.g. `bsuite:memory_len/12`            | bsuite     |
| `dmc:<domain>-<task>`                | DeepMind Control from pixels, e.g. `dmc:walker-walk` | dmc       |
| `memorymaze:<size>`                  | Memory Maze 9x9, 11x11, 13x13 or 15x15              | memorymaze |
| `atari:<Game>`                       | an ALE game, e.g. `atari:Pong` (use action_repeat=4) | atari     |

Every family understands the option `action_repeat=N` (default 1): each action is repeated for N env steps, rewards
summed, stopping at the end of an episode (r2i.envs.wrappers.ActionRepeat); it is applied by `make_env`, not by the
adapters. The presets set it where the benchmark protocol has one (atari100k: 4, dmc: 2).

Gymnasium's own `module:Name-v0` syntax is written `gym:module:Name-v0` (a bare id's first `:` would be read as an
r2i prefix). Adapter modules are imported only when their prefix is used, so the optional packages stay optional.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from r2i.envs.base import Env
from r2i.envs.checks import validate_spaces
from r2i.envs.wrappers import ActionRepeat, check_action_repeat
from r2i.errors import ConfigError, EnvError, MissingExtraError, did_you_mean

PREFIXES = ("r2i", "gym", "popgym", "bsuite", "dmc", "memorymaze", "atari")


def _factory(prefix: str):
    if prefix == "r2i":
        from r2i.envs.builtin import make_builtin

        return make_builtin
    if prefix == "gym":
        from r2i.envs.gymnasium_env import make_gymnasium

        return make_gymnasium
    if prefix == "popgym":
        from r2i.envs.popgym_env import make_popgym

        return make_popgym
    if prefix == "dmc":
        from r2i.envs.dmc_env import make_dmc

        return make_dmc
    if prefix == "memorymaze":
        from r2i.envs.memorymaze_env import make_memorymaze

        return make_memorymaze
    if prefix == "atari":
        from r2i.envs.atari_env import make_atari

        return make_atari
    from r2i.envs.bsuite_env import make_bsuite

    return make_bsuite


def _bare_id_hint(name: str) -> str:
    """A bare id goes to Gymnasium; if it looks like another family's id, say which prefix was probably meant."""
    from r2i.envs.bsuite_env import EXPERIMENTS
    from r2i.envs.builtin import BUILTINS

    head = name.partition("/")[0]
    for prefix, names in (("r2i", BUILTINS), ("bsuite", EXPERIMENTS)):
        # Exact heads only (cutoff 1): any other bare id is Gymnasium's, however close it looks.
        hint = did_you_mean(head, names, cutoff=1.0, show=lambda _, p=prefix: f"{p}:{name}", lead=" (")
        if hint:
            return hint + ")"
    return ""


def make_env(env_id: str, seed: int = 0, **options: Any) -> Env:
    """Build the environment `env_id` (see the module table), seeded with `seed`; `options` go to the family's
    constructor (built-in task options, `gymnasium.make` kwargs, POPGym constructor kwargs, bsuite kwargs, DMC /
    Memory Maze / Atari options), except `action_repeat` (int >= 1, default 1), which wraps the env in ActionRepeat.

    Raises EnvError for unknown ids (with close matches), MissingExtraError when the family's package is not
    installed, ConfigError for a bad seed or action_repeat.
    """
    if not isinstance(env_id, str) or not env_id.strip():
        raise ConfigError(f"environment id must be a non-empty string like 'r2i:memory_length/10', got {env_id!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"environment seed must be an integer, got {seed!r}")
    repeat = check_action_repeat(options.pop("action_repeat", 1))
    prefix, sep, name = env_id.partition(":")
    if not sep:
        prefix, name = "gym", env_id
    elif prefix not in PREFIXES:
        hint = did_you_mean(prefix, PREFIXES, show=lambda c: f"'{c}:{name}'")
        raise EnvError(
            f"unknown environment prefix '{prefix}:' in '{env_id}'.{hint} Known prefixes: "
            f"{', '.join(p + ':' for p in PREFIXES)} (a bare id means Gymnasium; write Gymnasium's module:Name ids "
            f"as gym:module:Name)"
        )
    if not name:
        raise EnvError(f"'{env_id}' names no environment after the prefix, e.g. r2i:memory_length/10")
    try:
        env = _factory(prefix)(name, seed=int(seed), **options)
    except (EnvError, MissingExtraError) as error:
        hint = _bare_id_hint(name) if not sep else ""
        if hint:
            raise EnvError(f"{error}{hint}") from None
        raise
    if repeat > 1:
        env = ActionRepeat(env, repeat)
    validate_spaces(env.obs_space, env.act_space, env_id)
    return env


@dataclass
class EnvSpec:
    """Everything needed to build an env in another process (picklable: plain strings, ints and an options dict)."""

    env_id: str
    seed: int = 0
    options: dict = field(default_factory=dict)

    def make(self) -> Env:
        return make_env(self.env_id, self.seed, **self.options)


def make_specs(env_id: str, num_envs: int, seed: int = 0, **options: Any) -> list[EnvSpec]:
    """`num_envs` specs of one env with distinct seeds derived from `seed`.

    Seeds come from `np.random.SeedSequence(seed).spawn(num_envs)` (one 31-bit integer per child), so the copies get
    statistically independent streams, no two copies share a seed, and run seeds 0 and 1 do not overlap the way
    `seed + i` would (run 0's env 1 = run 1's env 0).
    """
    if num_envs < 1:
        raise ConfigError(f"num_envs must be >= 1, got {num_envs}")
    children = np.random.SeedSequence(int(seed)).spawn(int(num_envs))
    seeds = [int(child.generate_state(1)[0] >> 1) for child in children]
    return [EnvSpec(env_id, s, dict(options)) for s in seeds]
