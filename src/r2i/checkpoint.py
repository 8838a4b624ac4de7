"""Atomic checkpoints of a training run.

    ckpt = Checkpointer(logdir / "checkpoints", keep=2)
    if ckpt.latest() is not None:
        state, replay_state, meta = ckpt.restore(agent.abstract_state())
    ...
    ckpt.save(step, state, replay.state_dict(), {"config": ..., "counters": ...})

A checkpoint is one directory `ckpt_<step>/` holding

    state/            the JAX pytree (parameters, optimiser states, JAX RNG keys), written by orbax-checkpoint
    replay/<key>.npy  one NumPy file per replay array (`np.save`, no pickle)
    meta.json         the JSON-serialisable `meta` dict (counters, config, NumPy RNG state, ...)
    checkpoint.json   written last: format version, step, a serial number, and the path / shape / dtype of every
                      state leaf and replay array (used to check a restore target and to name what differs)

Atomicity: everything is written into a hidden temporary directory next to the checkpoints, every file and directory
is fsync'd, then the directory is renamed to `ckpt_<step>` and the parent directory fsync'd. A process killed at any
point (SIGKILL, power loss after the fsyncs) leaves either the complete checkpoint or none; leftovers of dead writers
(hidden `.tmp-*`, `.old-*`, `.del-*` directories named after the writer's pid and host) are removed when a
Checkpointer is created and before each save; those of a live process on this host, or less than an hour old from
another host, are left alone.
Old checkpoints are pruned only after the new one is in place, and by renaming them to a hidden name first, so a
checkpoint directory that is visible and has `checkpoint.json` is always complete. Saving a step that already exists
moves the old directory aside, renames the new one in, then deletes the old one; a crash between those two renames
is repaired at the next start (the old one is moved back).

`latest()` is the checkpoint written most recently (each save records a serial number), not the largest step: a run
resumed from an older checkpoint with `restore(step=...)` continues that timeline, and pruning keeps the `keep` most
recently written checkpoints. One process writes to a directory at a time.

The state (a JAX pytree) is written by orbax-checkpoint, the replay as one `.npy` file per array, meta as plain JSON
(key order is kept, integers of any size and floats are exact, but tuples come back as lists and non-string dict keys
as strings). Why each, and what the alternatives cost: docs/design.md §10.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import shutil
import socket
import time
import zlib
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from r2i.errors import R2IError

__all__ = ["CheckpointError", "CheckpointMismatchError", "Checkpointer"]

FORMAT = 1
_CKPT = re.compile(r"^ckpt_(\d+)$")
_HIDDEN = re.compile(r"^\.(tmp|old|del)-(\d+)-([0-9a-f]+)-(.*)$")
_REPLAY_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_INFO = "checkpoint.json"
_FOREIGN_GRACE_S = 3600.0
HINT = "resume with the configuration the run was started with, or start afresh with --force or a new logdir"


class CheckpointError(R2IError, RuntimeError):
    """A checkpoint that cannot be used: missing, unreadable or inconsistent."""


class CheckpointMismatchError(R2IError, ValueError):
    """The checkpoint's state does not fit the run's state (different config, model or optimiser)."""


# ------------------------------------------------------------------------------------------------------ file helpers
def _fsync_path(path: Path) -> None:
    """fsync a file or a directory (directories cannot be opened on Windows: skipped there)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if path.is_dir():
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not path.is_dir():
            raise
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            _fsync_path(Path(dirpath, name))
        _fsync_path(Path(dirpath))


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _leaves(tree) -> list[tuple[str, Any]]:
    return [(jax.tree_util.keystr(path), leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]]


def _shape_dtype(leaf) -> tuple[tuple[int, ...], Any]:
    """Shape and dtype of an array-like leaf; Python / NumPy values get the dtype `jnp.asarray` would give them."""
    if isinstance(leaf, (jax.Array, jax.ShapeDtypeStruct)):
        return tuple(leaf.shape), leaf.dtype
    leaf = np.asarray(leaf)
    return leaf.shape, jax.dtypes.canonicalize_dtype(leaf.dtype)


