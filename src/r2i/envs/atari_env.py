"""Atari 2600 games through the Arcade Learning Environment: `atari:<Game>`, e.g. `atari:Pong`, `atari:MsPacman`
(snake case works too: `atari:ms_pacman`, `atari:montezuma_revenge`).

Built as Gymnasium's `ALE/<Game>-v5` (ale-py). The defaults are ALE v5's, which match DreamerV3's full-length Atari
setting (sticky actions); the Atari 100k protocol is what the `atari100k` preset sets on top of them:

| setting | default here | Atari 100k (`atari100k` preset; R2I configs.yaml `atari100k.env.atari`, DreamerV3 `env.atari100k`) |
|---|---|---|
| sticky actions `repeat_action_probability` (per frame) | 0.25 | 0.0 (`sticky: False`) |
| no-op starts `noops` | 0 | 30 (`noops: 30`) |
| max-pool of the last two frames `max_pool` | False | True (both codes' `Atari.step`) |
| frames per agent step: r2i's `action_repeat` | 1 | 4 (`repeat: 4`) |

* `frameskip=1`: ALE steps single frames; the frame skip is r2i's `action_repeat` option (rewards summed);
* `max_pool=True`: every observation is the pixel-wise maximum of the current and the previous frame, so with
  `action_repeat=4` an agent step sees the maximum over the last two of its four frames (Atari sprites flicker
  between frames); after a reset the previous frame is the reset frame itself;
* `noops=N`: each episode starts with a uniformly random number of NOOP actions in [0, N] (DreamerV3's
  embodied/envs/atari.py; R2I's older copy draws from [0, N)), drawn from the env's seeded RNG; a game over during
  them resets again. They are not agent steps;
* the minimal action set of the game (`full_action_space=False`; option);
* RGB frames (`obs_type="rgb"`, 210×160×3) area-resized to the uint8 image `image` (64, 64, 3) by r2i.envs.layout
  (`obs_type="grayscale"` gives (64, 64, 1));
* losing a life is not terminal: episodes end at game over (`is_terminal=True`) or after
  `max_num_frames_per_episode=108_000` frames (30 minutes of play) by truncation (`is_terminal=False`).

Logged keys (from ALE's info, every step): `log_lives`, `log_episode_frame_number`, `log_frame_number`.

Any other option goes to `gymnasium.make` (ale-py's AtariEnv arguments, e.g. `mode`, `difficulty`). ale-py >= 0.9
ships the game ROMs, so nothing is downloaded. The no-op and max-pool steps are a small wrapper here: Gymnasium's
`AtariPreprocessing` needs OpenCV and does its own frame skip and resize, and its `MaxAndSkipObservation` keeps a
stale frame when an episode ends inside the skip.
"""

from __future__ import annotations

import numbers

import numpy as np

from r2i.envs.extras import require
from r2i.envs.gymnasium_env import GymnasiumEnv
from r2i.errors import EnvError, did_you_mean

# ALE v5 defaults with single-frame steps (not the Atari 100k protocol: see the module doc)
DEFAULTS = {
    "frameskip": 1,
    "repeat_action_probability": 0.25,
    "full_action_space": False,
    "max_num_frames_per_episode": 108_000,
    "obs_type": "rgb",
}


def _game_ids(gym) -> list[str]:
    return sorted(key[4:-3] for key in gym.registry if key.startswith("ALE/") and key.endswith("-v5"))


def _gym_id(name: str, gym) -> str:
    for candidate in (name, "".join(part[:1].upper() + part[1:] for part in name.split("_"))):
        if f"ALE/{candidate}-v5" in gym.registry:
            return f"ALE/{candidate}-v5"
    games = _game_ids(gym)
    hint = did_you_mean(name, games, n=3, show=lambda c: f"atari:{c}")
    raise EnvError(f"unknown Atari game 'atari:{name}'.{hint} Games: {', '.join(games)}")


def _protocol_wrapper(gym):
    class NoopsMaxPool(gym.Wrapper):
        """Random no-op starts and the maximum of the current and the previous frame (see the module doc)."""

        def __init__(self, env, noops: int, max_pool: bool):
            super().__init__(env)
            self.noops, self.max_pool = noops, max_pool
            self._prev = None

        def reset(self, **kwargs):
            obs, info = self.env.reset(**kwargs)
            for _ in range(int(self.env.unwrapped.np_random.integers(self.noops + 1))):
                obs, _, terminated, truncated, info = self.env.step(0)  # 0 is NOOP in every ALE action set
                if terminated or truncated:
                    obs, info = self.env.reset()
            self._prev = obs.copy()
            return obs, info

        def step(self, action):
            obs, reward, terminated, truncated, info = self.env.step(action)
            if self.max_pool:
                obs, self._prev = np.maximum(obs, self._prev), obs.copy()
            return obs, reward, terminated, truncated, info

    return NoopsMaxPool


def _check_options(env_id: str, noops, max_pool) -> tuple[int, bool]:
    if isinstance(noops, bool) or not isinstance(noops, numbers.Integral) or noops < 0:
        raise EnvError(f"{env_id}: option noops must be an integer >= 0 (random no-op starts), got {noops!r}")
    if not isinstance(max_pool, (bool, np.bool_)):
        raise EnvError(f"{env_id}: option max_pool must be true or false, got {max_pool!r}")
    return int(noops), bool(max_pool)


def make_atari(
    name: str, seed: int = 0, log_info: bool = True, noops: int = 0, max_pool: bool = False, **options
) -> GymnasiumEnv:
    """`gymnasium.make("ALE/<name>-v5", **DEFAULTS, **options)` with optional no-op starts and frame max-pooling,
    wrapped as an r2i Env (see the module doc)."""
    env_id = f"atari:{name}"
    noops, max_pool = _check_options(env_id, noops, max_pool)
    what = f"the Atari game '{name}'"
    gym = require("gymnasium", what, "atari")
    ale_py = require("ale_py", what, "atari", package="ale-py")
    gym.register_envs(ale_py)
    gym_id = _gym_id(name, gym)
    try:
        env = gym.make(gym_id, **{**DEFAULTS, **options})
        if noops or max_pool:
            env = _protocol_wrapper(gym)(env, noops, max_pool)
    except gym.error.Error as error:
        raise EnvError(f"{env_id}: ALE could not build it: {error}") from None
    except TypeError as error:  # unknown keyword options
        raise EnvError(f"{env_id}: bad option for ale-py's AtariEnv ({error})") from None
    try:
        return GymnasiumEnv(env, seed=seed, env_id=env_id, log_info=log_info)
    except BaseException:
        env.close()
        raise
