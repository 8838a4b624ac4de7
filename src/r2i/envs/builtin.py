"""Two memory tasks that need only NumPy: `r2i:memory_length/N` and `r2i:repeat_previous/K`.

Both are deterministic given the seed: the env draws everything from `np.random.default_rng(seed)`, created at
construction and re-created by `reset(seed=...)`; `reset()` without a seed continues the same stream, so a run of
episodes is reproducible from the construction seed alone.

Both end their episodes with `is_last=True, is_terminal=True`. The horizon is part of the task, not a cut-off imposed
from outside: there is nothing left to earn after the last step, so the value of the final state is exactly 0 and the
agent must not bootstrap from it (POPGym's own RepeatPrevious also reports termination). The step count is also
observable (memory_length shows it; in repeat_previous the agent can count), so the task is not made non-Markovian
by the horizon.

Log keys are present on every step (0.0 until the last step) so batches of these envs always have the same keys.
"""

from __future__ import annotations

import numpy as np

from r2i.envs.base import ActionSpace, Episodic, Space
from r2i.errors import ConfigError, EnvError, did_you_mean


def _flags(reward: float, first: bool, last: bool, terminal: bool) -> dict:
    return {
        "reward": np.float32(reward),
        "is_first": np.bool_(first),
        "is_last": np.bool_(last),
        "is_terminal": np.bool_(terminal),
    }


class _SeededEnv(Episodic):
    """Shared bookkeeping: the seeded RNG, and the episode state (`Episodic`)."""

    def __init__(self, env_id: str, seed: int):
        self.env_id = env_id
        self._rng = np.random.default_rng(seed)

    def _start(self, seed: int | None) -> None:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._begin_episode()

    def close(self) -> None:
        pass

    # Optional protocol methods: the exact state, JSON-serialisable, so that a resumed run continues bit for bit.
    _STATE = ("_done",)

    def get_state(self) -> dict:
        state = {name: getattr(self, name) for name in self._STATE}
        state["rng"] = self._rng.bit_generator.state
        return state

    def set_state(self, state: dict) -> None:
        for name in self._STATE:
            setattr(self, name, state[name])
        self._rng.bit_generator.state = state["rng"]


