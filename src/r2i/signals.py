"""Clean stopping on SIGINT / SIGTERM (`GracefulExit`): the first signal becomes a request that the training loop polls,
so it can write a checkpoint before it exits. `ChildProcesses` does the same for a command that runs trainings as
child processes (`r2i sweep`, `r2i bench solve`): it passes the signal on to them, so none is left running."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from typing import Any, Self

__all__ = ["ChildProcesses", "GracefulExit", "StopRequested"]


class GracefulExit:
    """Turn the first SIGINT / SIGTERM into a request to stop, so the loop can checkpoint and exit.

        with GracefulExit() as stop:
            while not stop.requested:
                step()
            save()

    While active, the first SIGINT or SIGTERM sets `requested` (and `signum`) and prints one line to stderr instead
    of interrupting; a second SIGINT raises KeyboardInterrupt at once, a second SIGTERM raises SystemExit(143).
    The previous handlers are restored on exit. Outside the main thread (where Python cannot install signal
    handlers) it does nothing and `requested` stays False.
    """

    MESSAGE = "stopping after this step; writing a checkpoint…"

    def __init__(self, signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM), message: str | None = None):
        self.signals = tuple(signals)
        self.message = self.MESSAGE if message is None else message
        self.requested = False
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame):
        if self.requested:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(128 + signum)
        self.requested, self.signum = True, signum
        try:  # os.write, not print: a print in a signal handler can hit a reentrant-call error on sys.stderr
            os.write(2, f"\n{self.message}\n".encode())
        except (OSError, ValueError, RuntimeError):
            pass

    def __enter__(self) -> Self:
        self.requested, self.signum = False, None
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> bool:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()
        return False


class StopRequested(Exception):
    """Raised by `ChildProcesses.run` once a stop was requested: the child it ran (if any) was asked to stop."""

    def __init__(self, signum: int | None):
        super().__init__(f"stopped by {signal.Signals(signum).name if signum else 'a signal'}")
        self.signum = signum


class ChildProcesses(GracefulExit):
    """A parent that runs trainings as child processes, from any of its threads, and stops them cleanly.

        with ChildProcesses() as children:
            proc = children.run(cmd, stdout=log)  # like subprocess.run; raises StopRequested after a stop
        if children.requested:
            ...  # the children have checkpointed and exited; rerunning the command resumes them

    The first SIGINT / SIGTERM to the parent is passed on to every running child as SIGTERM (each `r2i train`
    writes a checkpoint and exits) and no new child is started. Without this a SIGTERM to the parent alone (a job
    scheduler, `kill`) would leave its trainings running with nobody to record their results. (Ctrl-C in a terminal
    reaches the children anyway: it signals the whole process group.)
    """

    MESSAGE = "stopping: the running trainings are writing checkpoints…"

    def __init__(self):
        super().__init__()
        self._running: set[subprocess.Popen] = set()
        self._lock = threading.Lock()

    def _handle(self, signum, frame):
        # No lock here: the handler runs in the main thread, which may hold it. list() of a set is atomic under the GIL.
        first = not self.requested
        try:
            super()._handle(signum, frame)
        finally:
            if first:
                self._forward()

    def _forward(self) -> None:
        for proc in list(self._running):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    def run(self, cmd: list[str], **popen) -> subprocess.CompletedProcess:
        """Run `cmd` to its end (`subprocess.Popen` keyword arguments; `capture_output=True` as in `subprocess.run`)."""
        if self.requested:
            raise StopRequested(self.signum)
        if popen.pop("capture_output", False):
            popen.update(stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        proc = subprocess.Popen(cmd, **popen)
        with self._lock:
            self._running.add(proc)
        try:
            if self.requested:  # the signal came between Popen and the line above
                proc.send_signal(signal.SIGTERM)
            stdout, stderr = proc.communicate()
        finally:
            with self._lock:
                self._running.discard(proc)
        if self.requested:
            raise StopRequested(self.signum)
        return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
