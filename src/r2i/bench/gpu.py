"""`r2i bench gpu`: one prepared run of every GPU figure the README lacks, within a fixed time budget.

Three parts, each a JSON line per measurement (also appended to `--out`, by default
`benchmarks/results/gpu_<device>_<UTC time>.jsonl`):

1. `scan`: the reset-aware linear recurrence, associative vs sequential, forward and forward+backward, at B 16 ×
   T 256 / 1,024 / 4,096 (P 128 and 512), as `r2i bench scan`;
2. `act`: acting throughput, one jitted policy step for N envs (S3M and GRU), policy steps/s and env steps/s;
3. `train`: the whole update, S3M vs GRU at the reference POPGym size, B 4 / 16 × T 64 / 256 / 1,024, bfloat16 and
   float32, with the compiled program's device memory (XLA's buffer assignment) and the process's peak so far.

Everything runs in this one process (a fresh process per update configuration would cost a start-up and a device
initialisation each, which the 10-minute budget cannot afford); device memory is therefore reported per compiled
program, exactly, rather than as a per-process peak. The update configurations run smallest first, both dtypes and
both models of a size back to back, and none is started after `budget_s`: a line with `skipped` lists what did not
fit.
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import jax
import numpy as np

from r2i.bench import scan, train
from r2i.bench.common import also_write, compile_and_time, emit
from r2i.runtime import device_description

REFERENCE_SIZE = "popgym_released"  # the key of bench.train.SIZES that holds the reference POPGym configuration


def default_out() -> Path:
    device = jax.devices()[0].device_kind.lower().replace(" ", "-")
    return Path("benchmarks/results") / f"gpu_{device}_{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.jsonl"


def acting(models, envs, size: str, extra: dict | None, repeats: int) -> None:
    """Policy steps per second of the jitted policy (world-model step + actor) for `envs` environments."""
    from r2i.agent import Agent
    from r2i.config import make_config
    from r2i.spaces import ActionSpace, Space

    for model in models:
        config = make_config("default", dict(train.SIZES[size], **(extra or {}), **{"model.sequence": model}))
        agent = Agent.from_config(config, {"vector": Space((train.OBS_SIZE,))},
                                  ActionSpace("discrete", nvec=(train.ACTIONS,)))
        params = agent.init(jax.random.key(0)).params
        for n in envs:
            obs = {"vector": np.zeros((n, train.OBS_SIZE), np.float32), "is_first": np.ones((n,), bool)}
            args = (params, agent.initial(n), obs, jax.random.key(1))
            compile_s, median_s, _ = compile_and_time(agent.act_step, args, repeats)
            emit(dict(bench="gpu", part="act", model=model, envs=n, median_ms=round(median_s * 1e3, 3),
                      policy_steps_per_s=round(1 / median_s, 1), env_steps_per_s=round(n / median_s, 1),
                      compile_s=round(compile_s, 2), dtype=str(np.dtype(agent.dtype)), repeats=repeats,
                      device=device_description()))


def updates(models, batch, length, dtypes, size: str, extra: dict | None, repeats: int, deadline: float) -> None:
    """The whole update per (B, T, dtype, model), smallest B·T first (both dtypes and both models of one size back to
    back, so a cut-off budget still leaves complete comparisons); nothing is started after `deadline`. Smallest first
    because compiling grows with the window on GPU: on an H200, S3M's bfloat16 update compiled in 33 s at B 16 × T 256
    and in 179 s at B 16 × T 1,024, which alone took most of the budget when the largest came first."""
    configs = sorted(itertools.product(dtypes, batch, length, models),
                     key=lambda c: (c[1] * c[2], c[1], dtypes.index(c[0]), models.index(c[3])))
    skipped = []
    for dtype, b, t, model in configs:
        if time.monotonic() > deadline:
            skipped.append(f"{model} {dtype} B{b}xT{t}")
            continue
        try:
            record = train.worker(model, size, b, t, repeats, extra=dict(extra or {}, **{"model.dtype": dtype}))
        except Exception as e:  # noqa: BLE001 - e.g. out of memory at one size: record it, go on with the others
            emit(dict(bench="gpu", part="train", model=model, dtype=dtype, B=b, T=t,
                      error=f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"))
            continue
        emit(dict(record, bench="gpu", part="train"))
    if skipped:
        emit(dict(bench="gpu", part="train", skipped=skipped, reason="time budget"))


def run(out: str | Path | None = None, *, scan_batch=(16,), scan_length=(256, 1024, 4096), scan_state=(128, 512),
        act_envs=(1, 16, 256), models=("s3m", "gru"), batch=(4, 16), length=(64, 256, 1024),
        dtypes=("bfloat16", "float32"), size: str = REFERENCE_SIZE, extra: dict | None = None, repeats: int = 3,
        budget_s: float = 480.0) -> Path:
    """Run the three parts; returns the JSON-lines file written."""
    start = time.monotonic()
    out = Path(out) if out is not None else default_out()
    models, dtypes = list(models), list(dtypes)
    with also_write(out):
        emit(dict(bench="gpu", part="start", device=device_description(), backend=jax.default_backend(),
                  jax=jax.__version__, size=size, extra=extra or {}, budget_s=budget_s,
                  xla_flags=os.environ.get("XLA_FLAGS", "")))
        scan.run(list(scan_batch), list(scan_length), list(scan_state), repeats)
        acting(models, act_envs, size, extra, repeats)
        updates(models, list(batch), list(length), dtypes, size, extra, repeats, start + budget_s)
        emit(dict(bench="gpu", part="end", wall_s=round(time.monotonic() - start, 1)))
    return out
