"""GracefulExit: the first SIGINT / SIGTERM is a request to stop, the second stops at once; handlers are restored."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from r2i.signals import ChildProcesses, GracefulExit, StopRequested


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


CHILD = textwrap.dedent(
    """
    import pathlib, signal, sys, time
    out = pathlib.Path(sys.argv[1])
    def stop(signum, frame):
        out.with_suffix(".stopped").write_text(str(signum))  # where r2i train would write its checkpoint
        sys.exit(143)
    signal.signal(signal.SIGTERM, stop)
    out.with_suffix(".ready").write_text("")
    time.sleep(60)
    """
)


def _wait_for(path, timeout=30.0):
    end = time.time() + timeout
    while not path.exists():
        assert time.time() < end, f"{path} did not appear"
        time.sleep(0.02)


def test_child_processes_pass_a_sigterm_on_and_start_no_new_child(tmp_path):
    """A SIGTERM to a parent running trainings reaches every running child (which can checkpoint), the parent's
    `run` calls raise StopRequested, no new child starts, and the parent's handlers are restored."""
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    outcomes = {}

    def parent_thread(name):
        try:
            children.run([sys.executable, "-c", CHILD, str(tmp_path / name)])
            outcomes[name] = "finished"
        except StopRequested as stop:
            outcomes[name] = stop.signum

    with ChildProcesses() as children:
        threads = [threading.Thread(target=parent_thread, args=(n,)) for n in ("a", "b")]
        for t in threads:
            t.start()
        for name in ("a", "b"):
            _wait_for(tmp_path / f"{name}.ready")
        os.kill(os.getpid(), signal.SIGTERM)
        for t in threads:
            t.join(30)
        assert children.requested and children.signum == signal.SIGTERM
        with pytest.raises(StopRequested, match="stopped by SIGTERM"):
            children.run([sys.executable, "-c", CHILD, str(tmp_path / "c")])
    assert outcomes == {"a": signal.SIGTERM, "b": signal.SIGTERM}
    assert (tmp_path / "a.stopped").read_text() == (tmp_path / "b.stopped").read_text() == str(int(signal.SIGTERM))
    assert not (tmp_path / "c.ready").exists()
    assert {sig: signal.getsignal(sig) for sig in before} == before
