"""`r2i bench eval`: one evaluation round of a trained run, timed for several numbers of evaluation envs.

An evaluation round runs `episodes` full episodes; `env.eval_envs` of them run side by side, one batched policy call
per step. With few envs and long episodes (BSuite memory length 512: 514 steps) the round is a long chain of small
policy calls, which at a low train ratio is a large share of a run's wall clock (the `time/eval` share in its
metrics). One JSON line per envs count (median seconds of `repeats` rounds after one warm-up round, which compiles the
policy for that batch), then a summary line with each count's time over the first count's:

    {"bench": "eval", "env": "bsuite:memory_len/0", "envs": 50, "episodes": 100, "median_s": 6.8, "success": 0.98,
     "device": "cpu: 2 cores, ...", "repeats": 3, "commit": "0123abcd45", "logdir": "runs/x", "checkpoint_step": 86004}

Every round draws the same episodes for a given envs count (fresh envs from the evaluation seeds), so its success is
the same from round to round, and differs between counts only by which episodes are drawn.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import numpy as np

from r2i.agent import Agent
from r2i.bench.common import emit
from r2i.config import Config
from r2i.errors import ConfigError
from r2i.evaluation import evaluate
from r2i.rundir import checkpointed_step
from r2i.runtime import device_description, source_commit


def check_counts(episodes: int, envs: list[int], repeats: int) -> None:
    """Refuse counts below 1 (before a checkpoint is loaded for nothing)."""
    if episodes < 1 or repeats < 1 or not envs or min(envs) < 1:
        raise ConfigError(f"--episodes ({episodes}), --repeats ({repeats}) and every --envs count ({envs}) must be "
                          ">= 1")


def run(agent: Agent, params, config: Config, logdir: str | Path, episodes: int, envs: list[int], repeats: int,
        mode: str | None = None) -> None:
    """Emit one line per count in `envs` and a summary line, for the policy (`agent`, `params`) of the run in `logdir`
    whose config is `config` (`r2i.api.load`'s); `mode` defaults to the run's `run.eval_mode`."""
    check_counts(episodes, envs, repeats)
    mode = mode or config.run.eval_mode
    run_fields = dict(logdir=str(logdir), checkpoint_step=checkpointed_step(Path(logdir)))
    device, commit = device_description(), source_commit()
    medians = {}
    for n in envs:
        setting = dataclasses.replace(config, env=dataclasses.replace(config.env, eval_envs=n))
        times, out = [], {}
        for i in range(repeats + 1):  # the first round compiles the policy for this batch and is not counted
            start = time.perf_counter()
            out = evaluate(agent, params, setting, episodes, mode, jax.random.key(0))
            if i:
                times.append(time.perf_counter() - start)
        medians[n] = float(np.median(times))
        emit(dict(bench="eval", env=config.env.id, envs=min(n, episodes), episodes=episodes, mode=mode,
                  median_s=round(medians[n], 3), success=out.get("eval/success"), eval_return=out.get("eval/return"),
                  device=device, repeats=repeats, commit=commit, **run_fields))
    first = envs[0]
    emit(dict(bench="eval", summary=f"time_over_{first}_envs", episodes=episodes, device=device, commit=commit,
              ratio={str(n): round(medians[n] / medians[first], 3) for n in envs}))