class MemoryLength(_SeededEnv):
    """Remember a cue over N steps, then report it (like bsuite's memory_len).

    Observation `vector`, float32 `(2 + cues,)` = [time-remaining fraction, query flag, cue one-hot (`cues` entries)].
    Actions: one categorical with `cues` classes (agent format: one-hot float32 `(cues,)`).

    Timeline (t counts actions taken so far; N >= 1):

    * `reset()` → t=0: [1, 0, onehot(cue)], cue uniform in {0, …, cues-1}. This is the only time the cue is visible.
    * actions 1 … N-1 → t: [(N - t) / N, 0, 0…0], reward 0. The actions are ignored.
    * action N → t=N: [0, 1, 0…0], reward 0: the query flag asks for the answer.
    * action N+1 (the answer, chosen on the query observation) → [0, 0, 0…0], is_last = is_terminal = True,
      reward +1 if the answer equals the cue else -1, `log_success` 1.0 or 0.0.

    An episode is N + 1 actions (N + 2 observations). `log_success` is 0.0 on every step before the last.

    With `image=True` the same observation is drawn as the uint8 image `image` `(S, S, 3)` instead, S = `size`
    (64 by default; a power of two ≥ 16 — the smallest task that exercises the conv encoder and decoder on memory, and
    at `size=16` one cheap enough for the test suite): the cue as an S/2 × S/2 square in the middle, in one of
    `CUE_COLOURS` (cues ≤ 6), the time-remaining fraction as a grey bar along the top S/16 rows, the query flag as a
    white band along the bottom S/8 rows.
    """

    CUE_COLOURS = ((255, 0, 0), (0, 96, 255), (0, 200, 0), (255, 220, 0), (200, 0, 255), (0, 230, 230))

    def __init__(self, length: int, seed: int = 0, cues: int = 2, image: bool = False, size: int = 64,
                 env_id: str | None = None):
        if int(length) < 1:
            raise ConfigError(f"memory_length needs N >= 1 memory steps, got {length}: use e.g. r2i:memory_length/10")
        if int(cues) < 2:
            raise ConfigError(f"memory_length needs cues >= 2, got {cues}")
        if image and int(cues) > len(self.CUE_COLOURS):
            raise ConfigError(f"memory_length with image=true draws at most {len(self.CUE_COLOURS)} cues, got {cues}")
        if int(size) < 16 or int(size) & (int(size) - 1):
            raise ConfigError(f"memory_length image size must be a power of two >= 16 (e.g. 64 or 16), got {size}")
        if int(size) != 64 and not image:
            raise ConfigError(f"memory_length size={size} draws images: add image: true, or drop size")
        super().__init__(env_id or f"r2i:memory_length/{length}", seed)
        self._STATE = ("_done", "_t", "_cue")
        self.length, self.cues, self.image = int(length), int(cues), bool(image)
        self.size = int(size)
        self.obs_space = ({"image": Space((self.size, self.size, 3), np.uint8)} if self.image
                          else {"vector": Space((2 + self.cues,))})
        self.act_space = ActionSpace("discrete", nvec=(self.cues,))
        self._t = 0
        self._cue = 0

    def _obs(self) -> dict:
        vector = np.zeros(2 + self.cues, np.float32)
        if self._t <= self.length:
            vector[0] = (self.length - self._t) / self.length
        if self._t == self.length:
            vector[1] = 1.0
        if self._t == 0:
            vector[2 + self._cue] = 1.0
        return {"image": self._draw(vector)} if self.image else {"vector": vector}

    def _draw(self, vector: np.ndarray) -> np.ndarray:
        s = self.size
        image = np.zeros((s, s, 3), np.uint8)
        image[: s // 16, : round(s * float(vector[0]))] = 160
        if vector[1]:
            image[s - s // 8 :] = 255
        if self._t == 0:
            image[s // 4 : 3 * s // 4, s // 4 : 3 * s // 4] = self.CUE_COLOURS[self._cue]
        return image

    def reset(self, seed: int | None = None) -> dict:
        self._start(seed)
        self._t = 0
        self._cue = int(self._rng.integers(self.cues))
        return {**self._obs(), **_flags(0.0, True, False, False), "log_success": np.float32(0.0)}

    def step(self, action: np.ndarray) -> dict:
        self._check_running()
        answer = int(self.act_space.decode(action)[0])
        if self._t < self.length:
            self._t += 1
            return {**self._obs(), **_flags(0.0, False, False, False), "log_success": np.float32(0.0)}
        self._t += 1
        self._end_episode(True)
        success = answer == self._cue
        return {
            **self._obs(),
            **_flags(1.0 if success else -1.0, False, True, True),
            "log_success": np.float32(success),
        }


class RepeatPrevious(_SeededEnv):
    """Output the card shown K observations ago (like POPGym's RepeatPrevious).

    Observation `vector`, float32 `(cards,)`: one-hot of the current card, uniform in {0, …, cards-1}, fresh on every
    observation. Actions: one categorical with `cards` classes.

    Timeline (observation i shows card c_i; action a_i is chosen on observation i, i = 0 … length-1):

    * `reset()` → observation 0 with c_0.
    * action a_i → observation i+1 with c_{i+1} and reward: 0 if i < K; else +1/(length-K) if a_i == c_{i-K},
      -1/(length-K) otherwise. K = 0 asks for the current card (no memory needed).
    * action a_{length-1} → the last observation, is_last = is_terminal = True, `log_success` = fraction of the
      length-K scored actions that were right (0.0 on every earlier step).

    An episode is `length` actions; the return of the perfect policy is +1, of an always-wrong policy -1 (the POPGym
    normalisation). POPGym's `k` counts differently: its RepeatPrevious with k scores a_i against c_{i+1-k}, i.e. it
    equals this env with K = k - 1.
    """

    def __init__(self, k: int, seed: int = 0, cards: int = 4, length: int = 64, env_id: str | None = None):
        k, cards, length = int(k), int(cards), int(length)
        if k < 0:
            raise ConfigError(f"repeat_previous needs K >= 0, got {k}: use e.g. r2i:repeat_previous/4")
        if cards < 2:
            raise ConfigError(f"repeat_previous needs cards >= 2, got {cards}")
        if length <= k:
            raise ConfigError(f"repeat_previous needs length > K, got length={length}, K={k}: pass a larger length")
        super().__init__(env_id or f"r2i:repeat_previous/{k}", seed)
        self._STATE = ("_done", "_shown", "_correct")
        self.k, self.cards, self.length = k, cards, length
        self.obs_space = {"vector": Space((cards,))}
        self.act_space = ActionSpace("discrete", nvec=(cards,))
        self._shown: list[int] = []
        self._correct = 0

    def _show(self) -> np.ndarray:
        card = int(self._rng.integers(self.cards))
        self._shown.append(card)
        vector = np.zeros(self.cards, np.float32)
        vector[card] = 1.0
        return vector

    def reset(self, seed: int | None = None) -> dict:
        self._start(seed)
        self._shown = []
        self._correct = 0
        return {"vector": self._show(), **_flags(0.0, True, False, False), "log_success": np.float32(0.0)}

    def step(self, action: np.ndarray) -> dict:
        self._check_running()
        answer = int(self.act_space.decode(action)[0])
        i = len(self._shown) - 1  # index of the observation this action was chosen on
        reward = 0.0
        if i >= self.k:
            right = answer == self._shown[i - self.k]
            self._correct += int(right)
            reward = (1.0 if right else -1.0) / (self.length - self.k)
        last = i + 1 == self.length
        self._end_episode(last)
        success = self._correct / (self.length - self.k) if last else 0.0
        return {"vector": self._show(), **_flags(reward, False, last, last), "log_success": np.float32(success)}


BUILTINS = {"memory_length": MemoryLength, "repeat_previous": RepeatPrevious}
EXAMPLES = {"memory_length": "r2i:memory_length/10", "repeat_previous": "r2i:repeat_previous/4"}


def make_builtin(name: str, seed: int = 0, **options):
    """`memory_length/N` or `repeat_previous/K` (the part after `r2i:`) → env. Options go to the constructor."""
    task, _, arg = name.partition("/")
    if task not in BUILTINS:
        hint = did_you_mean(task, BUILTINS, show=lambda c: f"r2i:{c}/…")
        raise EnvError(f"unknown built-in environment 'r2i:{name}'; built-ins: {', '.join(EXAMPLES.values())}.{hint}")
    try:
        number = int(arg)
    except ValueError:
        raise EnvError(f"'r2i:{name}' needs an integer after '/', e.g. {EXAMPLES[task]}") from None
    try:
        return BUILTINS[task](number, seed=seed, env_id=f"r2i:{name}", **options)
    except TypeError as error:  # an unknown option
        raise ConfigError(f"r2i:{name}: bad option ({error}); see the docstring of r2i.envs.builtin") from None
