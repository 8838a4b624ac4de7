"""A disk-backed replay: the ring of `r2i.replay.Replay` kept in memory-mapped chunk files, for image replays larger
than RAM (Memory Maze's 10⁷ steps of 64×64×3 images are ≈ 115 GiB).

Same positions, same sampling. `DiskReplay` is a `Replay` whose storage is files: every stream has the same
`per_env = capacity // num_envs` ring slots, the write position, fill and sampler RNG are the base class's, and
`sample` draws the same windows from the same generator — only where the bytes live differs. On the same data,
`DiskReplay.sample` equals `Replay.sample` (tested).

Layout of `directory`:

    chunk_00000.bin …   the ring, split along time into chunks of `chunk` slots (the last may be shorter). Chunk k
                        is a raw array `(num_envs, rows_k)` of one NumPy structured record per stored step (one field
                        per spec key), memory-mapped; created sparse, so disk is used as the ring fills.
    index.json          written atomically (temporary file, fsync, rename): the layout (spec, num_envs, per_env,
                        chunk), a random id, and three global step counts per stream — `start` (oldest valid
                        step), `durable` (steps flushed to disk) and `dirty_end` (steps at or past it were never
                        written). The steps `[max(start, dirty_end - per_env), durable)` are intact on disk.

Writing: before the first write into a chunk, every dirty chunk is flushed (msync) and the index is rewritten with
`durable` = the steps written so far and `dirty_end` = the end of that chunk. A process killed at any moment
therefore loses at most the unfinished chunk: its new steps, and the old steps its slots held (tested by killing a
writer with SIGKILL in the middle of a step). RAM: the chunk being written is the only dirty memory; pages read by
`sample` are the kernel's page cache (clean, file-backed, dropped under memory pressure); a sampled batch is copied
out once. So resident memory is bounded by one chunk plus a batch, whatever the capacity.

Checkpoints: `state_dict` flushes, rewrites the index (`durable = dirty_end` = all steps added) and returns only the
counters and the sampler RNG (a few hundred bytes): the chunk files are the checkpoint, nothing is copied. A run
resumed from a checkpoint at step S (`load_state_dict`) keeps the intact steps before S and drops the ones written
after it (they belong to the timeline the checkpoint does not know); a run killed just after its checkpoint resumes
with exactly the replay it saved, so it continues bit for bit as with the in-memory replay. If the writer went on
past the checkpoint, the slots it overwrote are lost (the replay restarts with fewer old steps, with a warning).
`recover()` instead takes the index as the truth (no checkpoint needed): everything durable is kept.

One process writes to a directory at a time.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import secrets
import warnings
from pathlib import Path

import numpy as np

from r2i.errors import ConfigError
from r2i.replay import Replay, _norm_spec, human_bytes

INDEX = "index.json"
FORMAT = 1


def record_dtype(spec: dict) -> np.dtype:
    """One packed structured record per stored step: a field per spec key, `(shape, dtype)` as in the spec."""
    return np.dtype([(key, dtype, shape) if shape else (key, dtype) for key, (shape, dtype) in spec.items()])


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # directories cannot be opened on Windows
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DiskReplay(Replay):
    """`Replay` with its ring in memory-mapped chunk files under `directory` (see the module docstring).

    Args:
        spec, capacity, num_envs, length, seed: as for `Replay`.
        directory: where the chunk files and `index.json` live (created if needed). Files of an earlier run there are
            reused as storage; their steps count only once `load_state_dict` or `recover` reads the index.
        chunk: ring slots per chunk file and stream (≤ per_env). Bigger chunks mean fewer files and index writes,
            more dirty RAM and more steps lost to a crash.
    """

    def __init__(self, spec: dict, capacity: int, num_envs: int, length: int, seed: int = 0, *,
                 directory: str | os.PathLike, chunk: int = 1024):
        if chunk < 1:
            raise ConfigError(f"replay.chunk must be >= 1, got {chunk}")
        self.directory = Path(directory)
        self._chunk_arg = int(chunk)
        super().__init__(spec, capacity, num_envs, length, seed)

    # -------------------------------------------------------------------------------------------------- storage
    def _allocate(self) -> dict[str, np.ndarray]:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.chunk = min(self._chunk_arg, self.per_env)
        self.num_chunks = math.ceil(self.per_env / self.chunk)
        self.record = record_dtype(self.spec)
        self._maps: dict[int, tuple[mmap.mmap, np.ndarray]] = {}
        self._dirty: set[int] = set()
        self._dirty_end = 0  # global step (per stream) from which nothing was written since the last index
        self._id = secrets.token_hex(8)
        return {}

    def _rows(self, k: int) -> int:
        return min(self.chunk, self.per_env - k * self.chunk)

    def _array(self, k: int) -> np.ndarray:
        """Chunk k as a `(num_envs, rows)` record array over its memory-mapped file (opened on first use)."""
        if k not in self._maps:
            path = self.directory / f"chunk_{k:05d}.bin"
            size = self.num_envs * self._rows(k) * self.record.itemsize
            with open(path, "a+b") as f:  # creates it; a file of another layout is resized (its data is not valid)
                if os.fstat(f.fileno()).st_size != size:
                    f.truncate(size)
                buffer = mmap.mmap(f.fileno(), size)  # keeps its own descriptor
            self._maps[k] = (buffer, np.ndarray((self.num_envs, self._rows(k)), self.record, buffer))
        return self._maps[k][1]

    def _write(self, values: dict[str, np.ndarray]) -> None:
        g = self._added  # the global index (per stream) of the step being written
        if g >= self._dirty_end:
            chunk_end = min((self._pos // self.chunk + 1) * self.chunk, self.per_env)
            self._sync(dirty_end=g + chunk_end - self._pos)
        k = self._pos // self.chunk
        array = self._array(k)
        self._dirty.add(k)
        row = self._pos - k * self.chunk
        for key, value in values.items():
            array[key][:, row] = value

    def _gather(self, env: np.ndarray, index: np.ndarray) -> dict[str, np.ndarray]:
        out = np.empty(index.shape, self.record)
        env = np.broadcast_to(env[:, None], index.shape)
        which, row = np.divmod(index, self.chunk)
        for k in np.unique(which):
            mask = which == k
            out[mask] = self._array(int(k))[env[mask], row[mask]]
        return {key: np.ascontiguousarray(out[key]) for key in self.spec}

    def _sync(self, dirty_end: int) -> None:
        """Flush the dirty chunks, then atomically write the index: steps before `self._added` are durable, none at or
        past `dirty_end` has been written."""
        for k in sorted(self._dirty):
            self._maps[k][0].flush()
        self._dirty.clear()
        index = {
            "format": FORMAT, "id": self._id,
            "spec": {key: [list(shape), dtype.str] for key, (shape, dtype) in self.spec.items()},
            "num_envs": self.num_envs, "per_env": self.per_env, "chunk": self.chunk,
            "start": self._added - self._fill, "durable": self._added, "dirty_end": int(dirty_end),
        }  # fmt: skip
        tmp = self.directory / f".{INDEX}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(index))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.directory / INDEX)
        _fsync_dir(self.directory)
        self._dirty_end = int(dirty_end)

    def close(self) -> None:
        """Flush and record everything added, then unmap the files."""
        if self._maps:
            self._sync(dirty_end=self._added)
        buffers = [buffer for buffer, _ in self._maps.values()]
        self._maps.clear()  # drops the arrays over the buffers first: a buffer with live views cannot be closed
        for buffer in buffers:
            try:
                buffer.close()
            except BufferError:  # someone still holds a view of it; the mapping goes away with that view
                pass

    # ------------------------------------------------------------------------------------------------- sizes
    @staticmethod
    def estimate_ram(spec: dict, num_envs: int, chunk: int, batch: int, length: int) -> int:
        """Bytes of resident memory the disk replay needs: one dirty chunk, a sampled batch as records and as arrays."""
        itemsize = record_dtype(_norm_spec(spec)).itemsize
        return int(itemsize * (num_envs * chunk + 2 * batch * length))

    def describe(self) -> str:
        disk = human_bytes(self.estimate_bytes(self.spec, self.capacity, self.num_envs))
        return (
            f"replay: on disk at {self.directory}, capacity {self.per_env * self.num_envs:,} steps ({self.num_envs} "
            f"env(s) x {self.per_env:,}, {self.num_chunks} chunk files of {self.chunk:,}), windows of {self.length} "
            f"steps, ~{disk} disk when full"
        )

    # ------------------------------------------------------------------------------------------- save / restore
    def state_dict(self) -> dict[str, np.ndarray]:
        """Counters, sampler RNG and this replay's id; the data stay in the chunk files (flushed, index written)."""
        self._sync(dirty_end=self._added)
        state = self._counters_state()
        state["disk_id"] = np.frombuffer(bytes.fromhex(self._id), np.uint8).copy()
        return state

    def _read_index(self) -> dict | None:
        path = self.directory / INDEX
        try:
            index = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        expected = {
            "format": FORMAT, "num_envs": self.num_envs, "per_env": self.per_env, "chunk": self.chunk,
            "spec": {key: [list(shape), dtype.str] for key, (shape, dtype) in self.spec.items()},
        }  # fmt: skip
        differing = [key for key, value in expected.items() if index.get(key) != value]
        if differing:
            raise ConfigError(
                f"the replay files in {self.directory} have another layout ({', '.join(differing)} differ from this "
                "run's); resume with the replay settings they were written with, or use another replay.directory"
            )
        return index

    def _adopt(self, lo: int, hi: int, index_id: str) -> None:
        """Make the intact global steps `[lo, hi)` of every stream the buffer's content (hi = steps ever added)."""
        self._added = hi
        self._fill = hi - lo
        self._pos = hi % self.per_env
        self._id = index_id
        self._sync(dirty_end=hi)

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Resume from a checkpoint's `state_dict`: keep the intact steps written before it (module docstring)."""
        if any(key.startswith("data_") for key in state):
            raise ConfigError(
                "this checkpoint holds an in-memory replay (replay.backend=memory); resume with that backend"
            )
        self._check_counters(state)
        added, fill = int(state["added"]), int(state["fill"])
        if int(state["capacity"]) // self.num_envs != self.per_env:
            raise ConfigError(
                f"the checkpoint's disk replay holds {int(state['capacity']) // self.num_envs:,} steps per env, this "
                f"run's replay.capacity gives {self.per_env:,}; resume with the capacity the run was started with"
            )
        self._load_rng(state)
        saved_id = bytes(np.asarray(state["disk_id"], np.uint8)).hex()
        index = self._read_index()
        if index is None or index["id"] != saved_id or index["durable"] < added:
            reason = ("has no index" if index is None else "holds another run's replay" if index["id"] != saved_id
                      else "was not written up to the checkpoint")
            warnings.warn(f"replay directory {self.directory} {reason}: resuming with an empty replay", stacklevel=2)
            self._adopt(added, added, saved_id)
            return
        lo = max(index["start"], index["dirty_end"] - self.per_env, added - fill)
        self._adopt(min(lo, added), added, saved_id)
        if self._fill < fill:
            warnings.warn(
                f"replay: {fill - self._fill:,} of the {fill:,} steps per env of the checkpoint were overwritten after "
                f"it was written; resuming with the other {self._fill:,}", stacklevel=2,
            )

    def recover(self) -> int:
        """Take the index in `directory` as the truth (no checkpoint): keep every intact step and continue after the
        last durable one. Returns the steps per env kept; 0 without an index."""
        index = self._read_index()
        if index is None:
            return 0
        lo = max(index["start"], index["dirty_end"] - self.per_env, 0)
        self._adopt(min(lo, index["durable"]), index["durable"], index["id"])
        return self._fill


def replay_directory(config, logdir: str | Path) -> Path:
    """Where the disk backend keeps its chunk files: `replay.directory` relative to `logdir` (default `replay`)."""
    return Path(logdir) / (config.replay.directory or "replay")


def make_replay(config, spec: dict, num_envs: int, logdir: str | Path) -> Replay:
    """The replay a run's config asks for (`config.replay.backend`), windows of `run.batch_length`, seeded by `seed`.
    The disk backend's `replay.directory` is relative to `logdir` (default `<logdir>/replay`)."""
    replay, length = config.replay, config.run.batch_length
    if replay.backend == "disk":
        directory = replay_directory(config, logdir)
        return DiskReplay(spec, replay.capacity, num_envs, length, config.seed, directory=directory, chunk=replay.chunk)
    return Replay(spec, replay.capacity, num_envs, length, config.seed)
