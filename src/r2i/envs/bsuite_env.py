"""BSuite environments by bsuite id: `bsuite:memory_len/12`, `bsuite:discounting_chain/3`, `bsuite:catch/0`, ….

A bsuite id is `<experiment>/<setting index>`; the index selects keyword arguments from `bsuite.sweep.SETTINGS`
(e.g. `memory_len/12` is memory_length=17: the settings are 1…10, 12, 14, 17, 20, 25, 30…100). The env is built like
`bsuite.load_from_id(id)` does (`bsuite.load(experiment, SETTINGS[id])`, without its banner print), with one change:
bsuite's loaders default to a fixed `seed=0` (or to an unseeded RNG where the sweep says `seed=None`), which would
make every parallel copy identical or irreproducible, so when the loader takes a `seed` and the sweep does not fix one,
r2i passes its own seed. Extra options override the sweep's keyword arguments (e.g. `memory_length=5`).

dm_env → r2i (shared with the other dm_env adapters, see r2i.envs.dmenv): observation specs (an Array, or a dict/tuple
of them) are flattened like Gymnasium's (a (1, 3) Array is the float32 vector `vector` (3,); a DiscreteArray is
one-hot); a DiscreteArray action spec is one categorical, a bounded float spec is continuous. `StepType.FIRST` →
`is_first`; `StepType.LAST` with discount 0 → terminal (`is_last = is_terminal = True`), LAST with a non-zero discount
→ truncation (`is_last=True, is_terminal=False`).

Extra log keys, present on every step:

* memory_len, memory_size: `log_success` — 1.0 on the last step when the answer was right (reward > 0), else 0.0;
* discounting_chain: `log_bonus_delay` — the delay of the chain that pays 1.1 for this id (constant, see
  `discounting_chain_delay`); `log_chain_delay` — the delay of the chain chosen by the first action of the episode
  (0.0 on the first observation, before any choice); `log_bonus_chain` — 1.0 once the chosen chain is the bonus one;
  `log_success` — the same as `log_bonus_chain`: the bonus chain is the only one that earns bsuite's optimal return
  (1.1), and `run.stop_at_success` and the episode success rate read `log_success`.
"""

from __future__ import annotations

import contextlib
import inspect
import io

import numpy as np

from r2i.envs.dmenv import DmEnvAdapter, action_converter, describe_spec  # noqa: F401 - re-exported
from r2i.envs.extras import require
from r2i.errors import EnvError, did_you_mean

# bsuite 0.3.6 experiments (bsuite.sweep.SWEEP lists every id); kept here to give hints without importing bsuite.
EXPERIMENTS = (
    "bandit",
    "bandit_noise",
    "bandit_scale",
    "cartpole",
    "cartpole_noise",
    "cartpole_scale",
    "cartpole_swingup",
    "catch",
    "catch_noise",
    "catch_scale",
    "deep_sea",
    "deep_sea_stochastic",
    "discounting_chain",
    "memory_len",
    "memory_size",
    "mnist",
    "mnist_noise",
    "mnist_scale",
    "mountain_car",
    "mountain_car_noise",
    "mountain_car_scale",
    "umbrella_distract",
    "umbrella_length",
)
# bsuite/environments/discounting_chain.py: action a picks the chain whose single reward arrives after
# _reward_timestep[a] steps; rewards are 1 except the chain at index mapping_seed % 5, which pays 1.1.
DISCOUNTING_CHAIN_DELAYS = (1, 3, 10, 30, 100)
DISCOUNTING_CHAIN_SETTINGS = 20  # bsuite/experiments/discounting_chain/sweep.py: mapping_seed = n for n in range(20)


def discounting_chain_delay(bsuite_id: str) -> int:
    """Delay (1, 3, 10, 30 or 100 steps) of the chain that pays the 1.1 bonus in `discounting_chain/<n>`.

    The sweep gives setting n the mapping_seed n, and the environment boosts the chain at index mapping_seed % 5 of
    the delays (1, 3, 10, 30, 100); so n = 0, 5, 10, 15 → 1, n = 1, 6, … → 3, …, n = 4, 9, 14, 19 → 100.
    Accepts the id with or without the `bsuite:` prefix. Does not need bsuite installed.
    """
    name = bsuite_id.removeprefix("bsuite:")
    experiment, _, index = name.partition("/")
    if experiment != "discounting_chain":
        raise EnvError(f"'{bsuite_id}' is not a discounting_chain id; use e.g. bsuite:discounting_chain/3")
    try:
        setting = int(index)
    except ValueError:
        raise EnvError(f"'{bsuite_id}' needs a setting number, e.g. bsuite:discounting_chain/3") from None
    if not 0 <= setting < DISCOUNTING_CHAIN_SETTINGS:
        raise EnvError(f"'{bsuite_id}': discounting_chain settings are 0…{DISCOUNTING_CHAIN_SETTINGS - 1}")
    return DISCOUNTING_CHAIN_DELAYS[setting % len(DISCOUNTING_CHAIN_DELAYS)]


