"""Keep freed memory in the process instead of handing it back to the kernel after every update (glibc only).

XLA on a CPU allocates each executable's temporaries as one buffer per call (64 MB for the default preset's update)
and frees it at the end. glibc serves a block that large with a fresh `mmap` and returns it with `munmap`, and thread
arenas cannot hold more than 64 MB at all, so every update faulted in 16,000 new zero pages: 20 % of a training run's
CPU time was system time (`/usr/bin/time -v`: 181 s system of 880 s, 83 million minor page faults). Raising the mmap
and trim thresholds and keeping one arena lets the buffer be reused from the heap: measured on the default update,
system time fell from ≈ 60 ms to ≈ 1 ms per update and page faults from ≈ 16,400 to 0 (`r2i bench train` and
`benchmarks/README.md`).

Call `configure()` once, early, from the process that owns the run (the `r2i` command does); a library user may call
it too. It changes nothing off glibc, and `R2I_SYSTEM_MALLOC=1` leaves the allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -2, -3, -8

# Blocks up to 1 GiB come from the heap (replay arrays larger than that are still mapped and unmapped on their own);
# up to 1 GiB of free memory at the top of the heap is kept; the heap grows 64 MiB at a time; one arena, because a
# thread arena's heaps are capped at 64 MiB and would send larger buffers back to mmap.
SETTINGS = {_M_MMAP_THRESHOLD: 1 << 30, _M_TRIM_THRESHOLD: 1 << 30, _M_TOP_PAD: 64 << 20, _M_ARENA_MAX: 1}

_configured: bool | None = None


def configure() -> bool:
    """Apply `SETTINGS` with glibc's `mallopt`; True if they were applied. Idempotent."""
    global _configured
    if _configured is not None:
        return _configured
    _configured = False
    if os.environ.get("R2I_SYSTEM_MALLOC") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    _configured = all(mallopt(param, value) == 1 for param, value in SETTINGS.items())
    return _configured
