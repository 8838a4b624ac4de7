"""What the dm_env adapters (bsuite, DeepMind Control, Memory Maze) share: spec conversion, step flags, a base class,
and the MuJoCo OpenGL set-up of the two MuJoCo suites.

dm_env → r2i:

* observation specs (an Array, or a dict/tuple of them) → a `layout` tree, flattened like Gymnasium's (a (1, 3) Array
  is the float32 vector `vector` (3,); a uint8 (H, W, 3) Array is the image `image` (64, 64, 3); a DiscreteArray is a
  one-hot);
* a DiscreteArray action spec is one categorical, a bounded float spec is continuous ([-1, 1] rescaled to its bounds);
* `StepType.FIRST` → `is_first`; `StepType.LAST` with discount 0 → termination (`is_last = is_terminal = True`); LAST
  with a non-zero discount (a time limit: dm_control's suites end episodes this way) → truncation (`is_last=True,
  is_terminal=False`).

Rendering (dm_control, used by `dmc:` and `memorymaze:`): MuJoCo draws with OpenGL, chosen by the `MUJOCO_GL`
environment variable when dm_control is first imported. When the user has not set it, r2i sets `MUJOCO_GL=egl` on
Linux (headless rendering: with an NVIDIA driver on the GPU, otherwise with Mesa's software EGL) before importing
dm_control; elsewhere it leaves dm_control's default (glfw, needs a display). A user setting always wins, e.g.
`MUJOCO_GL=osmesa` (software rendering through libOSMesa) or `MUJOCO_GL=glfw`. The variable has no effect once
dm_control's renderer was loaded in the process (`dm_control.mujoco`, `dm_control.suite`, …, imported before r2i
built its first MuJoCo env; importing the bare `dm_control` package is fine). A backend that does not work gives an
EnvError naming the variable and the packages to install, from `make_env` (each process renders one tiny scene once
to find out, see `rendering_problem`).
"""

from __future__ import annotations

import functools
import os
import sys

import numpy as np

from r2i.envs import layout
from r2i.envs.base import Episodic
from r2i.envs.extras import require
from r2i.errors import EnvError, MissingExtraError

GL_HINT = (
    "MuJoCo renders with OpenGL, chosen by the MUJOCO_GL environment variable (set it before starting Python): on a "
    "headless Linux machine MUJOCO_GL=egl (r2i's default there; needs libEGL and a GPU driver or Mesa: "
    "apt-get install libegl1 libgl1-mesa-dri) or MUJOCO_GL=osmesa (software, apt-get install libosmesa6); "
    "with a display MUJOCO_GL=glfw"
)


def describe_spec(spec, env_id: str):
    """dm_env spec tree → `layout` tree."""
    from dm_env import specs

    if isinstance(spec, dict):
        return {key: describe_spec(child, env_id) for key, child in spec.items()}
    if isinstance(spec, (tuple, list)):
        return tuple(describe_spec(child, env_id) for child in spec)
    if isinstance(spec, specs.DiscreteArray):
        return layout.Discrete(int(spec.num_values))
    if isinstance(spec, specs.Array):
        return layout.Box(tuple(spec.shape), np.dtype(spec.dtype))
    raise EnvError(f"{env_id}: observation spec {spec!r} is not supported; r2i supports dm_env Array specs")


def action_converter(spec, env_id: str):
    """dm_env action spec → (ActionSpace, decode: agent float32 vector → the env's action)."""
    from dm_env import specs

    if isinstance(spec, specs.DiscreteArray):
        return layout.discrete_action([spec.num_values])
    if isinstance(spec, specs.BoundedArray) and np.issubdtype(spec.dtype, np.floating):
        low = np.broadcast_to(spec.minimum, spec.shape)
        high = np.broadcast_to(spec.maximum, spec.shape)
        return layout.continuous_action(low, high, env_id, shape=tuple(spec.shape), dtype=spec.dtype)
    raise EnvError(
        f"{env_id}: action spec {spec!r} is not supported; r2i supports DiscreteArray and bounded float specs"
    )


def timestep_flags(timestep) -> dict:
    """`reward`, `is_first`, `is_last`, `is_terminal` of a dm_env TimeStep (see the module doc)."""
    first, last = bool(timestep.first()), bool(timestep.last())
    reward = 0.0 if timestep.reward is None else float(np.asarray(timestep.reward).reshape(()))
    terminal = last and timestep.discount is not None and float(np.asarray(timestep.discount).reshape(())) == 0.0
    return {
        "reward": np.float32(reward),
        "is_first": np.bool_(first),
        "is_last": np.bool_(last),
        "is_terminal": np.bool_(terminal),
    }