def _load(name: str, seed: int, options: dict):
    """Build the raw bsuite env for id `name`: SETTINGS[name] + options, with r2i's seed where bsuite takes one."""
    require("dm_env", f"the bsuite environment '{name}'", "bsuite", package="dm-env")
    bsuite = require("bsuite", f"the bsuite environment '{name}'", "bsuite")
    from bsuite import sweep
    from bsuite.bsuite import EXPERIMENT_NAME_TO_ENVIRONMENT

    if name not in sweep.SETTINGS:
        experiment = name.partition("/")[0]
        if experiment in EXPERIMENT_NAME_TO_ENVIRONMENT:
            count = sum(1 for key in sweep.SWEEP if key.startswith(experiment + "/"))
            raise EnvError(
                f"unknown bsuite id '{name}': {experiment} has settings {experiment}/0 … {experiment}/{count - 1}"
            )
        hint = did_you_mean(experiment, EXPERIMENT_NAME_TO_ENVIRONMENT, n=3, cutoff=0.5, show=lambda c: f"bsuite:{c}/0")
        raise EnvError(
            f"unknown bsuite id '{name}'.{hint} bsuite ids are <experiment>/<setting>, experiments: "
            f"{', '.join(EXPERIMENT_NAME_TO_ENVIRONMENT)}"
        )
    experiment = name.partition("/")[0]
    kwargs = dict(sweep.SETTINGS[name])
    loader = EXPERIMENT_NAME_TO_ENVIRONMENT[experiment]
    if "seed" in inspect.signature(loader).parameters and kwargs.get("seed") is None:
        kwargs["seed"] = int(seed)
    kwargs.update(options)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # bsuite prints a banner per env; noisy in worker processes
            env = bsuite.load(experiment, kwargs)
            if options:
                _probe(name, options, lambda: bsuite.load(experiment, kwargs))
            return env
    except TypeError as error:
        raise EnvError(f"bsuite:{name}: bad option ({error})") from None
    except OSError as error:  # the mnist experiments download MNIST when first built
        raise EnvError(f"bsuite:{name}: bsuite could not build it ({type(error).__name__}: {error})") from error
    except (ValueError, RuntimeError, AssertionError, IndexError, ZeroDivisionError) as error:
        raise _option_error(name, options, error) from None


_PROBED: set[str] = set()
_PROBE_STEPS = 2_000


def _option_error(name: str, options: dict, error: Exception) -> EnvError:
    shown = ", ".join(f"{k}={v!r}" for k, v in options.items()) or "none"
    return EnvError(
        f"bsuite:{name}: the env.options ({shown}) give an environment bsuite cannot run "
        f"({type(error).__name__}: {error}); check those values (e.g. lengths and counts must be positive)"
    )


def _probe(name: str, options: dict, build) -> None:
    """Step a separate copy of an env built with user options for up to _PROBE_STEPS steps: bsuite checks few options
    and fails much later (a negative memory_length raises "Invalid state." at the answer step). Once per process."""
    key = f"{name}|{sorted(options.items())!r}"
    if key in _PROBED:
        return
    env = build()
    steps = 0
    while steps < _PROBE_STEPS:
        timestep = env.reset()
        while not timestep.last() and steps < _PROBE_STEPS:
            timestep = env.step(0)
            steps += 1
    _PROBED.add(key)


class BsuiteEnv(DmEnvAdapter):
    """A bsuite (dm_env) environment as an r2i Env. `num_episodes`: bsuite's recommended experiment length."""

    def __init__(self, name: str, seed: int = 0, **options):
        self.env_id = f"bsuite:{name}"
        self._name, self._options = name, options
        self._experiment = name.partition("/")[0]
        self._setup(seed)
        self.num_episodes = int(getattr(self._env, "bsuite_num_episodes", 0))
        self._bonus_delay = discounting_chain_delay(name) if self._experiment == "discounting_chain" else 0
        self._chain_delay = 0

    def _build(self, seed: int):
        return _load(self._name, seed, self._options)

    def _reseed(self, seed: int) -> None:  # bsuite envs cannot be reseeded in place; rebuild with the new seed
        self._env = _load(self._name, seed, self._options)

    def _logs(self, flags: dict, action) -> dict:
        reward, first, last = float(flags["reward"]), bool(flags["is_first"]), bool(flags["is_last"])
        if self._experiment in ("memory_len", "memory_size"):
            return {"log_success": np.float32(last and reward > 0)}
        if self._experiment == "discounting_chain":
            if first:
                self._chain_delay = 0
            elif self._chain_delay == 0:  # the first action of the episode picks the chain
                self._chain_delay = DISCOUNTING_CHAIN_DELAYS[int(action)]
            bonus_chain = np.float32(self._chain_delay == self._bonus_delay)
            return {
                "log_bonus_delay": np.float32(self._bonus_delay),
                "log_chain_delay": np.float32(self._chain_delay),
                "log_bonus_chain": bonus_chain,
                "log_success": bonus_chain,
            }
        return {}


def make_bsuite(name: str, seed: int = 0, **options) -> BsuiteEnv:
    return BsuiteEnv(name, seed=seed, **options)
