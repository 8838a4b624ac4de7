"""The allocator settings that keep XLA's per-update buffers in the heap (r2i/allocator.py). Their effect (page faults
and system time per update) is measured by `r2i bench train`, not here."""

import os
import platform
import subprocess
import sys

import pytest

from r2i import allocator

PROBE = "from r2i import allocator; print(allocator.configure())"


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_configure_applies_once_and_can_be_turned_off():
    assert allocator.configure() is True  # conftest.py configured the session, as the `r2i` command does for a run
    assert allocator.configure() is True  # idempotent
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True,
                         env={**os.environ, "R2I_SYSTEM_MALLOC": "1"}).stdout
    assert out.strip() == "False"