class DmEnvAdapter(Episodic):
    """Base of the dm_env adapters. A subclass builds the dm_env environment in `_build(seed)` and calls `_setup(seed)`
    from its constructor; it may override `_observation(timestep)` (default: the flattened observation spec),
    `_logs(flags, action)` (extra `log_*` keys, default none) and `_reseed(seed)` (default: close and rebuild).

    Implements the Env protocol plus the optional `advance`/`observe` pair (see r2i.envs.wrappers)."""

    env_id: str

    def _build(self, seed: int):
        raise NotImplementedError

    def _setup(self, seed: int) -> None:
        self._env = self._build(seed)
        self.obs_space, self._convert = layout.observation_converter(
            describe_spec(self._env.observation_spec(), self.env_id), self.env_id
        )
        self.act_space, self._decode = action_converter(self._env.action_spec(), self.env_id)
        self._timestep = None

    def _observation(self, timestep) -> dict:
        return self._convert(timestep.observation)

    def _logs(self, flags: dict, action) -> dict:
        return {}

    def _reseed(self, seed: int) -> None:
        self._env.close()
        self._env = self._build(seed)

    def _flags(self, timestep, action=None) -> dict:
        flags = timestep_flags(timestep)
        flags.update(self._logs(flags, action))
        return flags

    def reset(self, seed: int | None = None) -> dict:
        if seed is not None:
            self._reseed(int(seed))
        self._timestep = self._env.reset()
        self._begin_episode()
        flags = self._flags(self._timestep)
        return {**self.observe(), **flags}

    def advance(self, action: np.ndarray) -> dict:
        self._check_running()
        native = self._decode(action)
        self._timestep = self._env.step(native)
        self._end_episode(self._timestep.last())
        return self._flags(self._timestep, native)

    def observe(self) -> dict:
        self._check_started()
        return self._observation(self._timestep)

    def step(self, action: np.ndarray) -> dict:
        flags = self.advance(action)
        return {**self.observe(), **flags}

    def close(self) -> None:
        self._env.close()


# ------------------------------------------------------------------------------------------------ MuJoCo rendering


def default_mujoco_gl() -> None:
    """Set MUJOCO_GL=egl on Linux unless the user chose a backend (see the module doc)."""
    if "MUJOCO_GL" not in os.environ and sys.platform.startswith("linux") and "dm_control._render" not in sys.modules:
        os.environ["MUJOCO_GL"] = "egl"


def _gl_setting() -> str:
    value = os.environ.get("MUJOCO_GL")
    return f"MUJOCO_GL={value}" if value is not None else "MUJOCO_GL unset"


def _versions() -> str:
    from importlib import metadata

    found = []
    for package in ("dm-control", "mujoco"):
        try:
            found.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            found.append(f"{package} not installed")
    return ", ".join(found)


def rendering_error(what: str | None, error: BaseException) -> EnvError:
    prefix = f"{what}: " if what else ""
    if isinstance(error, AttributeError) and "'Mj" in str(error):  # e.g. 'MjModel' object has no attribute ...
        return EnvError(
            f"{prefix}dm_control does not match the installed MuJoCo ({_versions()}): {error}. Each dm-control release "
            "reads the struct fields of the MuJoCo it was built for; install a matching pair with "
            "pip install 'r2i[dmc]' (it pins both)"
        )
    return EnvError(
        f"{prefix}MuJoCo could not render ({_gl_setting()}; {_versions()}): {type(error).__name__}: {error}. {GL_HINT}"
    )


def import_dm_control(module: str, what: str, extra: str):
    """Import `module` of dm_control (after `default_mujoco_gl`): MissingExtraError when dm-control is not installed,
    EnvError with the rendering hint when the import fails while setting up OpenGL (dm_control loads the MUJOCO_GL
    backend at import; a missing libOSMesa, for example, raises an AttributeError from PyOpenGL there)."""
    default_mujoco_gl()
    try:
        return require(module, what, extra, package="dm-control")
    except (MissingExtraError, EnvError):
        raise
    except Exception as error:  # any failure here is dm_control/PyOpenGL's GL set-up
        raise rendering_error(what, error) from error


@functools.cache
def rendering_problem() -> str | None:
    """None when MuJoCo can render in this process, else the reason (with the fix). Renders one 8×8 frame of an empty
    scene once per process (cached). Needs dm-control installed."""
    try:
        dm_mujoco = import_dm_control("dm_control.mujoco", "MuJoCo rendering", "dmc")
        physics = dm_mujoco.Physics.from_xml_string("<mujoco><worldbody><light pos='0 0 1'/></worldbody></mujoco>")
        try:
            physics.render(8, 8)
        finally:
            physics.free()
    except (MissingExtraError, EnvError) as error:
        return str(error)
    except Exception as error:  # noqa: BLE001 — whatever the GL backend raised
        return str(rendering_error(None, error))
    return None


def check_rendering(env_id: str) -> None:
    """EnvError naming `env_id` when MuJoCo cannot render in this process."""
    problem = rendering_problem()
    if problem is not None:
        raise EnvError(f"{env_id} renders its observations with MuJoCo, which fails here. {problem}")
