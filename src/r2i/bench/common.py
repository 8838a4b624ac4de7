"""Timing helpers and synthetic data shared by the benchmarks."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

_SINKS: list = []  # open files that also receive every emitted line (see `also_write`)


def emit(record: dict[str, Any]) -> None:
    """Print one JSON line and flush, so that partial results survive an interrupted run."""
    line = json.dumps(record)
    print(line, flush=True)
    sys.stdout.flush()
    for sink in _SINKS:
        sink.write(line + "\n")
        sink.flush()


@contextlib.contextmanager
def also_write(path: str | os.PathLike | None):
    """While active, `emit` appends every line to `path` too (created with its parent directories); None: nothing."""
    if path is None:
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as sink:
        _SINKS.append(sink)
        try:
            yield
        finally:
            _SINKS.remove(sink)


def device_memory(compiled) -> dict[str, float]:
    """Device memory of one compiled program (XLA's buffer assignment: arguments + outputs + temporaries − donated
    aliases, MB) and this process's peak device allocation so far (MB; None on backends that do not report it)."""
    out: dict[str, float] = {}
    try:
        stats = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - not every backend implements it; the field is then left out
        stats = None
    if stats is not None:
        total = (stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
                 - stats.alias_size_in_bytes)
        out["program_memory_mb"] = round(total / 2**20, 1)
        out["program_temp_mb"] = round(stats.temp_size_in_bytes / 2**20, 1)
    device_stats = jax.local_devices()[0].memory_stats() or {}
    peak = device_stats.get("peak_bytes_in_use")
    out["device_peak_mb_so_far"] = round(peak / 2**20, 1) if peak is not None else None
    return out


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


def random_batch(
    b: int, t: int, obs_size: int, actions: int, *, seed: int = 0, first_rate: float = 0.02,
    terminal_rate: float = 0.01,
) -> dict[str, np.ndarray]:
    """A synthetic training batch for a vector observation and one discrete action, deterministic in `seed`.

    `vector` float32 (B, T, obs_size) and `reward` float32 (B, T) standard normal; `action` float32 one-hots
    (B, T, actions); `is_first` bool (B, T), True at t = 0 and elsewhere with probability `first_rate`; `is_terminal`
    bool (B, T) with probability `terminal_rate`; `is_last` all False.
    """
    rng = np.random.default_rng(seed)
    first = rng.random((b, t)) < first_rate
    first[:, 0] = True
    return {
        "vector": rng.normal(size=(b, t, obs_size)).astype(np.float32),
        "action": np.eye(actions, dtype=np.float32)[rng.integers(0, actions, (b, t))],
        "reward": rng.normal(size=(b, t)).astype(np.float32),
        "is_first": first,
        "is_last": np.zeros((b, t), bool),
        "is_terminal": rng.random((b, t)) < terminal_rate,
    }
