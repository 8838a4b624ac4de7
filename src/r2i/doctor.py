"""`r2i doctor`: what this machine offers (backend, devices, dtypes, RAM, disk) against what a preset needs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from r2i.replay import human_bytes


def _dtype_ok(dtype) -> bool:
    import jax.numpy as jnp

    try:
        x = jnp.ones((8, 8), dtype)
        return bool(jnp.isfinite((x @ x).astype(jnp.float32)).all())
    except Exception:  # noqa: BLE001 — any failure means unsupported
        return False


def report(preset: str = "default", logdir: str = "runs", overrides: dict | None = None) -> str:
    """`overrides` are dotted config keys as for `r2i train` (e.g. replay.capacity), applied to the preset."""
    import jax
    import jax.numpy as jnp

    from r2i.agent import resolve_dtype
    from r2i.config import make_config
    from r2i.envs import make_env
    from r2i.preflight import stored_steps
    from r2i.replay import Replay
    from r2i.run import available_ram, replay_spec
    from r2i.runtime import device_description

    lines = [f"jax {jax.__version__}, backend {jax.default_backend()}, {device_description()}"]
    lines += [f"  device {d.id}: {d.device_kind}" for d in jax.devices()]
    lines.append(
        f"dtypes: float32 {'ok' if _dtype_ok(jnp.float32) else 'FAIL'}, bfloat16 "
        f"{'ok' if _dtype_ok(jnp.bfloat16) else 'unsupported'}; compute dtype 'auto' → "
        f"{jnp.dtype(resolve_dtype('auto')).name}"
    )
    config = make_config(preset, overrides)
    need = disk_need = None  # unknown when the env cannot be built
    try:
        env = make_env(config.env.id, 0, **config.env.options)

        class _Spaces:  # replay_spec reads obs_space / act_space only
            obs_space, act_space = env.obs_space, env.act_space

        spec = replay_spec(_Spaces)
        env.close()
        held = stored_steps(config)  # as `r2i train`'s own check counts them
        size = Replay.estimate_bytes(spec, held, config.env.num_envs)
        if config.replay.backend == "disk":
            from r2i.replay_disk import DiskReplay

            ram_need = DiskReplay.estimate_ram(spec, config.env.num_envs, config.replay.chunk, config.run.batch_size,
                                               config.run.batch_length)
            disk_need = size  # the chunk files; checkpoints hold no copy of them
            where = f"on disk (replay.backend=disk), RAM ≈ {human_bytes(ram_need)} (one chunk being written + a batch)"
        else:
            ram_need, disk_need = size, 3 * size  # the checkpoints (two kept, one being written) hold copies
            where = "in RAM (replay.backend=memory; replay.backend=disk keeps it on disk)"
        need = ram_need
        stored = (f"replay {held:,} steps" if held == config.replay.capacity
                  else f"replay {held:,} steps (run.steps; replay.capacity {config.replay.capacity:,})")
        lines.append(f"preset '{preset}': env {config.env.id}, {stored} ≈ {human_bytes(size)} {where}")
    except Exception as error:  # noqa: BLE001 — e.g. a missing optional extra; report it and go on
        lines.append(f"preset '{preset}': cannot build env {config.env.id}: {error}")
    free = available_ram()
    if free is not None:
        verdict = "" if need is None else (
            " — enough" if free > 1.5 * need else " — tight for the replay" if free >= need
            else " — NOT enough for the replay: `r2i train` refuses it; lower replay.capacity")
        lines.append(f"RAM available: {human_bytes(free)}{verdict}")
    target = Path(logdir)
    probe = target if target.exists() else Path(os.getcwd())
    disk = shutil.disk_usage(probe).free
    verdict = "" if disk_need is None else (" — enough for the replay and checkpoints" if disk > disk_need
                                            else f" — low: the replay and checkpoints need ≈ {human_bytes(disk_need)}")
    lines.append(f"disk free at {probe}: {human_bytes(disk)}{verdict}")
    lines.append(f"CPU cores: {os.cpu_count()}")
    return "\n".join(lines)
