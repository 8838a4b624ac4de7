"""RunLock: one process per run directory, a message naming the holder, and no stale lock after a killed holder."""

import os
import signal
import subprocess
import sys

import pytest

from r2i.runlock import RunLock, RunLockedError


def test_run_lock_names_the_holder_and_a_killed_holder_does_not_block(tmp_path):
    lock_path = tmp_path / RunLock.FILE
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, json, os, socket, sys, time\n"
         f"fd = os.open({str(lock_path)!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\n"
         "os.write(fd, json.dumps({'pid': os.getpid(), 'host': socket.gethostname(), 'time': 0}).encode())\n"
         "print('locked', flush=True)\ntime.sleep(120)\n"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=f"is in use by process {holder.pid} on"):
            RunLock(tmp_path).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with RunLock(tmp_path) as lock:  # the stale file of a killed holder does not block
        assert lock.holder()["pid"] == os.getpid()
        with pytest.raises(RunLockedError):  # and a second one in this process is refused too
            RunLock(tmp_path).acquire()
