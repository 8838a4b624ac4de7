"""Turn a library's observation/action description into r2i's flat observation dict and agent action format.

The adapters (Gymnasium, POPGym, BSuite) first describe their native spaces as a small neutral tree, then this module
builds the conversion once per environment:

* a *leaf* is one array the environment emits: `Box` (numeric array), `Discrete` (one integer), `MultiDiscrete`
  (integer array) or `MultiBinary` (0/1 array);
* a *tree* is a leaf, a `dict` of trees (entries keep their names) or a `tuple` of trees (entries `obs_0`, `obs_1`, …).

Each leaf becomes one key of the observation dict:

* `Box` with dtype uint8 and shape (H, W) or (H, W, C) → image uint8 `(64, 64, C)` (C = 1 for (H, W)), resized with
  `resize_image` when not 64×64 already. Channels-last is expected; a (C, H, W) array with C in {1, 3, 4} and H, W > 4 is
  transposed to channels-last first;
* any other `Box` → float32 vector `(prod(shape),)`, flattened in C order (integer values are cast, not rescaled);
* `Discrete(n)` → float32 one-hot `(n,)`; `MultiDiscrete(nvec)` → concatenated one-hots `(sum(nvec),)`;
* `MultiBinary(shape)` → float32 vector `(prod(shape),)` of 0/1.

Key names: a plain (non-container) top-level space is `vector` or `image`; nested entries join their names with `_`
(`obs_0_1`, `sensors_camera`). Names that would clash with the step dict's own keys (`reward`, `is_first`, …, `log_*`)
get an `obs_` prefix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from r2i.envs.base import FLAG_KEYS, ActionSpace, Space
from r2i.errors import EnvError

IMAGE_SIZE = 64


@dataclass(frozen=True)
class Box:
    shape: tuple[int, ...]
    dtype: np.dtype


@dataclass(frozen=True)
class Discrete:
    n: int
    start: int = 0


@dataclass(frozen=True)
class MultiDiscrete:
    nvec: np.ndarray  # any shape, int
    start: np.ndarray  # same shape as nvec


@dataclass(frozen=True)
class MultiBinary:
    shape: tuple[int, ...]


Leaf = Box | Discrete | MultiDiscrete | MultiBinary
Tree = Leaf | dict | tuple
Converter = Callable[[Any], dict]


def is_image_box(leaf: Box) -> bool:
    """uint8 arrays of rank 2 or 3 are images; everything else numeric is a vector."""
    return np.dtype(leaf.dtype) == np.uint8 and len(leaf.shape) in (2, 3)


def _channels_first(shape: tuple[int, ...]) -> bool:
    return len(shape) == 3 and shape[0] in (1, 3, 4) and shape[1] > 4 and shape[2] > 4


def resize_image(image: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """uint8 (H, W, C) → uint8 (size, size, C).

    Per axis: when shrinking (H >= size), each output pixel is the mean of the block of input rows/columns it covers
    (area resize; blocks are floor(i*H/size) … floor((i+1)*H/size) - 1, so exact box averaging when H is a multiple of
    size); when enlarging (H < size), nearest neighbour (each input pixel repeated). Pure NumPy, no interpolation
    library needed.
    """
    out = image.astype(np.float32)
    for axis in (0, 1):
        length = out.shape[axis]
        if length == size:
            continue
        if length > size:
            starts = (np.arange(size) * length) // size
            counts = np.diff(np.append(starts, length)).astype(np.float32)
            out = np.add.reduceat(out, starts, axis=axis)
            out = out / (counts[:, None, None] if axis == 0 else counts[None, :, None])
        else:
            index = ((np.arange(size) + 0.5) * length / size).astype(np.int64)
            out = np.take(out, index, axis=axis)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _leaf_converter(leaf: Leaf, env_id: str) -> tuple[Space, Callable[[Any], np.ndarray]]:
    if isinstance(leaf, Box):
        if not (np.issubdtype(leaf.dtype, np.number) or np.dtype(leaf.dtype) == np.bool_):
            raise EnvError(f"{env_id}: Box observations of dtype {leaf.dtype} are not supported; use a numeric dtype")
        if is_image_box(leaf):
            transpose = _channels_first(leaf.shape)
            channels = 1 if len(leaf.shape) == 2 else (leaf.shape[0] if transpose else leaf.shape[2])

            def image(x, transpose=transpose):
                x = np.asarray(x)
                if x.ndim == 2:
                    x = x[:, :, None]
                elif transpose:
                    x = np.transpose(x, (1, 2, 0))
                if x.shape[:2] != (IMAGE_SIZE, IMAGE_SIZE):
                    x = resize_image(x)
                return np.ascontiguousarray(x, np.uint8)

            return Space((IMAGE_SIZE, IMAGE_SIZE, channels), np.uint8), image
        size = int(np.prod(leaf.shape, dtype=np.int64))
        return Space((size,)), lambda x: np.asarray(x, np.float32).reshape(-1)
    if isinstance(leaf, Discrete):
        n, start = int(leaf.n), int(leaf.start)

        def one_hot(x):
            index = int(np.asarray(x).reshape(())) - start
            if not 0 <= index < n:
                raise EnvError(f"{env_id}: observation {int(index + start)} is outside its Discrete({n}) space")
            out = np.zeros(n, np.float32)
            out[index] = 1.0
            return out

        return Space((n,)), one_hot
    if isinstance(leaf, MultiDiscrete):
        nvec = np.asarray(leaf.nvec, np.int64).reshape(-1)
        start = np.asarray(leaf.start, np.int64).reshape(-1)
        offsets = np.concatenate([[0], np.cumsum(nvec)[:-1]])
        total = int(nvec.sum())

        def one_hots(x):
            index = np.asarray(x, np.int64).reshape(-1) - start
            if index.shape != nvec.shape or np.any(index < 0) or np.any(index >= nvec):
                raise EnvError(f"{env_id}: observation {np.asarray(x).tolist()} is outside MultiDiscrete({nvec})")
            out = np.zeros(total, np.float32)
            out[offsets + index] = 1.0
            return out

        return Space((total,)), one_hots
    if isinstance(leaf, MultiBinary):
        size = int(np.prod(leaf.shape, dtype=np.int64))
        return Space((size,)), lambda x: np.asarray(x, np.float32).reshape(-1)
    raise TypeError(f"not a layout leaf: {leaf!r}")  # adapters only build the leaves above


def _safe_key(key: str) -> str:
    return f"obs_{key}" if key in FLAG_KEYS or key.startswith("log_") else key


def observation_converter(tree: Tree, env_id: str) -> tuple[dict[str, Space], Converter]:
    """Build (obs_space, convert) for a tree; `convert(native_obs)` returns {key: array} matching obs_space."""
    entries: list[tuple[str, tuple, Callable]] = []  # (key, path into the native observation, leaf converter)
    spaces: dict[str, Space] = {}

    def walk(node, name: str | None, path: tuple):
        if isinstance(node, dict):
            for child_key, child in node.items():
                walk(child, str(child_key) if name is None else f"{name}_{child_key}", path + (child_key,))
            return
        if isinstance(node, tuple):
            for index, child in enumerate(node):
                walk(child, f"obs_{index}" if name is None else f"{name}_{index}", path + (index,))
            return
        space, convert = _leaf_converter(node, env_id)
        key = _safe_key(name if name is not None else ("image" if space.is_image else "vector"))
        if key in spaces:
            raise EnvError(f"{env_id}: two observation entries flatten to the same key '{key}'; rename one of them")
        spaces[key] = space
        entries.append((key, path, convert))

    walk(tree, None, ())
    if not spaces:
        raise EnvError(f"{env_id}: the observation space is empty; the agent needs at least one observation entry")

    def convert(native) -> dict:
        out = {}
        for key, path, leaf_convert in entries:
            value = native
            for part in path:
                value = value[part]
            out[key] = leaf_convert(value)
        return out

    return spaces, convert


def discrete_action(nvec, start=None, shape: tuple[int, ...] = (), dtype=np.int64):
    """ActionSpace and decoder for one or more categorical sub-actions. The decoder returns an int of `start + index`
    when `shape == ()` (a Discrete space), else an array of that shape and dtype (MultiDiscrete/MultiBinary)."""
    nvec = np.asarray(nvec, np.int64).reshape(-1)
    start = np.zeros_like(nvec) if start is None else np.asarray(start, np.int64).reshape(-1)
    space = ActionSpace("discrete", nvec=tuple(int(n) for n in nvec))

    def decode(action: np.ndarray):
        index = space.decode(action) + start
        if shape == ():
            return int(index[0])
        return index.reshape(shape).astype(dtype)

    return space, decode


def continuous_action(low, high, env_id: str, shape: tuple[int, ...] | None = None, dtype=np.float32):
    """ActionSpace and decoder for a bounded box: the agent's [-1, 1] is rescaled linearly to [low, high]."""
    low = np.asarray(low, np.float64).reshape(-1)
    high = np.asarray(high, np.float64).reshape(-1)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise EnvError(
            f"{env_id}: the continuous action space has infinite bounds (low={low.tolist()}, high={high.tolist()}); "
            "r2i rescales actions from [-1, 1] and needs finite bounds: wrap the environment in "
            "gymnasium.wrappers.ClipAction/RescaleAction or give its action space finite low/high"
        )
    if np.any(high <= low):
        raise EnvError(f"{env_id}: the continuous action space needs high > low, got low={low}, high={high}")
    shape = tuple(shape) if shape is not None else (low.size,)
    space = ActionSpace("continuous", dims=int(low.size), low=tuple(low.tolist()), high=tuple(high.tolist()))

    def decode(action: np.ndarray):
        return space.decode(action).reshape(shape).astype(dtype)

    return space, decode