def _describe(leaf) -> tuple[list[int], str]:
    shape, dtype = _shape_dtype(leaf)
    return [int(d) for d in shape], str(dtype)


def _fmt(shape, dtype) -> str:
    return f"{dtype}[{','.join(map(str, shape))}]"


def _default_device():
    dev = jax.config.jax_default_device
    if isinstance(dev, str):
        return jax.devices(dev)[0]
    return dev if dev is not None else jax.devices()[0]


# ------------------------------------------------------------------------------------------------------ Checkpointer
class Checkpointer:
    """Writes and reads checkpoints `ckpt_<step>/` under `directory`, keeping the newest `keep` (None: all).

    Args:
      directory: created if missing. Only one process should write to it at a time.
      keep: number of checkpoints kept (the most recently written ones); older ones are deleted after each save.
      hint: the advice appended to a mismatch error (shown to users who resume a run with another configuration).
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        keep: int | None = 2,
        hint: str = HINT,
    ):
        if keep is not None and keep < 1:
            raise ValueError(f"keep must be >= 1 or None, got {keep}")
        self.directory = Path(directory).absolute()
        self.keep = keep
        self.hint = hint
        self.directory.mkdir(parents=True, exist_ok=True)
        self._host = socket.gethostname().replace("/", "_")
        self._cleanup()

    def __repr__(self) -> str:
        return f"Checkpointer({str(self.directory)!r}, keep={self.keep})"

    # -------------------------------------------------------------------------------------------------- listing
    def path(self, step: int) -> Path:
        return self.directory / f"ckpt_{int(step):010d}"

    def _complete(self) -> dict[int, Path]:
        """step → directory, for visible checkpoints whose checkpoint.json exists."""
        out = {}
        if not self.directory.is_dir():
            return out
        for entry in self.directory.iterdir():
            match = _CKPT.match(entry.name)
            if match and entry.name == self.path(int(match.group(1))).name and (entry / _INFO).is_file():
                out[int(match.group(1))] = entry
        return out

    def _info(self, path: Path) -> dict:
        try:
            info = json.loads((path / _INFO).read_text())
        except (OSError, ValueError) as e:
            raise CheckpointError(f"checkpoint {path} is unreadable ({e}); delete it to use an older one") from e
        if info.get("format") != FORMAT:
            raise CheckpointError(
                f"checkpoint {path} has format {info.get('format')!r}; this version of r2i reads format {FORMAT}"
            )
        return info

    def _by_serial(self) -> list[tuple[int, int]]:
        """(serial, step) of the complete checkpoints, oldest written first."""
        out = []
        for step, path in self._complete().items():
            try:
                serial = int(json.loads((path / _INFO).read_text()).get("serial", -1))
            except (OSError, ValueError):
                serial = -1
            out.append((serial, step))
        return sorted(out)

    def steps(self) -> list[int]:
        """Steps of the complete checkpoints, ascending."""
        return sorted(self._complete())

    def latest(self) -> int | None:
        """Step of the checkpoint written most recently, None if there is none."""
        order = self._by_serial()
        return order[-1][1] if order else None

    # ---------------------------------------------------------------------------------------------------- clean up
    def _hidden_name(self, kind: str) -> Path:
        return self.directory / f".{kind}-{os.getpid()}-{secrets.token_hex(4)}-{self._host}"

    def _cleanup(self) -> None:
        """Remove what dead writers left: partial saves, deletions, and replaced checkpoints (moved back if needed)."""
        for entry in self.directory.iterdir():
            match = _HIDDEN.match(entry.name)
            if not match or not entry.is_dir():
                continue
            kind, pid, host = match.group(1), int(match.group(2)), match.group(4)
            if host == self._host and pid != os.getpid() and _pid_alive(pid):
                continue  # another live process is writing here
            if host != self._host and time.time() - entry.stat().st_mtime < _FOREIGN_GRACE_S:
                continue  # perhaps a live writer on another machine (shared file system): wait until it is old
            if kind == "old" and (entry / _INFO).is_file():
                try:
                    step = int(json.loads((entry / _INFO).read_text())["step"])
                except (OSError, ValueError, KeyError):
                    step = None
                if step is not None and not self.path(step).exists():
                    os.replace(entry, self.path(step))  # crashed between moving it aside and moving the new one in
                    _fsync_path(self.directory)
                    continue
            shutil.rmtree(entry, ignore_errors=True)

    def _delete(self, path: Path) -> None:
        trash = self._hidden_name("del")
        os.replace(path, trash)
        shutil.rmtree(trash, ignore_errors=True)

    # -------------------------------------------------------------------------------------------------------- save
    def save(self, step: int, state, replay: dict[str, np.ndarray] | None = None, meta: dict | None = None) -> Path:
        """Write a checkpoint of `state` (JAX pytree), `replay` (flat dict of arrays) and `meta` (JSON-able dict).

        Returns the checkpoint directory. Saving a step that exists replaces it. Synchronous: when it returns, the
        checkpoint is on disk (fsync'd) and older ones beyond `keep` are deleted.
        """
        import orbax.checkpoint as ocp  # imported here: it takes ~0.7 s, and r2i's CLI imports this module

        step = int(step)
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        replay = dict(replay or {})
        for key, value in replay.items():
            if not isinstance(key, str) or not _REPLAY_KEY.match(key):
                raise ValueError(f"replay key {key!r} is not usable as a file name (letters, digits, _ . -)")
            if np.asarray(value).dtype.hasobject:
                raise TypeError(f"replay[{key!r}] has dtype object; only plain NumPy arrays can be checkpointed")
        try:
            meta_bytes = json.dumps(meta or {}, indent=1).encode()
        except (TypeError, ValueError) as e:
            raise TypeError(f"checkpoint meta is not JSON-serialisable: {e}") from e
        state = jax.tree.map(lambda x: x if isinstance(x, jax.Array) else jnp.asarray(x), state)

        self.directory.mkdir(parents=True, exist_ok=True)
        self._cleanup()
        order = self._by_serial()
        serial = max((s for s, _ in order), default=-1) + 1
        tmp = self._hidden_name("tmp")
        tmp.mkdir()
        try:
            if jax.tree.leaves(state):  # orbax refuses a tree without leaves
                with ocp.StandardCheckpointer() as ckptr:
                    ckptr.save(tmp / "state", state)
                    ckptr.wait_until_finished()
            (tmp / "replay").mkdir()
            replay_info = {}
            for key, value in replay.items():
                array = np.asarray(value)
                with open(tmp / "replay" / f"{key}.npy", "wb") as f:
                    np.save(f, array, allow_pickle=False)
                    f.flush()
                    os.fsync(f.fileno())
                replay_info[key] = {"shape": list(array.shape), "dtype": array.dtype.str}
            _write_file(tmp / "meta.json", meta_bytes)
            info = {
                "files": _file_table(tmp),
                "format": FORMAT,
                "step": step,
                "serial": serial,
                "time": time.time(),
                "state": [[path, *_describe(leaf)] for path, leaf in _leaves(state)],
                "replay": replay_info,
                "versions": _versions(),
            }
            _write_file(tmp / _INFO, json.dumps(info, indent=1).encode())
            _fsync_tree(tmp)
            final = self.path(step)
            if final.exists():
                old = self._hidden_name("old")
                os.replace(final, old)
                os.replace(tmp, final)
                _fsync_path(self.directory)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, final)
                _fsync_path(self.directory)
        except BaseException as error:
            shutil.rmtree(tmp, ignore_errors=True)
            os_error = _os_error_in(error)
            if os_error is not None and isinstance(error, Exception):
                previous = order[-1][1] if order else None
                kept = f"the previous checkpoint (step {previous}) is intact" if previous is not None else (
                    "no earlier checkpoint exists")
                raise CheckpointError(
                    f"could not write the checkpoint of step {step} to {self.directory}: "
                    f"{os.strerror(os_error.errno) if os_error.errno else os_error}; {kept}. "
                    f"{_FIXES.get(os_error.errno, 'Fix the file system, then resume')}"
                ) from None
            raise
        if self.keep is not None:
            kept = {s for _, s in self._by_serial()[-self.keep :]} | {step}
            for old_step, path in self._complete().items():
                if old_step not in kept:
                    self._delete(path)
            _fsync_path(self.directory)
        return final

    # ----------------------------------------------------------------------------------------------------- restore
    def restore_intact(self, target, *, mmap_replay: bool = False, replay: bool = True, warn=None):
        """Restore the newest checkpoint that reads back intact → (step, state, replay dict, meta dict).

        A damaged checkpoint (a truncated or corrupted file, an unreadable directory) is skipped for the next older
        one, and `warn` (a callable taking one line, e.g. `print`) is told which step was skipped and why. A target
        that does not fit (CheckpointMismatchError) is raised at once: an older checkpoint of the same run would not
        fit either. Raises CheckpointError when there is no checkpoint, or none is intact.
        """
        order = [step for _, step in reversed(self._by_serial())]
        if not order:
            raise CheckpointError(f"no checkpoint in {self.directory}")
        problems = []
        for step in order:
            try:
                state, arrays, meta = self.restore(target, step, mmap_replay=mmap_replay, replay=replay)
            except CheckpointMismatchError:
                raise
            except Exception as error:  # noqa: BLE001 — orbax/tensorstore raise many types for a damaged file
                reason = _one_line(error)
                problems.append(f"step {step}: {reason}")
                if warn is not None:
                    warn(f"r2i: checkpoint {self.path(step).name} is damaged ({reason}); trying an older one")
                continue
            if problems and warn is not None:
                warn(f"r2i: restored the newest intact checkpoint, {self.path(step).name} (step {step})")
            return step, state, arrays, meta
        raise CheckpointError(
            f"no intact checkpoint in {self.directory} ({'; '.join(problems)}); start afresh with a new --logdir"
        )

    def restore(self, target, step: int | None = None, *, mmap_replay: bool = False, replay: bool = True):
        """Read a checkpoint (default: `latest()`) → (state, replay dict, meta dict).

        `target` is a pytree with the saved state's structure: concrete arrays or `jax.ShapeDtypeStruct`s (e.g. from
        `jax.eval_shape`). The state comes back with the target's exact pytree structure, shapes and dtypes, as JAX
        arrays with the target leaves' sharding where they have one, else on the default device. A target whose leaf
        paths, shapes or dtypes differ raises CheckpointMismatchError naming the first difference.
        `mmap_replay=True` returns the replay arrays as read-only memory maps instead of loading them;
        `replay=False` skips them (an empty dict: enough to act with the policy).
        Files whose size or checksum differ from those recorded at save time raise CheckpointError (a truncated file
        fails here, before orbax reads it).
        """
        import orbax.checkpoint as ocp

        if step is None:
            step = self.latest()
            if step is None:
                raise CheckpointError(f"no checkpoint in {self.directory}")
        path = self.path(step)
        if not (path / _INFO).is_file():
            raise CheckpointError(f"no complete checkpoint for step {step} in {self.directory} (have {self.steps()})")
        info = self._info(path)
        _verify_files(path, info, replay)
        abstract = self._check_target(target, info, path)
        if jax.tree.leaves(abstract):
            with ocp.StandardCheckpointer() as ckptr:
                state = ckptr.restore(path / "state", abstract)
        else:
            state = abstract

        arrays = {}
        for key, spec in (info["replay"] if replay else {}).items():
            file = path / "replay" / f"{key}.npy"
            try:
                array = np.load(file, mmap_mode="r" if mmap_replay else None, allow_pickle=False)
            except (OSError, ValueError) as e:
                raise CheckpointError(f"checkpoint {path}: cannot read replay array {key!r}: {e}") from e
            if list(array.shape) != spec["shape"] or array.dtype.str != spec["dtype"]:
                raise CheckpointError(
                    f"checkpoint {path} is corrupt: replay array {key!r} holds {_fmt(array.shape, array.dtype)}, "
                    f"expected {_fmt(spec['shape'], np.dtype(spec['dtype']))}"
                )
            arrays[key] = array
        try:
            meta = json.loads((path / "meta.json").read_text())
        except (OSError, ValueError) as e:
            raise CheckpointError(f"checkpoint {path}: cannot read meta.json: {e}") from e
        return state, arrays, meta

    def _check_target(self, target, info: dict, path: Path):
        """Compare the target's leaves with the checkpoint's; return the target as ShapeDtypeStructs with shardings."""
        saved = {p: (shape, dtype) for p, shape, dtype in info["state"]}
        leaves = _leaves(target)
        wanted = {p: _describe(leaf) for p, leaf in leaves}

        def fail(what: str):
            raise CheckpointMismatchError(f"checkpoint {path} does not match this run's state: {what}; {self.hint}")

        missing = [p for p, _ in leaves if p not in saved]
        extra = [p for p, _, _ in info["state"] if p not in wanted]
        if missing or extra:
            parts = []
            if missing:
                more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
                parts.append(f"this run has {missing[0]}{more}, which the checkpoint lacks")
            if extra:
                more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
                parts.append(f"the checkpoint has {extra[0]}{more}, which this run lacks")
            fail("; ".join(parts))
        for p, _ in leaves:
            (shape, dtype), (want_shape, want_dtype) = saved[p], wanted[p]
            if list(shape) != want_shape or dtype != want_dtype:
                fail(f"{p} is {_fmt(shape, dtype)} in the checkpoint but {_fmt(want_shape, want_dtype)} in this run")

        device = jax.sharding.SingleDeviceSharding(_default_device())

        def abstract(leaf):
            shape, dtype = _shape_dtype(leaf)
            sharding = getattr(leaf, "sharding", None)
            return jax.ShapeDtypeStruct(shape, dtype, sharding=sharding if sharding is not None else device)

        return jax.tree.map(abstract, target)


def _file_table(root: Path) -> dict[str, list]:
    """relative path → [size, crc32 or None] of every file under `root`. The state and meta files are small and get a
    checksum; the replay arrays (up to GBs, read lazily) get their size, which catches truncation."""
    table = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            file = Path(dirpath, name)
            rel = file.relative_to(root).as_posix()
            crc = None
            if not rel.startswith("replay/"):
                crc = zlib.crc32(file.read_bytes())
            table[rel] = [file.stat().st_size, crc]
    return table


def _verify_files(path: Path, info: dict, replay: bool) -> None:
    """Raise CheckpointError naming the first file that is missing, truncated or changed since it was saved."""
    for rel, (size, crc) in info.get("files", {}).items():  # checkpoints written before this table: not checked
        if rel.startswith("replay/") and not replay:
            continue
        file = path / rel
        try:
            actual = file.stat().st_size
            if actual != size:
                raise CheckpointError(f"checkpoint {path}: {rel} has {actual} bytes, {size} were written")
            if crc is not None and zlib.crc32(file.read_bytes()) != crc:
                raise CheckpointError(f"checkpoint {path}: {rel} does not match its checksum (corrupted)")
        except OSError as e:
            raise CheckpointError(f"checkpoint {path}: cannot read {rel} ({e.strerror or e})") from None


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200]}" if text else type(error).__name__


_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")
_FIXES = {
    errno.ENOSPC: "Free disk space (or point --logdir to a larger disk), then run the same command to resume",
    errno.EDQUOT: "Free space within your disk quota, then run the same command to resume",
    errno.EROFS: "The file system is read-only: choose a writable --logdir",
    errno.EACCES: "Make the run directory writable, then resume",
    errno.EIO: "The disk reported an I/O error: check it, then resume",
}


def _os_error_in(error: BaseException) -> OSError | None:
    """The OSError with one of the errnos in _FIXES behind `error` (orbax and asyncio wrap them), else None."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in _FIXES:
            return error
        if os.strerror(errno.ENOSPC) in str(error):  # tensorstore reports a full disk in its message only
            return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        if isinstance(error, OSError) and error.errno is None and _SHORT_WRITE.search(str(error)):
            # NumPy's tofile reports a full disk as a short write without an errno
            return OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} ({error})")
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                found = _os_error_in(inner)
                if found is not None:
                    return found
        error = error.__cause__ or error.__context__
    return None


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("r2i", "jax", "flax", "optax", "orbax-checkpoint", "numpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out
