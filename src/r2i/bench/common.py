"""Timing helpers shared by the benchmarks."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Callable

import jax
import numpy as np


def emit(record: dict[str, Any]) -> None:
    """Print one JSON line and flush, so that partial results survive an interrupted run."""
    print(json.dumps(record), flush=True)
    sys.stdout.flush()


def compile_and_time(fn: Callable, args: tuple, repeats: int, warmup: int = 1) -> tuple[float, float, Any]:
    """Compile `fn` (a jax.jit function) for `args`, then time it.

    Returns (compile seconds, median seconds over `repeats` runs after `warmup` runs, the compiled executable).
    """
    start = time.perf_counter()
    compiled = fn.lower(*args).compile()
    compile_s = time.perf_counter() - start
    for _ in range(warmup):
        jax.block_until_ready(compiled(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
    return compile_s, float(np.median(times)), compiled


def parse_ints(text: str) -> list[int]:
    """'4,16' → [4, 16]."""
    from r2i.errors import ConfigError

    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"expected comma-separated integers such as '4,16', got {text!r}") from None
