"""XLA settings of the test session and of the child processes tests start.

Most tests compile tiny programs and run them a few times, so XLA's compile time is most of the suite's time. LLVM's
lowest optimisation level compiles these programs 2–3× faster and runs them 2–3× slower (measured on the tiny image
agent's update and on the learning test's; docs/notes.md, "The test suite's time"): a good trade everywhere except in
runs that train for thousands of updates, which run in child processes with XLA's defaults. It changes code
generation, not what the programs compute (float results may differ in the last bits, as between machines).
"""

from __future__ import annotations

import os

FAST_COMPILE = "--xla_backend_optimization_level=0"


def subprocess_env(xla_flags: str = "", optimised: bool = False) -> dict:
    """The environment of a test's child process: this one's, on the CPU, with `xla_flags` (e.g. a host device count)
    and FAST_COMPILE unless `optimised` (a run long enough for XLA's default code generation to pay for itself)."""
    flags = " ".join(f for f in (xla_flags, "" if optimised else FAST_COMPILE) if f)
    import jax

    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    if jax.config.jax_compilation_cache_dir:  # the session's cache (conftest), not the user's
        env["R2I_CACHE_DIR"] = jax.config.jax_compilation_cache_dir
    if flags:
        env["XLA_FLAGS"] = flags
    return env
