"""DeepMind Control Suite tasks from pixels: `dmc:<domain>-<task>`, e.g. `dmc:walker-walk`, `dmc:cartpole-swingup`,
`dmc:ball_in_cup-catch` (DreamerV3's short name `cup` also works: `dmc:cup-catch`).

Built with `dm_control.suite.load(domain, task, task_kwargs={"random": seed, **task_kwargs})`.

Observations (the R2I/DreamerV3 DMC vision setting by default):

* `image`: uint8 (64, 64, 3), rendered by MuJoCo at 64×64 from camera 0 (quadruped tasks: camera 2, as DreamerV3
  does; option `camera` overrides);
* `proprio` (only with the option `proprio=True`): float32 vector, the task's state observations (joint positions,
  velocities, …) flattened and concatenated in the order of the task's observation spec.

Actions: continuous, the agent's [-1, 1] rescaled linearly to the action spec's bounds (e.g. [-1, 1] for walker;
some quadruped joints have [-1, 1.1] or [-0.8, 0.8]).

Episodes: the suite's time limit (1000 control steps for the standard tasks, e.g. 500 agent steps at
`action_repeat=2`, the DMC preset) ends them by truncation (`is_last=True, is_terminal=False`); a task that
terminates early (discount 0) gives `is_terminal=True`. No `log_*` keys.

Options: `proprio` (bool, default False), `camera` (int, default 0, or 2 for quadruped), `task_kwargs` (dict passed to
the task constructor, e.g. `{"time_limit": 10}` seconds). `reset(seed)` reseeds the task's RNG in place.

Rendering needs a working MuJoCo OpenGL backend: see r2i.envs.dmenv (MUJOCO_GL; r2i uses egl on Linux unless set).
Every observation renders one frame; with `action_repeat` only the returned frame is rendered.
"""

from __future__ import annotations

import numpy as np

from r2i.envs import layout
from r2i.envs.base import Space
from r2i.envs.dmenv import DmEnvAdapter, check_rendering, import_dm_control, rendering_error
from r2i.errors import EnvError, did_you_mean

ALIASES = {"cup": "ball_in_cup"}  # DreamerV3's task names
QUADRUPED_CAMERA = 2


def _parse(name: str, suite) -> tuple[str, str]:
    domain, sep, task = name.partition("-")
    domain = ALIASES.get(domain, domain)
    tasks = [f"{d}-{t}" for d, t in suite.ALL_TASKS]
    if not sep or (domain, task) not in suite.ALL_TASKS:
        hint = did_you_mean(f"{domain}-{task}", tasks, n=3, show=lambda c: f"dmc:{c}")
        raise EnvError(
            f"unknown DeepMind Control task 'dmc:{name}'.{hint} Ids are dmc:<domain>-<task>; the suite has "
            f"{', '.join(tasks)}"
        )
    return domain, task


class DMCEnv(DmEnvAdapter):
    """A dm_control suite task as an r2i Env with rendered image observations (see the module doc)."""

    def __init__(
        self,
        name: str,
        seed: int = 0,
        proprio: bool = False,
        camera: int | None = None,
        task_kwargs: dict | None = None,
    ):
        self.env_id = f"dmc:{name}"
        suite = import_dm_control("dm_control.suite", f"the DeepMind Control task '{name}'", "dmc")
        self._suite = suite
        self._domain, self._task = _parse(name, suite)
        if not isinstance(proprio, (bool, np.bool_)):
            raise EnvError(f"{self.env_id}: option proprio must be true or false, got {proprio!r}")
        self._proprio = bool(proprio)
        if camera is None:
            camera = QUADRUPED_CAMERA if self._domain == "quadruped" else 0
        if isinstance(camera, bool) or not isinstance(camera, (int, np.integer)):
            raise EnvError(f"{self.env_id}: option camera must be a camera index, got {camera!r}")
        self._camera = int(camera)
        if task_kwargs is not None and not isinstance(task_kwargs, dict):
            raise EnvError(f"{self.env_id}: option task_kwargs must be a dict, got {task_kwargs!r}")
        self._task_kwargs = dict(task_kwargs or {})
        check_rendering(self.env_id)
        self._setup(seed)
        cameras = self._env.physics.model.ncam
        if not 0 <= self._camera < cameras:
            self._env.close()
            raise EnvError(
                f"{self.env_id}: camera {self._camera} does not exist; this domain has cameras 0…{cameras - 1}"
            )
        self.obs_space = {"image": Space((layout.IMAGE_SIZE, layout.IMAGE_SIZE, 3), np.uint8)}
        if self._proprio:
            spec = self._env.observation_spec()
            size = sum(int(np.prod(s.shape, dtype=np.int64)) for s in spec.values())
            self.obs_space["proprio"] = Space((size,))

    def _build(self, seed: int):
        kwargs = {**self._task_kwargs, "random": int(seed)}
        try:
            return self._suite.load(self._domain, self._task, task_kwargs=kwargs)
        except TypeError as error:
            raise EnvError(f"{self.env_id}: bad task_kwargs ({error})") from None

    def _reseed(self, seed: int) -> None:
        self._env.task.random.seed(seed)

    def _observation(self, timestep) -> dict:
        try:
            image = self._env.physics.render(layout.IMAGE_SIZE, layout.IMAGE_SIZE, camera_id=self._camera)
        except Exception as error:  # whatever the GL backend raised
            raise rendering_error(self.env_id, error) from error
        out = {"image": np.ascontiguousarray(image, np.uint8)}
        if self._proprio:
            parts = [np.asarray(value, np.float32).reshape(-1) for value in timestep.observation.values()]
            out["proprio"] = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        return out


OPTIONS = ("proprio", "camera", "task_kwargs")


def make_dmc(name: str, seed: int = 0, **options) -> DMCEnv:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise EnvError(f"dmc:{name}: unknown option(s) {', '.join(unknown)}; DMC options are {', '.join(OPTIONS)}")
    return DMCEnv(name, seed=seed, **options)
