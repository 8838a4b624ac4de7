"""Replay buffer: one FIFO ring per environment, sampled as windows of `length` consecutive steps.

Each stored step t of an env stream holds

* the observation obs_t (one entry per observation key),
* `action`: the action a_t the agent took *at* obs_t,
* `reward`: the reward r_t received on *arriving* at obs_t (0 on the first step of an episode),
* `is_first`, `is_last`, `is_terminal`: the flags of obs_t (see `r2i.envs.base`).

All envs step in lockstep, so `add` takes every key batched over envs, `(num_envs, ...)`, and every stream has the
same length. A stream holds `capacity // num_envs` steps; when full, the oldest step is overwritten.

`sample` draws windows of `length` consecutive steps of one stream, the start uniform over all valid windows of all
streams. Windows cross episode boundaries (the `is_first` flags inside a window mark where a new episode starts) but
never the ring's write position, so a window never joins the newest step to the oldest one. The first step of every
sampled window gets `is_first=True`: the world model starts each window from its initial state and carries nothing
between windows, so the first step must be treated as the start of a sequence. Each window also comes with
`seen_start`: whether the window holds the first step of each step's episode. It is False on the steps of the episode
that the window's start cut into, whose sequence state lacks what the episode showed before the window (see
`model.mask_cut_episodes`).

`state_dict` / `load_state_dict` save and restore everything (data, counters, sampler RNG) with plain NumPy arrays.
"""

from __future__ import annotations

import math

import numpy as np

from r2i.errors import ConfigError

Spec = dict[str, tuple[tuple[int, ...], np.dtype]]


def _norm_spec(spec: dict) -> Spec:
    out = {}
    for key, (shape, dtype) in spec.items():
        if "." in key or "/" in key:
            raise ValueError(f"replay spec key {key!r} must not contain '.' or '/'")
        out[key] = (tuple(int(s) for s in shape), np.dtype(dtype))
    return out


