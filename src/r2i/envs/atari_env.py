"""Atari 2600 games through the Arcade Learning Environment: `atari:<Game>`, e.g. `atari:Pong`, `atari:MsPacman`
(snake case works too: `atari:ms_pacman`, `atari:montezuma_revenge`).

Built as Gymnasium's `ALE/<Game>-v5` (ale-py) with the DreamerV3 / Atari 100k protocol:

* `frameskip=1`: ALE steps single frames; the frame skip is r2i's `action_repeat` option (`action_repeat=4` for the
  protocol, as the atari100k preset sets it: 4 frames per agent step, rewards summed). Without it every frame is an
  agent step. Unlike some Atari pipelines there is no max-pooling over the last two frames of a repeat;
* sticky actions: `repeat_action_probability=0.25` (the v5 default, per frame; option);
* the minimal action set of the game (`full_action_space=False`; option);
* RGB frames (`obs_type="rgb"`, 210×160×3) area-resized to the uint8 image `image` (64, 64, 3) by r2i.envs.layout
  (`obs_type="grayscale"` gives (64, 64, 1));
* losing a life is not terminal: episodes end at game over (`is_terminal=True`) or after
  `max_num_frames_per_episode=108_000` frames (30 minutes of play) by truncation (`is_terminal=False`);
* no no-op starts.

Logged keys (from ALE's info, every step): `log_lives`, `log_episode_frame_number`, `log_frame_number`.

Any other option goes to `gymnasium.make` (ale-py's AtariEnv arguments, e.g. `mode`, `difficulty`). ale-py >= 0.9
ships the game ROMs, so nothing is downloaded.
"""

from __future__ import annotations

import difflib

from r2i.envs.extras import require
from r2i.envs.gymnasium_env import GymnasiumEnv
from r2i.errors import EnvError

PROTOCOL = {
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
    close = difflib.get_close_matches(name, games, n=3, cutoff=0.6)
    hint = f" Did you mean: {', '.join('atari:' + c for c in close)}?" if close else ""
    raise EnvError(f"unknown Atari game 'atari:{name}'.{hint} Games: {', '.join(games)}")


def make_atari(name: str, seed: int = 0, log_info: bool = True, **options) -> GymnasiumEnv:
    """`gymnasium.make("ALE/<name>-v5", **PROTOCOL, **options)` wrapped as an r2i Env (see the module doc)."""
    env_id = f"atari:{name}"
    what = f"the Atari game '{name}'"
    gym = require("gymnasium", what, "atari")
    ale_py = require("ale_py", what, "atari", package="ale-py")
    gym.register_envs(ale_py)
    gym_id = _gym_id(name, gym)
    try:
        env = gym.make(gym_id, **{**PROTOCOL, **options})
    except gym.error.Error as error:
        raise EnvError(f"{env_id}: ALE could not build it: {error}") from None
    except TypeError as error:  # unknown keyword options
        raise EnvError(f"{env_id}: bad option for ale-py's AtariEnv ({error})") from None
    try:
        return GymnasiumEnv(env, seed=seed, env_id=env_id, log_info=log_info)
    except BaseException:
        env.close()
        raise
