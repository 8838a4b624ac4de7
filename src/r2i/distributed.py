"""Training on several processes (one per host, or several per machine) with `jax.distributed`.

Every process runs the same `r2i train` command. Each one steps its own environments into its own replay shard and
samples B / P of the B sequences of each update (P = process count); the update is one jitted program over a mesh of
*all* processes' devices, so the gradients are averaged over the whole global batch and the parameters, replicated
on every device, stay identical on every process. Acting and evaluation run on each process's own devices with a
process-local view of the parameters (no communication).

    initialize(coordinator, num_processes, process_id)   # or from JAX_* env vars, or SLURM / Kubernetes detection
    process_count(), process_index(), is_main()

What differs from one process (the hooks the training loop calls; all are identities when P = 1):

* seeds: process p steps envs seeded `seed + p · num_envs, …` and samples its replay with its own generator, while
  the JAX key stream that feeds the updates is the same on every process (acting keys fold in p);
* counters count *global* env steps (P · num_envs per policy step), so `run.steps`, `run.prefill` and
  `run.train_ratio` keep their meaning: the train ratio is replayed steps (global B·L per update) per global env step;
* decisions that must be the same everywhere (stop on a signal, time to checkpoint, evaluation results) are agreed
  through small all-gathers; process 0 alone writes logs, config and results, and runs evaluation;
* checkpoints (`ProcessCheckpointer`): the replicated train state and the per-process acting carries go through one
  collective orbax save (its multi-host support: every process writes its shards of the global arrays, the primary
  host the metadata, into one directory), and each process writes its own replay shard, RNG and env state beside it.
  A run resumes only with the same process count.

CPU collectives use gloo (`jax_cpu_collectives_implementation`), so the same code runs several processes on one
machine over the loopback address (the tests do this).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import jax
import numpy as np

from r2i.errors import ConfigError

ENV_VARS = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
SUM_KEYS = ("progress/episodes", "progress/replay_steps")  # per-process counts: summed when logs are aggregated
STATE_DIR = "state"  # under the checkpoint directory: the collective orbax saves, one per step


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"environment variable {name}={value!r} is not an integer; unset it or set a number"
                          ) from None


def initialize(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None,
               auto: bool = False, timeout_s: int = 300) -> bool:
    """Join a multi-process run if one is asked for; returns True when this process is part of one.

    A run is asked for by any of `coordinator` / `num_processes` / `process_id` (CLI flags), the environment
    variables JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID, or `auto` (then JAX detects SLURM,
    Open MPI, Kubernetes or Cloud TPU and fills in whatever is missing). Must run before anything touches a device.
    """
    num_processes = num_processes if num_processes is not None else _env_int("JAX_NUM_PROCESSES")
    process_id = process_id if process_id is not None else _env_int("JAX_PROCESS_ID")
    coordinator = coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS") or None
    if not (auto or coordinator or num_processes is not None or process_id is not None):
        return False
    if num_processes is not None and num_processes < 1:
        raise ConfigError(f"--num-processes must be >= 1, got {num_processes}")
    if process_id is not None and num_processes is not None and not 0 <= process_id < num_processes:
        raise ConfigError(f"--process-id must be in [0, {num_processes}), got {process_id}")
    if coordinator is not None and ":" not in coordinator:
        raise ConfigError(f"--coordinator must be HOST:PORT (e.g. 10.0.0.1:12345), got {coordinator!r}")
    # gloo is jax 0.10's default for CPU collectives; set it anyway so CPU runs never fall back to none.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(coordinator, num_processes, process_id, initialization_timeout=timeout_s)
    except (ValueError, TypeError) as e:  # JAX's own messages name what is missing (coordinator, count or id)
        raise ConfigError(f"cannot start a multi-process run: {e} (pass --coordinator, --num-processes and "
                          "--process-id, or run under SLURM with --distributed)") from None
    return True


def process_count() -> int:
    return jax.process_count()


def process_index() -> int:
    return jax.process_index()


def is_main() -> bool:
    return jax.process_index() == 0


# -- per-process streams -----------------------------------------------------------------------------------------------

def env_seed(seed: int, num_envs: int) -> int:
    """First env seed of this process: processes step disjoint seed ranges (process 0 keeps the single-process ones)."""
    return seed + process_index() * num_envs


def local_seed(seed: int) -> int:
    """Seed of a process-local NumPy generator (replay sampling, prefill actions); process 0 keeps `seed`."""
    if process_index() == 0:
        return seed
    return int(np.random.SeedSequence([seed, process_index()]).generate_state(1)[0])


def local_key(key: jax.Array) -> jax.Array:
    """An acting key of this process from the shared key stream (processes must not sample the same noise)."""
    return key if process_count() == 1 else jax.random.fold_in(key, process_index())


def local_dir(logdir: str | os.PathLike) -> Path:
    """Where this process keeps files of its own under a run directory (e.g. a disk replay): the run directory itself
    on process 0, `<logdir>/process_<p>` on the others."""
    return Path(logdir) if process_index() == 0 else Path(logdir) / f"process_{process_index()}"


def local_batch(batch_size: int) -> int:
    """Sequences this process contributes to a global batch of `batch_size` (divisibility is checked by the agent)."""
    return batch_size // process_count()


def host_local(tree):
    """Process-local views of global arrays (their first addressable shard, i.e. the whole value when replicated).

    Acting and evaluation run on this process's devices only; a jitted call on global arrays would be one program
    over all processes and would need every process to make it in lockstep.
    """
    if process_count() == 1:
        return tree
    return jax.tree.map(lambda x: x.addressable_data(0) if isinstance(x, jax.Array) and not x.is_fully_addressable
                        else x, tree)


# -- agreement between processes ---------------------------------------------------------------------------------------

def allgather_json(obj) -> list:
    """Every process's JSON-able `obj`, in process order (two small all-gathers: sizes, then padded bytes)."""
    if process_count() == 1:
        return [obj]
    from jax.experimental import multihost_utils

    data = np.frombuffer(json.dumps(obj).encode(), np.uint8)
    sizes = np.asarray(multihost_utils.process_allgather(np.array([data.size], np.int32))).reshape(-1)
    buf = np.zeros(int(sizes.max()), np.uint8)
    buf[: data.size] = data
    gathered = np.asarray(multihost_utils.process_allgather(buf)).reshape(len(sizes), -1)
    return [json.loads(gathered[i, : sizes[i]].tobytes()) for i in range(len(sizes))]


