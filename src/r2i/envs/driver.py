"""`VectorDriver`: step N environments together, in worker processes or in-process, with DreamerV3 auto-reset.

Batched results are dicts of NumPy arrays with a leading env axis:

* every obs key: its Space's shape with N in front, e.g. float32 (N, d), uint8 (N, 64, 64, C);
* `reward` float32 (N,); `is_first`, `is_last`, `is_terminal` bool (N,);
* every `log_*` key that any env returned at this step: float32 (N,), NaN for the envs that did not return it this
  step (envs with a fixed key set, like all of r2i's built-ins, never produce NaN; Gymnasium `info` entries may come
  and go, so aggregate them with nan-aware reductions).

Auto-reset: after an env returned `is_last`, the next `step` resets that env instead of stepping it (its action is
ignored) and returns the new episode's first observation (`is_first=True`, reward 0). Before the first call every
env counts as finished, so `step` right after construction returns first observations, like `reset()`. No step is
lost or duplicated: each call returns exactly one observation per env.

Seeds: each env is built from its own `EnvSpec` (env_id, seed, options); use `make_specs(env_id, n, seed)` to derive
distinct seeds. The driver never changes the seeds, so the same specs and actions give the same trajectories in
parallel and in-process mode.

Parallel mode uses the 'spawn' start method (never fork: the parent runs JAX, whose threads do not survive a fork)
and one pipe per worker; `step` sends every env its command first and then collects the replies, so the envs step
concurrently. `step_async` and `step_wait` are those two halves, so that the caller can work while the workers step
(the training loop runs its updates then). Workers ignore SIGINT and SIGTERM, which a terminal or a scheduler sends
to the whole process group: the parent handles them and closes the workers after its last checkpoint.

Exceptions raised inside an env are re-raised in the parent with the env id (r2i's own errors keep their class;
anything else becomes `EnvWorkerError` carrying the worker's traceback); a worker that dies (segfault, out-of-memory
kill) gives an EnvError with its exit code. Spawned workers import only `r2i.envs` and the env's own
package (not JAX), so starting one costs well under a second; as with any 'spawn' program, a script that creates a
parallel driver at top level needs the `if __name__ == "__main__":` guard.
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
import signal
import traceback
import warnings
from typing import Any, Self

import numpy as np

from r2i.envs.base import FLAG_KEYS
from r2i.envs.checks import validate_step
from r2i.envs.make import EnvSpec
from r2i.errors import ConfigError, EnvError, R2IError


class EnvWorkerError(EnvError):
    """An environment raised an exception that is not one of r2i's own errors (a bug or crash in env code).
    `remote_traceback` holds the traceback text from where it was raised."""

    def __init__(self, message: str, remote_traceback: str = ""):
        super().__init__(message)
        self.remote_traceback = remote_traceback


def _pack_error(error: BaseException) -> dict:
    """An exception as picklable parts (exception objects with custom __init__ signatures do not unpickle)."""
    packed = {
        "type": type(error).__name__,
        "message": str(error),
        "traceback": "".join(traceback.format_exception(type(error), error, error.__traceback__)),
        "cls": None,
        "state": {},
    }
    if isinstance(error, R2IError):  # r2i's error classes are importable in the parent: keep the class
        packed["cls"], packed["state"] = type(error), dict(error.__dict__)
    return packed


def _run(env, cmd: str, arg):
    if cmd == "reset":
        return env.reset()
    if cmd == "step":
        return env.step(arg)
    if cmd == "get_state":  # optional part of the protocol: envs that can be checkpointed exactly
        return env.get_state() if hasattr(env, "get_state") else None
    if cmd == "set_state":
        return env.set_state(arg)
    raise ValueError(f"unknown driver command {cmd!r}")


def _worker(conn, spec: EnvSpec) -> None:
    """Worker process: build the env, then answer ('reset'|'step'|'close', arg) with ('ok', result)/('error', packed)."""
    # Ctrl-C and SIGTERM reach the whole process group (a terminal, `timeout`, a batch scheduler); the parent handles
    # them, writes its checkpoint (which asks the workers for their env states) and then closes the workers. A worker
    # whose parent is gone sees EOF on its pipe and exits.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    env = None
    try:
        env = spec.make()
        conn.send(("ok", (env.obs_space, env.act_space)))
        while True:
            try:
                cmd, arg = conn.recv()
            except EOFError:  # the parent went away
                break
            if cmd == "close":
                break
            try:
                conn.send(("ok", _run(env, cmd, arg)))
            except Exception as error:  # noqa: BLE001 — reported to the parent, which raises it
                conn.send(("error", _pack_error(error)))
    except Exception as error:  # noqa: BLE001 — a failed build is reported to the parent too
        try:
            conn.send(("error", _pack_error(error)))
        except (BrokenPipeError, OSError):
            pass
    finally:
        if env is not None:
            try:
                env.close()
            except Exception:  # noqa: BLE001, S110 — the worker is exiting; a failing close must not hide the cause
                pass
        conn.close()


class _LocalHandle:
    """An env in this process, behind the same send/recv interface as a worker."""

    def __init__(self, spec: EnvSpec):
        self.spec = spec
        self.env = None
        self._pending: tuple | None = None
        try:
            self.env = spec.make()
            self._pending = ("ok", (self.env.obs_space, self.env.act_space))
        except Exception as error:  # noqa: BLE001 — raised by _gather, like a worker's
            self._pending = ("error", _pack_error(error))

    def send(self, cmd: str, arg=None) -> None:
        try:
            self._pending = ("ok", _run(self.env, cmd, arg))
        except Exception as error:  # noqa: BLE001 — raised by _gather, like a worker's
            self._pending = ("error", _pack_error(error))

    def recv(self, index: int):
        reply, self._pending = self._pending, None
        return reply

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None


class _ProcessHandle:
    """An env in a spawned worker process, talked to over a pipe."""

    def __init__(self, context, spec: EnvSpec):
        self.spec = spec
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker, args=(child, spec), daemon=True, name=f"r2i-env-{spec.env_id}")
        try:
            self.process.start()
        except (pickle.PicklingError, AttributeError, TypeError) as error:  # spawn pickles the spec
            self.conn.close()
            raise ConfigError(
                f"the EnvSpec of {spec.env_id} cannot be sent to a worker process ({error}); its options must be "
                "picklable (plain numbers, strings, lists, dicts), or use VectorDriver(..., parallel=False)"
            ) from None
        finally:
            child.close()  # so recv() sees EOF if the worker dies

    def _dead(self, index: int) -> EnvError:
        self.process.join(timeout=1.0)
        code = self.process.exitcode
        return EnvError(
            f"the worker process of env {index} ({self.spec.env_id}, seed {self.spec.seed}) died with exit code {code} "
            "(negative: killed by that signal, e.g. -9 is often out of memory; -11 a crash in native code); run "
            f"`r2i check-env {self.spec.env_id}` or use the in-process driver (parallel=False) to see the error"
        )

    def send(self, cmd: str, arg=None) -> None:
        try:
            self.conn.send((cmd, arg))
        except (BrokenPipeError, OSError):
            pass  # recv reports the dead worker

    def recv(self, index: int):
        try:
            while not self.conn.poll(1.0):
                if not self.process.is_alive():
                    raise self._dead(index)
            return self.conn.recv()
        except (EOFError, OSError):
            raise self._dead(index) from None

    def close(self) -> None:
        try:
            self.conn.send(("close", None))
        except (BrokenPipeError, OSError):
            pass
        self.process.join(timeout=5.0)
        if self.process.is_alive():  # stuck in env code; it ignores SIGTERM (see _worker), so SIGKILL
            self.process.kill()
            self.process.join(timeout=1.0)
        self.conn.close()


def _raise(index: int, spec: EnvSpec, packed: dict):
    where = f"env {index} ({spec.env_id}, seed {spec.seed})"
    cls = packed["cls"]
    if cls is not None:  # r2i's own error: same class, message prefixed with the env
        error = cls.__new__(cls)
        error.args = (f"{where}: {packed['message']}",)
        error.__dict__.update(packed["state"])
        raise error
    raise EnvWorkerError(
        f"{where} raised {packed['type']}: {packed['message']}\n\nTraceback in the environment:\n{packed['traceback']}",
        packed["traceback"],
    )


class VectorDriver:
    """Steps `len(specs)` envs with auto-reset. See the module docstring for shapes and semantics.

    `obs_space` / `act_space`: those of the envs (all must agree); `num_envs`: N.
    `reset()` → batched first observations; `step(actions float32 (N, act_space.size))` → batched results.
    Use as a context manager or call `close()`.
    """

    def __init__(self, specs: list[EnvSpec], parallel: bool = True):
        specs = list(specs)
        if not specs:
            raise EnvError("VectorDriver needs at least one EnvSpec; build them with r2i.envs.make_specs")
        keys = [(s.env_id, s.seed, repr(sorted(s.options.items()))) for s in specs]
        if len(set(keys)) < len(keys):
            warnings.warn(
                "VectorDriver: some EnvSpecs are identical (same id, seed and options), so those envs will "
                "produce identical trajectories; use make_specs to give each its own seed",
                stacklevel=2,
            )
        self.specs = specs
        self.parallel = parallel
        self._handles: list = []
        self._closed = False
        context = mp.get_context("spawn") if parallel else None
        try:
            for spec in specs:  # workers start building their envs concurrently; _gather waits for all
                self._handles.append(_ProcessHandle(context, spec) if parallel else _LocalHandle(spec))
            spaces = self._gather()
        except BaseException:
            self.close()
            raise
        self.obs_space, self.act_space = spaces[0]
        for index, (obs_space, act_space) in enumerate(spaces):
            if obs_space != self.obs_space or act_space != self.act_space:
                self.close()
                raise EnvError(
                    f"VectorDriver: env {index} ({specs[index].env_id}) has spaces {obs_space}, {act_space} but env 0 "
                    f"({specs[0].env_id}) has {self.obs_space}, {self.act_space}; all envs of a driver must match"
                )
        self.num_envs = len(specs)
        self._needs_reset = np.ones(self.num_envs, bool)
        self._steps = np.zeros(self.num_envs, np.int64)  # step index within the current episode, for messages
        self._waiting: np.ndarray | None = None  # the envs that stepped (not reset) in a step_async not yet collected

    def _gather(self) -> list:
        """Receive one reply per env (all of them, so the pipes stay in sync), then raise the first error."""
        replies = [handle.recv(index) for index, handle in enumerate(self._handles)]
        for index, (status, payload) in enumerate(replies):
            if status == "error":
                _raise(index, self.specs[index], payload)
        return [payload for _, payload in replies]

    def _batch(self, results: list[dict]) -> dict[str, np.ndarray]:
        for index, result in enumerate(results):
            validate_step(result, self.obs_space, self.specs[index].env_id, int(self._steps[index]))
        batch = {key: np.stack([r[key] for r in results]) for key in (*self.obs_space, *FLAG_KEYS)}
        log_keys = sorted({key for r in results for key in r if key.startswith("log_")})
        for key in log_keys:
            batch[key] = np.array([r.get(key, np.nan) for r in results], np.float32)
        return batch

    def _check_open(self) -> None:
        if self._closed:
            raise EnvError("VectorDriver is closed; create a new one")

    def _check_ready(self) -> None:
        """Open, and no `step_async` waiting to be collected (its replies would answer the next command)."""
        self._check_open()
        if self._waiting is not None:
            raise EnvError("VectorDriver: a step_async is still waiting; call step_wait first")

    def reset(self) -> dict[str, np.ndarray]:
        """Reset every env; returns batched first observations (is_first all True)."""
        self._check_ready()
        for handle in self._handles:
            handle.send("reset")
        results = self._gather()
        self._steps[:] = 0
        batch = self._batch(results)
        self._needs_reset[:] = batch["is_last"]
        return batch

    def step(self, actions: Any) -> dict[str, np.ndarray]:
        """Step each env with its row of `actions` (float32 (N, act_space.size), agent format), or reset the envs
        whose previous result was last (ignoring their rows). Returns the batched results."""
        self.step_async(actions)
        return self.step_wait()

    def step_async(self, actions: Any) -> None:
        """The first half of `step`: check `actions` and send them; worker processes step while the caller does other
        work (the training loop runs its updates), and `step_wait` collects the results. In-process envs step here."""
        self._check_ready()
        actions = np.asarray(actions, np.float32)
        if actions.shape != (self.num_envs, self.act_space.size):
            raise ValueError(f"actions must have shape ({self.num_envs}, {self.act_space.size}), got {actions.shape}")
        stepping = ~self._needs_reset
        if not np.all(np.isfinite(actions[stepping])):
            raise ValueError("actions contain NaN or inf; the agent's policy produced non-finite actions")
        for index, handle in enumerate(self._handles):
            if self._needs_reset[index]:
                handle.send("reset")
            else:
                handle.send("step", actions[index])
        self._waiting = stepping

    def step_wait(self) -> dict[str, np.ndarray]:
        """The second half of `step`: wait for every env's result of the last `step_async`; returns the batch."""
        self._check_open()
        if self._waiting is None:
            raise EnvError("VectorDriver.step_wait called without a step_async before it")
        stepping, self._waiting = self._waiting, None
        results = self._gather()
        self._steps = np.where(stepping, self._steps + 1, 0)
        batch = self._batch(results)
        self._needs_reset = batch["is_last"].copy()
        return batch

    def get_state(self) -> dict | None:
        """Everything needed to continue exactly where the envs are (for checkpoints), or None when some env does not
        implement the optional `get_state()` / `set_state(state)` methods (then a resumed run starts new episodes)."""
        self._check_ready()
        for handle in self._handles:
            handle.send("get_state")
        states = self._gather()
        if any(state is None for state in states):
            return None
        return {"envs": states, "needs_reset": self._needs_reset.tolist(), "steps": self._steps.tolist()}

    def set_state(self, state: dict) -> None:
        """Restore what `get_state` returned (same env ids and count)."""
        self._check_ready()
        if len(state["envs"]) != self.num_envs:
            raise EnvError(f"driver state holds {len(state['envs'])} envs, this driver has {self.num_envs}")
        for handle, env_state in zip(self._handles, state["envs"]):
            handle.send("set_state", env_state)
        self._gather()
        self._needs_reset = np.array(state["needs_reset"], bool)
        self._steps = np.array(state["steps"], np.int64)

    def close(self) -> None:
        """Close every env and stop the workers (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for handle in self._handles:
            try:
                handle.close()
            except Exception:  # noqa: BLE001, S110 — close the other envs even if one fails
                pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001, S110 — never raise from a destructor
            pass
