"""POPGym environments by class name: `popgym:RepeatPreviousEasy`, `popgym:PositionOnlyCartPoleHard`, ….

POPGym environments are Gymnasium environments, so they go through `GymnasiumEnv` (same observation flattening and
action conversion, e.g. Tuple observations become `obs_0`, `obs_1`). The class is looked up by name among every
`gymnasium.Env` subclass exported by `popgym.envs`; options are passed to its constructor (e.g.
`make_env("popgym:RepeatPrevious", num_decks=2, k=8)`). The classes are built directly, without `gymnasium.make`, so
no TimeLimit or checker wrappers are added: each POPGym env ends its own episodes.

Return semantics: POPGym normalises rewards per environment so that the undiscounted return of an episode lies in
[-1, 1] (some tasks, e.g. the CartPole/Pendulum variants, in [0, 1]); 1 is the best achievable return. For example
RepeatPrevious pays ±1/(52·decks - k) per scored step, so always right gives +1 and always wrong -1. The POPGym
paper reports MMER (the maximum over training of the mean episodic return) on this scale, so episode returns logged
by r2i are on the same scale as its tables.

The Labyrinth* environments exist only when the optional `mazelib` package is installed (POPGym checks at import).
"""

from __future__ import annotations

import inspect

from r2i.envs.extras import require
from r2i.envs.gymnasium_env import GymnasiumEnv
from r2i.errors import EnvError, did_you_mean

MAZE_ENVS = ("LabyrinthEscape", "LabyrinthExplore")


def popgym_classes() -> dict[str, type]:
    """{class name: class} of every environment class exported by `popgym.envs`."""
    gym = require("gymnasium", "POPGym environments", "popgym")
    envs = require("popgym.envs", "POPGym environments", "popgym", package="popgym")
    return {
        name: obj
        for name, obj in vars(envs).items()
        if inspect.isclass(obj)
        and issubclass(obj, gym.Env)
        and not inspect.isabstract(obj)
        and not name.startswith("_")
    }


def make_popgym(name: str, seed: int = 0, log_info: bool = True, **options) -> GymnasiumEnv:
    """Build the POPGym class `name` with `options` as constructor arguments, wrapped as an r2i Env."""
    env_id = f"popgym:{name}"
    classes = popgym_classes()
    if name not in classes:
        if name.startswith(MAZE_ENVS):
            raise EnvError(f"{env_id} needs the 'mazelib' package, which POPGym loads optionally: pip install mazelib")
        hint = did_you_mean(name, classes, n=3, cutoff=0.5, show=lambda c: f"popgym:{c}")
        raise EnvError(f"unknown POPGym environment '{name}'.{hint} Available: {', '.join(sorted(classes))}")
    try:
        env = classes[name](**options)
    except TypeError as error:
        raise EnvError(f"{env_id}: bad constructor option ({error})") from None
    return GymnasiumEnv(env, seed=seed, env_id=env_id, log_info=log_info)