def broadcast_json(obj):
    """Process 0's `obj` on every process."""
    return allgather_json(obj)[0] if process_count() > 1 else obj


def any_process(flag: bool) -> bool:
    """True on every process if `flag` is true on any (e.g. a signal that reached only some processes)."""
    if process_count() == 1:
        return bool(flag)
    from jax.experimental import multihost_utils

    return bool(np.asarray(multihost_utils.process_allgather(np.array([bool(flag)], np.int32))).any())


def barrier(name: str) -> None:
    if process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def aggregate(scalars: dict) -> dict:
    """Metrics of all processes → one dict: counts in SUM_KEYS summed, everything else averaged over the processes
    that report it (NaN-aware). Values that are the same everywhere (train metrics, global counters) stay as they are.
    """
    if process_count() == 1:
        return scalars
    gathered = allgather_json({k: float(v) for k, v in scalars.items()})
    out = {}
    for key in dict.fromkeys(k for d in gathered for k in d):
        values = np.array([d[key] for d in gathered if key in d], np.float64)
        if key in SUM_KEYS:
            out[key] = float(values.sum())
        else:
            out[key] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
    return out


def fingerprint(tree) -> str:
    """SHA-256 of every leaf's bytes (process-local views), to check that processes hold identical values."""
    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(host_local(tree)):
        array = np.asarray(jax.random.key_data(leaf) if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)
                           else leaf)
        digest.update(array.tobytes())
    return digest.hexdigest()


