"""Checks a run passes before it starts: that it will make at least one update, and that its replay will fit.

Both fail early with a ConfigError that names the fields to change, instead of an untrained "result" at the end of
the run or an out-of-memory kill when the replay fills up hours in.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np

from r2i.config import Config
from r2i.errors import ConfigError
from r2i.replay import Replay, human_bytes
from r2i.replay_disk import replay_directory


def replay_spec(driver) -> dict:
    """(shape, dtype) of every stored key of a `VectorDriver`'s steps: observations, the action taken at them,
    reward and flags."""
    spec = {key: (space.shape, space.dtype) for key, space in driver.obs_space.items()}
    spec["action"] = ((driver.act_space.size,), np.float32)
    spec["reward"] = ((), np.float32)
    for flag in ("is_first", "is_last", "is_terminal"):
        spec[flag] = ((), bool)
    return spec


def available_ram() -> int | None:
    """Bytes of RAM available to a new allocation (Linux MemAvailable), None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def stored_steps(config: Config) -> int:
    """Env steps the run's replay will hold: a run never stores more than its `run.steps`, so a short run of a
    large-replay preset (a smoke test) needs only what it will write."""
    return min(config.replay.capacity, config.run.steps)


def check_replay_memory(spec: dict, config: Config) -> None:
    """Refuse a replay that would not fit into the RAM available now (it fills up over the run, then fails late), or,
    with `replay.backend=disk`, onto the free disk space of its directory. A run never stores more than its
    `run.steps` env steps, so a short run of a large-replay preset (a smoke test) asks only for what it will write."""
    held = stored_steps(config)
    need = Replay.estimate_bytes(spec, held, config.env.num_envs)
    what = (f"replay.capacity={config.replay.capacity:,} steps" if held == config.replay.capacity
            else f"run.steps={held:,} steps of replay (replay.capacity {config.replay.capacity:,})")
    if config.replay.backend == "disk":
        directory = replay_directory(config, config.logdir)
        target = directory
        while not target.exists() and target != target.parent:
            target = target.parent
        free_disk = shutil.disk_usage(target).free
        # A resumed run's chunk files are sparse and already count as used space: only their growth is needed.
        used = sum(f.stat().st_blocks * 512 for f in directory.rglob("*") if f.is_file()) if directory.exists() else 0
        if need > free_disk + used:
            raise ConfigError(
                f"{what} needs ≈ {human_bytes(need)} of disk under {target} "
                f"(replay.backend=disk), but only {human_bytes(free_disk)} is free; lower replay.capacity or set "
                "replay.directory to a larger disk"
            )
        return
    free = available_ram()
    if free is not None and need > free:
        per_step = max(1, need // max(1, held))
        fits = int(0.8 * free // per_step)
        raise ConfigError(
            f"{what} needs ≈ {human_bytes(need)} of RAM when full, but "
            f"only {human_bytes(free)} is available; lower replay.capacity (≈ {fits:,} steps fit)"
        )


def check_updates(config: Config, start: int = 0) -> None:
    """Refuse a run that would end without a single update (its "result" would be an untrained agent's).

    Updates start once `run.prefill` env steps are done and the replay holds `run.batch_size` windows of
    `run.batch_length` steps; from then on each env step owes train_ratio / (B·L) updates.
    """
    run, envs = config.run, config.env.num_envs
    if start >= run.steps:
        return  # nothing left to train: a finished (or checkpointed-at-the-end) run
    per_env = run.steps // envs
    if run.steps <= run.prefill:
        raise ConfigError(
            f"run.steps={run.steps:,} is not above run.prefill={run.prefill:,}: the run would only act randomly and "
            "do no updates; raise run.steps (--steps) or lower run.prefill"
        )
    windows_from = envs * (run.batch_length + math.ceil(run.batch_size / envs) - 1)
    if run.steps <= windows_from:
        raise ConfigError(
            f"run.batch_length={run.batch_length} is longer than the {per_env:,} steps each of the env.num_envs={envs} "
            f"envs collects in run.steps={run.steps:,}: no training window ever fills, so no update would happen; "
            "raise run.steps or lower run.batch_length"
        )
    per_update = run.batch_size * run.batch_length
    updates = (run.steps - max(run.prefill, windows_from, start)) * run.train_ratio / per_update
    if updates < 1:
        raise ConfigError(
            f"run.steps={run.steps:,} with run.train_ratio={run.train_ratio:g} gives less than one update "
            f"(train_ratio / (batch_size·batch_length) = {run.train_ratio / per_update:.3g} "
            "updates per env step after the prefill); raise run.steps or run.train_ratio"
        )
