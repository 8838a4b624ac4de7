"""Observation and action spaces: the types that model code and the environment layer share.

A leaf module (NumPy only), so that the agent, world model and benchmarks can name a space without importing the
environment layer (adapters, driver, worker processes). `r2i.envs.base` re-exports both classes for env authors.

Actions in the agent's format are float32 vectors of `ActionSpace.size` entries: the concatenated one-hot encodings of
the sub-actions for discrete spaces, values in [-1, 1] for continuous spaces; `encode` / `decode` convert from / to the
environment's own format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class Space:
    """One observation entry: shape and dtype of the array the agent sees (float32 vectors or uint8 images)."""

    shape: tuple[int, ...]
    dtype: np.dtype = field(default=np.dtype(np.float32))

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        object.__setattr__(self, "dtype", np.dtype(self.dtype))

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 3

    def __str__(self) -> str:
        return f"{self.dtype.name}{list(self.shape)}"


@dataclass(frozen=True)
class ActionSpace:
    """Discrete (one or more categorical sub-actions with `nvec` classes each) or continuous (`dims` in [-1, 1])."""

    kind: Literal["discrete", "continuous"]
    nvec: tuple[int, ...] = ()
    dims: int = 0
    low: tuple[float, ...] = ()  # continuous only: the environment's bounds, for rescaling from [-1, 1]
    high: tuple[float, ...] = ()

    def __post_init__(self):
        if self.kind == "discrete" and (not self.nvec or min(self.nvec) < 1):
            raise ValueError(f"discrete action space needs nvec with positive entries, got {self.nvec}")
        if self.kind == "continuous" and self.dims < 1:
            raise ValueError(f"continuous action space needs dims >= 1, got {self.dims}")

    @property
    def discrete(self) -> bool:
        return self.kind == "discrete"

    @property
    def size(self) -> int:
        """Length of the agent's action vector."""
        return int(sum(self.nvec)) if self.discrete else int(self.dims)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """A uniformly random action in the agent's format: float32 (size,)."""
        if self.discrete:
            return self.encode(np.array([rng.integers(n) for n in self.nvec]))
        return rng.uniform(-1.0, 1.0, self.dims).astype(np.float32)

    def encode(self, native: np.ndarray) -> np.ndarray:
        """Environment format → agent format. Discrete: indices (len(nvec),) → one-hots (size,)."""
        if not self.discrete:
            native = np.asarray(native, np.float32)
            low, high = np.asarray(self.low, np.float32), np.asarray(self.high, np.float32)
            return np.clip(2.0 * (native - low) / (high - low) - 1.0, -1.0, 1.0).astype(np.float32)
        out = np.zeros(self.size, np.float32)
        offsets = np.cumsum((0,) + self.nvec[:-1])
        out[offsets + np.asarray(native, np.int64).reshape(-1)] = 1.0
        return out

    def decode(self, action: np.ndarray) -> np.ndarray:
        """Agent format → environment format. Discrete: int64 indices (len(nvec),); continuous: float32 in [low, high]."""
        action = np.asarray(action, np.float32)
        if action.shape != (self.size,):
            raise ValueError(f"action must have shape ({self.size},), got {action.shape}")
        if not self.discrete:
            low, high = np.asarray(self.low, np.float32), np.asarray(self.high, np.float32)
            return (low + (np.clip(action, -1.0, 1.0) + 1.0) * 0.5 * (high - low)).astype(np.float32)
        splits = np.split(action, np.cumsum(self.nvec)[:-1])
        return np.array([int(np.argmax(part)) for part in splits], np.int64)

    def __str__(self) -> str:
        if self.discrete:
            return f"discrete{list(self.nvec)}"
        return f"continuous[{self.dims}] in [{list(self.low)}, {list(self.high)}]"