class NullLogger:
    """The metrics logger of processes other than 0: `write` returns the scalars and writes nothing."""

    last_step: int | None = None

    def write(self, step: int, scalars: dict) -> dict:
        self.last_step = step
        return dict(scalars)

    def tell(self) -> int:
        return 0

    def close(self) -> None:
        pass


# -- checkpoints -------------------------------------------------------------------------------------------------------

class ProcessCheckpointer:
    """Checkpoints of a run on P processes; with P = 1 exactly `Checkpointer` (same files, same behaviour).

    With P > 1 (the checkpoint directory must be on a file system every process sees, as orbax's multi-host saves
    need):

        ckpt_<step>/              process 0's replay shard and meta (a `Checkpointer` with an empty state)
        process_<p>/ckpt_<step>/  process p's replay shard and meta
        state/<step>/             the JAX state: one collective orbax save of global arrays — the replicated train
                                  state as it is, process-local leaves (acting carry, keys) stacked to (P, …) and
                                  sharded over processes, so each process writes and reads back its own row

    A step is restorable once the state and every process's shard exist; `latest()` picks the newest such step that
    process 0 wrote (processes killed half-way through a save leave an older step usable). Each piece is atomic
    (`Checkpointer`'s renames; orbax's own temporary directory and rename). The process count is recorded in the meta
    of each shard and checked before anything is read.
    """

    def __init__(self, directory: str | os.PathLike, keep: int | None = 2):
        from r2i.checkpoint import Checkpointer

        self.directory = Path(directory).absolute()
        self.count, self.index = process_count(), process_index()
        own = self.directory if self.index == 0 else self.directory / f"process_{self.index}"
        if self.index == 0:
            self.local = Checkpointer(own, keep)
        barrier("r2i-checkpointer-created")  # process 0 creates the directory that holds the others'
        if self.index > 0:
            self.local = Checkpointer(own, keep)

    def _state_path(self, step: int) -> Path:
        return self.directory / STATE_DIR / f"{int(step):010d}"

    def _check_count(self, step: int | None) -> None:
        """Raise ConfigError (on every process) if checkpoint `step` of process 0 was written by another count."""
        saved = None
        if self.index == 0 and step is not None:
            try:
                saved = json.loads((self.local.path(step) / "meta.json").read_text()).get("processes", 1)
            except (OSError, ValueError):
                saved = None  # unreadable: the restore itself reports it
        saved = broadcast_json(saved)
        if saved is not None and saved != self.count:
            raise ConfigError(
                f"{self.directory.parent} was checkpointed by {saved} process(es) but this run has {self.count}; "
                f"resume with {saved} process(es) (the replay is sharded per process), or choose another --logdir"
            )

    def latest(self) -> int | None:
        """Newest step that every process can restore (the same value on every process)."""
        if self.count == 1:
            step = self.local.latest()
            self._check_count(step)
            return step
        own = self.local.latest() if self.index == 0 else None
        self._check_count(own)
        steps = allgather_json(self.local.steps())
        chosen = None
        if self.index == 0:
            common = set.intersection(*(set(s) for s in steps))
            by_serial = [s for _, s in self.local._by_serial()]  # oldest written first
            usable = [s for s in by_serial if s in common and self._state_path(s).is_dir()]
            chosen = usable[-1] if usable else None
        return broadcast_json(chosen)

    def save(self, step: int, state, replay: dict | None = None, meta: dict | None = None) -> Path:
        meta = {**(meta or {}), "processes": self.count, "process": self.index}
        if self.count == 1:
            return self.local.save(step, state, replay, meta)
        import orbax.checkpoint as ocp

        # The replicated state is written once, from process 0's copy: check first that every copy is the same.
        shared = fingerprint([x for x in jax.tree.leaves(state) if _is_global(x)])
        copies = allgather_json(shared)
        if len(set(copies)) > 1:
            raise RuntimeError(f"the replicated train state differs between processes ({copies}); not checkpointing")
        meta["state_sha256"] = shared
        path = self._state_path(step)
        if self.index == 0 and path.exists():  # a save of the same step again (orbax refuses an existing directory)
            shutil.rmtree(path)
        barrier(f"r2i-save-{step}-begin")
        with ocp.StandardCheckpointer() as ckptr:
            ckptr.save(path, _globalise(state))
            ckptr.wait_until_finished()
        final = self.local.save(step, {}, replay, meta)
        barrier(f"r2i-save-{step}-end")
        if self.index == 0:  # state saves of steps no shard keeps any more
            kept = {f"{s:010d}" for s in self.local.steps()}
            for entry in (self.directory / STATE_DIR).iterdir():
                if entry.name.isdigit() and entry.name not in kept:
                    shutil.rmtree(entry, ignore_errors=True)
        return final

    def restore_intact(self, target, *, mmap_replay: bool = False, replay: bool = True, warn=None):
        """(step, state, replay, meta). One process: `Checkpointer.restore_intact` (falls back past damaged
        checkpoints). Several: the newest step every process can restore (no fallback past a damaged file yet)."""
        from r2i.checkpoint import CheckpointError

        if self.count == 1:
            self._check_count(self.local.latest())
            return self.local.restore_intact(target, mmap_replay=mmap_replay, replay=replay, warn=warn)
        step = self.latest()
        if step is None:
            raise CheckpointError(f"no checkpoint in {self.directory} that every process can restore")
        return (step, *self.restore(target, step, mmap_replay=mmap_replay))

    def restore(self, target, step: int | None = None, *, mmap_replay: bool = False):
        """(state, replay, meta) of `step` (default `latest()`); state leaves come back as in `target`: global arrays
        where the target has a global sharding, this process's own value (NumPy) for process-local leaves."""
        from r2i.checkpoint import CheckpointError

        if step is None:
            step = self.latest()
            if step is None:
                raise CheckpointError(f"no checkpoint in {self.directory} that every process can restore")
        elif self.count == 1:
            self._check_count(step)
        if self.count == 1:
            return self.local.restore(target, step, mmap_replay=mmap_replay)
        import orbax.checkpoint as ocp

        _, replay, meta = self.local.restore({}, step, mmap_replay=mmap_replay)
        with ocp.StandardCheckpointer() as ckptr:
            state = ckptr.restore(self._state_path(step), _globalise(target, abstract=True))
        # Process-local leaves come back as NumPy arrays: a JAX array would be committed to this process's device,
        # and a jitted update over all processes' devices refuses such an argument (e.g. the restored key).
        local = jax.tree.map(lambda x: not _is_global(x), target)
        state = jax.tree.map(lambda is_local, x: np.asarray(x.addressable_data(0))[0] if is_local else x, local, state)
        return state, replay, meta


def _is_global(x) -> bool:
    sharding = getattr(x, "sharding", None)
    return sharding is not None and not sharding.is_fully_addressable


def _process_sharding():
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    devices = np.array(jax.devices()).reshape(process_count(), jax.local_device_count())
    return NamedSharding(Mesh(devices, ("process", "local")), PartitionSpec("process"))


def _globalise(tree, abstract: bool = False):
    """Global leaves as they are; process-local leaves → (P, …) arrays with row p from process p."""
    sharding = _process_sharding()

    def one(x):
        if _is_global(x):
            return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding) if abstract else x
        if abstract:
            return jax.ShapeDtypeStruct((process_count(), *x.shape), x.dtype, sharding=sharding)
        return jax.make_array_from_process_local_data(sharding, np.asarray(x)[None])

    return jax.tree.map(one, tree)