def human_bytes(n: float) -> str:
    """1536 → '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # unreachable


class Replay:
    """Per-env FIFO ring buffers sampled as uniform windows of `length` consecutive steps.

    Args:
        spec: key → (shape, dtype) of one step of one env, e.g. `{'image': ((64, 64, 3), uint8), 'action': ((2,),
            float32), 'reward': ((), float32), 'is_first': ((), bool), 'is_last': ((), bool), 'is_terminal': ((),
            bool)}`. Keys must not contain '.' or '/'.
        capacity: steps stored over all envs; each env stream holds `capacity // num_envs`.
        num_envs: number of env streams (all step in lockstep).
        length: steps per sampled window.
        seed: seed of the sampler's own NumPy generator.
    """

    def __init__(self, spec: dict, capacity: int, num_envs: int, length: int, seed: int = 0):
        if num_envs < 1:
            raise ConfigError(f"num_envs must be >= 1, got {num_envs}")
        if length < 1:
            raise ConfigError(f"replay window length must be >= 1, got {length}")
        if capacity < num_envs * length:
            raise ConfigError(
                f"replay.capacity={capacity} is too small: it must be >= num_envs * length = {num_envs} * {length} "
                f"= {num_envs * length} so that every env stream holds at least one window; raise replay.capacity"
            )
        self.spec = _norm_spec(spec)
        self.capacity = int(capacity)
        self.num_envs = int(num_envs)
        self.length = int(length)
        self.per_env = self.capacity // self.num_envs
        self._data = self._allocate()
        self._pos = 0  # next write index, the same in every stream
        self._fill = 0  # steps stored per stream, <= per_env
        self._added = 0  # steps ever added per stream
        self._rng = np.random.Generator(np.random.PCG64(seed))

    # ----------------------------------------------------------------------------------------------------- sizes
    def __len__(self) -> int:
        """Steps stored over all envs."""
        return self._fill * self.num_envs

    @property
    def added(self) -> int:
        """Steps ever added over all envs (including evicted ones)."""
        return self._added * self.num_envs

    def _starts_per_env(self) -> int:
        return max(0, self._fill - self.length + 1)

    def num_windows(self) -> int:
        """Number of distinct windows `sample` can return."""
        return self._starts_per_env() * self.num_envs

    def ready(self, batch: int) -> bool:
        """True when at least `batch` distinct windows exist (sampling is with replacement; this avoids a first
        batch made of copies of the same few windows)."""
        return self.num_windows() >= max(1, batch)

    @staticmethod
    def estimate_bytes(spec: dict, capacity: int, num_envs: int = 1) -> int:
        """Bytes of the arrays a full buffer holds: `(capacity // num_envs) * num_envs` steps of `spec`."""
        per_step = sum(math.prod(shape) * np.dtype(dtype).itemsize for shape, dtype in _norm_spec(spec).values())
        return int(per_step * (capacity // num_envs) * num_envs)

    def describe(self) -> str:
        """One line for the start of a run: capacity, per-env capacity, window length, RAM when full."""
        ram = human_bytes(self.estimate_bytes(self.spec, self.capacity, self.num_envs))
        return (
            f"replay: capacity {self.per_env * self.num_envs:,} steps ({self.num_envs} env(s) x {self.per_env:,}), "
            f"windows of {self.length} steps, ~{ram} RAM when full"
        )

    # ---------------------------------------------------------------------------------------------- add / sample
    def add(self, step: dict[str, np.ndarray]) -> None:
        """Store one step of every env. Each spec key must be present with shape `(num_envs, *shape)` and a dtype
        castable (same kind) to the spec's; extra keys (e.g. `log_*`) are ignored."""
        values = {}
        for key, (shape, dtype) in self.spec.items():
            if key not in step:
                raise ValueError(f"replay.add: step is missing key {key!r} (has {sorted(step)})")
            value = np.asarray(step[key])
            if value.shape != (self.num_envs, *shape):
                raise ValueError(
                    f"replay.add: {key!r} has shape {value.shape}, expected {(self.num_envs, *shape)} (num_envs, ...)"
                )
            if not np.can_cast(value.dtype, dtype, "same_kind"):
                raise ValueError(f"replay.add: {key!r} has dtype {value.dtype}, cannot store it as {dtype}")
            values[key] = value
        self._write(values)  # only once everything is valid: never a half-written step
        self._pos = (self._pos + 1) % self.per_env
        self._fill = min(self._fill + 1, self.per_env)
        self._added += 1

    def sample(self, batch: int, rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
        """`batch` windows, each `length` consecutive steps of one env stream, start uniform over all windows, drawn
        with the replay's own generator or with `rng` (which leaves the training batches' draws untouched).

        Returns key → array `(batch, length, *shape)` of the spec dtype. `is_first[:, 0]` is always True (see the
        module docstring); the other `is_first` entries are the stored flags. With `is_first` in the spec, also
        `seen_start` `(batch, length)` bool: True from the window's first stored episode start on (from step 0 when the
        window starts an episode), False before it.
        """
        starts = self._starts_per_env()
        if starts == 0:
            raise ValueError(f"replay.sample: {len(self)} steps stored, need {self.length} per env for one window")
        flat = (self._rng if rng is None else rng).integers(0, starts * self.num_envs, size=batch)
        env, start = np.divmod(flat, starts)
        oldest = (self._pos - self._fill) % self.per_env
        index = (oldest + start[:, None] + np.arange(self.length)[None, :]) % self.per_env  # (batch, length)
        out = self._gather(env, index)
        if "is_first" in out:
            out["seen_start"] = np.logical_or.accumulate(out["is_first"], axis=1)
            out["is_first"][:, 0] = True
        return out

    # ------------------------------------------------------------------------------------------------- storage
    # The ring's storage, behind two methods so that `r2i.replay_disk.DiskReplay` can keep it in memory-mapped files
    # with the same positions and the same sampling.
    def _allocate(self) -> dict[str, np.ndarray]:
        # np.zeros maps memory lazily: RAM is committed as the rings fill.
        return {key: np.zeros((self.num_envs, self.per_env, *shape), dtype) for key, (shape, dtype) in self.spec.items()}

    def _write(self, values: dict[str, np.ndarray]) -> None:
        """Store one step of every env, `values[key]` `(num_envs, *shape)`, at ring slot `self._pos`."""
        for key, value in values.items():
            self._data[key][:, self._pos] = value

    def _gather(self, env: np.ndarray, index: np.ndarray) -> dict[str, np.ndarray]:
        """key → `(batch, length, *shape)` copies of the slots `index` `(batch, length)` of streams `env` `(batch,)`."""
        return {key: array[env[:, None], index] for key, array in self._data.items()}

    def close(self) -> None:
        """Release the storage's resources (nothing to do for the in-memory ring)."""

    # ------------------------------------------------------------------------------------------- save / restore
    def state_dict(self) -> dict[str, np.ndarray]:
        """Everything needed to resume, as NumPy arrays (0-d for scalars) under dot-free keys.

        `data_<key>` is the ring as stored, `(num_envs, filled_per_env, *shape)` — a view, not a copy, so that saving
        a replay of several GB needs no second copy in RAM — with `pos` (next write index) and `fill`.
        """
        state = {f"data_{key}": array[:, : self._fill] for key, array in self._data.items()}
        state.update(self._counters_state())
        return state

    def _counters_state(self) -> dict[str, np.ndarray]:
        rng = self._rng.bit_generator.state
        words = []
        for big in (rng["state"]["state"], rng["state"]["inc"]):
            words += [big >> 64, big & (2**64 - 1)]
        words += [rng["has_uint32"], rng["uinteger"]]
        return dict(
            capacity=np.array(self.capacity, np.int64),
            num_envs=np.array(self.num_envs, np.int64),
            length=np.array(self.length, np.int64),
            added=np.array(self._added, np.int64),
            pos=np.array(self._pos, np.int64),
            fill=np.array(self._fill, np.int64),
            rng_state=np.array(words, np.uint64),
        )

    def _check_counters(self, state: dict[str, np.ndarray]) -> None:
        num_envs, length = int(state["num_envs"]), int(state["length"])
        if num_envs != self.num_envs:
            raise ValueError(f"replay state has num_envs={num_envs}, this run has num_envs={self.num_envs}")
        if length != self.length:
            raise ValueError(f"replay state has window length={length}, this run has length={self.length}")

    def _load_rng(self, state: dict[str, np.ndarray]) -> None:
        w = [int(x) for x in np.asarray(state["rng_state"], np.uint64)]
        rng = self._rng.bit_generator.state
        rng["state"] = {"state": (w[0] << 64) | w[1], "inc": (w[2] << 64) | w[3]}
        rng["has_uint32"], rng["uinteger"] = w[4], w[5]
        self._rng.bit_generator.state = rng

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore a `state_dict`. The spec, num_envs and length must match (ValueError naming the difference).

        A different capacity is accepted: the newest `capacity // num_envs` steps per env are kept. The arrays may be
        memory-mapped files: they are copied into this buffer's own arrays.
        """
        self._check_counters(state)
        num_envs = self.num_envs
        keys = {k[len("data_") :] for k in state if k.startswith("data_")}
        if keys != set(self.spec):
            raise ValueError(
                f"replay state has keys {sorted(keys)}, this run's spec has {sorted(self.spec)} "
                f"(missing {sorted(set(self.spec) - keys)}, extra {sorted(keys - set(self.spec))})"
            )
        fill, arrays = None, {}
        for key, (shape, dtype) in self.spec.items():
            array = arrays[key] = np.asarray(state[f"data_{key}"])
            if array.dtype != dtype or array.shape[:1] + array.shape[2:] != (num_envs, *shape):
                raise ValueError(
                    f"replay state key {key!r} holds {array.dtype}{list(array.shape[2:])}, "
                    f"this run's spec has {dtype}{list(shape)}"
                )
            if fill is not None and array.shape[1] != fill:
                raise ValueError(f"replay state is inconsistent: {key!r} holds {array.shape[1]} steps, not {fill}")
            fill = array.shape[1]
        fill = fill or 0
        pos = int(state["pos"])
        if fill == self.per_env or fill < self.per_env and pos == fill % self.per_env:
            # Same ring size (or not yet wrapped): copy the ring as it is, positions included.
            for key, array in self._data.items():
                array[:, :fill] = arrays[key]
            self._fill, self._pos = fill, pos % self.per_env  # a ring filled to exactly this size wraps to 0
        else:  # another capacity: keep the newest steps, oldest first
            order = (pos - fill + np.arange(fill)) % fill if fill else np.arange(0)
            keep = min(fill, self.per_env)
            for key, array in self._data.items():
                array[:, :keep] = arrays[key][:, order[fill - keep :]]
            self._fill = keep
            self._pos = keep % self.per_env
        self._added = int(state["added"])
        self._load_rng(state)

