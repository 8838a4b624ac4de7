"""GracefulExit: the first SIGINT / SIGTERM is a request to stop, the second stops at once; handlers are restored."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from r2i.signals import GracefulExit


def test_graceful_exit_sigint_and_sigterm():
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with GracefulExit() as stop:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)  # the handler runs between bytecodes of the main thread
        assert stop.requested and stop.signum == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
    assert {sig: signal.getsignal(sig) for sig in before} == before

    with GracefulExit() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)
        assert stop.requested and stop.signum == signal.SIGTERM
        with pytest.raises(SystemExit):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_graceful_exit_prints_one_line(tmp_path):
    code = textwrap.dedent(
        """
        import os, signal, time
        from r2i.signals import GracefulExit
        with GracefulExit() as stop:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
        print("requested", stop.requested)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "requested True"
    assert [line for line in out.stderr.splitlines() if line.strip()] == [GracefulExit.MESSAGE]


def test_graceful_exit_outside_main_thread():
    result = {}

    def run():
        with GracefulExit() as stop:
            result["requested"] = stop.requested
        result["handler"] = signal.getsignal(signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert result == {"requested": False, "handler": before}
