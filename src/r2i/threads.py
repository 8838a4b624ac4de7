"""How many threads XLA's CPU runtime spreads one executable's ops over (`run.cpu_threads`).

XLA sizes its CPU thread pools when JAX's backends start, from the cores the process may run on, and offers no flag
for it. Two trainings side by side on one machine then each spread their ops over every core and wait for each other
(futex hand-overs, system time). Measured on a 2-core AMD EPYC (docs/notes.md, "XLA's threads"): two default runs
side by side made 15.2–16.0 env steps/s each with one thread each against 13.6–14.0 with two; a single run alone was
1.3–1.8× faster with both threads than with one. Hence `r2i sweep --jobs J` and `r2i bench solve --jobs J` give each
training `max(1, cores // J)` threads (`per_job`), and `r2i train` alone keeps XLA's default (0).

`limit_cpu_threads(n)` starts the backends while the calling thread may run on only `n` of its cores, so the pools
are sized for `n`, then gives every thread back all the cores it had: nothing is pinned, the operating system still
places the threads, and worker processes started later (parallel envs) inherit the full set. Linux only (elsewhere,
and with `n = 0`, XLA's default stays). It must run before anything starts JAX's backends (`jax.devices()`, any
computation); `r2i train` calls it first thing.
"""

from __future__ import annotations

import os
import warnings

_in_effect: int | None = None  # the count the backends were started with by this module; None: not started here


def available_cores() -> int:
    """The cores this process may run on (its affinity mask where the platform has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def per_job(jobs: int, extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The override that gives each of `jobs` trainings running side by side its share of the cores,
    `run.cpu_threads=max(1, cores // jobs)`, unless `extra` sets run.cpu_threads itself; [] for one job. Two
    trainings that each spread their ops over every core only wait for each other (docs/notes.md)."""
    if jobs <= 1 or any(arg.lstrip("-").startswith("run.cpu_threads") for arg in extra):
        return []
    return [f"run.cpu_threads={max(1, available_cores() // jobs)}"]


def _thread_ids() -> set[int]:
    return {int(tid) for tid in os.listdir("/proc/self/task")}


def _backends_started() -> bool:
    from jax._src import xla_bridge

    return xla_bridge.backends_are_initialized()


def limit_cpu_threads(count: int) -> int:
    """Start JAX's backends with XLA's CPU thread pools sized for `count` cores (0: every core, XLA's default).

    Returns the count in effect: `count`, or 0 when there is nothing to limit (0, as many cores as the process has,
    no `sched_setaffinity` on this platform) or the backends had already been started (then with a warning, since
    the pools keep the size they were made with).
    """
    global _in_effect
    if count < 0:
        raise ValueError(f"run.cpu_threads must be >= 0, got {count}")
    if _in_effect is not None:
        if count != _in_effect:
            warnings.warn(f"run.cpu_threads={count} has no effect: JAX's backends were started with "
                          f"{_in_effect or 'all'} CPU threads in this process", RuntimeWarning, stacklevel=2)
        return _in_effect
    if count == 0 or not hasattr(os, "sched_setaffinity"):
        return 0
    allowed = os.sched_getaffinity(0)
    if count >= len(allowed):
        return 0
    if _backends_started():
        warnings.warn(f"run.cpu_threads={count} has no effect: JAX's backends were started before r2i could size "
                      "XLA's CPU threads (start JAX after r2i.threads.limit_cpu_threads, or set run.cpu_threads=0)",
                      RuntimeWarning, stacklevel=2)
        return 0
    import jax

    before = _thread_ids()
    os.sched_setaffinity(0, set(sorted(allowed)[:count]))
    try:
        jax.devices()  # starts the backends: their pools take their size from the cores allowed now
    finally:
        os.sched_setaffinity(0, allowed)
        for tid in _thread_ids() - before:
            try:
                os.sched_setaffinity(tid, allowed)
            except OSError:  # a thread that has already exited
                pass
    _in_effect = count
    return count
