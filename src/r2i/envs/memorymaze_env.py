"""Memory Maze (Pasukonis et al., 2022): `memorymaze:9x9`, `memorymaze:11x11`, `memorymaze:13x13`, `memorymaze:15x15`.

Built with the memory-maze package's dm_env task constructors (`memory_maze.tasks.memory_maze_9x9(...)` etc., on
dm_control), in the standard setting of the paper and of R2I (the `MemoryMaze-<size>-v0` ids of its gym API):
`image_only_obs=True`, i.e. the egocentric camera image with the colour of the current target drawn as a border.

* observation `image`: uint8 (64, 64, 3);
* actions: 6 discrete (noop, forward, left, right, forward+left, forward+right), control at 4 Hz;
* reward +1 for each target reached; episodes of 1000 (9x9), 2000 (11x11), 3000 (13x13), 4000 (15x15) steps end by
  the time limit, i.e. truncation (`is_last=True, is_terminal=False`). No `log_*` keys: the episode return already is
  the number of targets reached.

Options go to the task constructor, e.g. `good_visibility=True`, `randomize_colors=True`, `control_freq=40`,
`image_only_obs=False` (adds the float32 vector `target_color`), `camera_resolution=256` (resized to 64×64). r2i
passes its own `seed`. `reset(seed)` rebuilds the environment with the new seed.

Import: memory-maze 1.0.3's package `__init__` registers environments with the old `gym` package and re-raises the
ImportError when `gym` is not installed, although the dm_env tasks do not use it. r2i therefore loads the package's
modules (`memory_maze.tasks` and what it imports) under a plain package object that skips that `__init__`, unless
`memory_maze` was already imported. Rendering: MuJoCo OpenGL as for DMC (see r2i.envs.dmenv; MUJOCO_GL, egl by
default on Linux).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

from r2i.envs.dmenv import DmEnvAdapter, check_rendering, import_dm_control
from r2i.errors import EnvError, MissingExtraError, did_you_mean

SIZES = ("9x9", "11x11", "13x13", "15x15")
DEFAULTS = {"image_only_obs": True}


def memory_maze_tasks(what: str = "Memory Maze") -> types.ModuleType:
    """`memory_maze.tasks`, imported without the package's gym-only `__init__` (see the module doc)."""
    import_dm_control("dm_control.composer", what, "memorymaze")
    if sys.modules.get("memory_maze") is not None:  # imported already (by the user with gym, or by r2i): use it
        try:
            return importlib.import_module("memory_maze.tasks")
        except ImportError as error:
            raise EnvError(f"{what}: importing memory_maze.tasks failed ({error})") from error
    spec = importlib.util.find_spec("memory_maze")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError(what, "memorymaze", "memory-maze")
    for key in [k for k in sys.modules if k.startswith("memory_maze.")]:  # leftovers of a failed normal import
        del sys.modules[key]
    package = types.ModuleType("memory_maze", "memory-maze, loaded by r2i without its gym registration")
    package.__path__ = list(spec.submodule_search_locations)
    package.__package__ = "memory_maze"
    sys.modules["memory_maze"] = package
    try:
        return importlib.import_module("memory_maze.tasks")
    except ImportError as error:
        for key in [k for k in sys.modules if k == "memory_maze" or k.startswith("memory_maze.")]:
            del sys.modules[key]
        raise EnvError(
            f"{what}: 'memory-maze' is installed but importing memory_maze.tasks failed ({error}); reinstall it with "
            "pip install --force-reinstall 'r2i[memorymaze]'"
        ) from error


class MemoryMazeEnv(DmEnvAdapter):
    """A Memory Maze task as an r2i Env (see the module doc)."""

    def __init__(self, size: str, seed: int = 0, **options):
        self.env_id = f"memorymaze:{size}"
        if size not in SIZES:
            hint = did_you_mean(size, SIZES, n=2, cutoff=0.5, show=lambda c: f"memorymaze:{c}")
            raise EnvError(
                f"unknown Memory Maze size '{self.env_id}'.{hint} Sizes: {', '.join('memorymaze:' + s for s in SIZES)}"
            )
        if "seed" in options:
            raise EnvError(f"{self.env_id}: pass the seed as make_env's seed, not as an option")
        tasks = memory_maze_tasks(f"the Memory Maze environment '{size}'")
        self._constructor = getattr(tasks, f"memory_maze_{size}")
        self._options = {**DEFAULTS, **options}
        check_rendering(self.env_id)
        self._setup(seed)

    def _build(self, seed: int):
        try:
            return self._constructor(seed=int(seed), **self._options)
        except TypeError as error:
            raise EnvError(f"{self.env_id}: bad option for the Memory Maze task ({error})") from None


def make_memorymaze(name: str, seed: int = 0, **options) -> MemoryMazeEnv:
    return MemoryMazeEnv(name, seed=seed, **options)
