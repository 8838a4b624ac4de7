"""Clean stopping on SIGINT / SIGTERM (`GracefulExit`): the first signal becomes a request that the training loop polls,
so it can write a checkpoint before it exits."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any, Self

__all__ = ["GracefulExit"]


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
