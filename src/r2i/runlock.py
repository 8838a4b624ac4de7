"""The run directory's lock (`RunLock`): one trainer per run directory, and a message naming the one that holds it."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Self

from r2i.errors import R2IError

__all__ = ["RunLock", "RunLockedError"]


class RunLockedError(R2IError, RuntimeError):
    """Another live process holds the run directory."""


class RunLock:
    """An exclusive lock on a run directory, so that two trainers never write the same run.

        with RunLock(logdir):
            ...train...

    The lock is an advisory `fcntl.flock` on `<logdir>/.lock`, which also records the holder's pid, host and start
    time (for the message a second process gets). The kernel releases a flock when its process dies, however it
    dies, so a lock left by a killed trainer never blocks a resume; the stale file's content is simply overwritten.
    `acquire` raises RunLockedError naming the holder when another process holds it.
    """

    FILE = ".lock"

    def __init__(self, directory: str | os.PathLike):
        self.path = Path(directory) / self.FILE
        self._fd: int | None = None

    def acquire(self) -> Self:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self.holder()
            os.close(fd)
            who = (f"process {holder.get('pid')} on {holder.get('host')} (started "
                   f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(holder.get('time', 0)))})"
                   if holder else "another process")
            raise RunLockedError(
                f"{self.path.parent} is in use by {who}; wait for that run to finish or stop it, or choose another "
                "--logdir"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        self._fd = fd
        return self

    @classmethod
    def held(cls, directory: str | os.PathLike) -> dict | None:
        """The record of the live process that holds `directory`'s lock ({} if unreadable), or None if none does.
        Only looks: the lock file is opened read-only and never written."""
        path = Path(directory) / cls.FILE
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return cls(directory).holder()
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def holder(self) -> dict:
        """pid / host / time recorded by the process that took the lock last ({} if unreadable)."""
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
