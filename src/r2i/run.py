"""Train a run: `train(config)` checks the run, builds a `Trainer`, trains, evaluates and records the result.

The pieces live in modules with one job each, re-exported here under the names callers have always used:

* `r2i.loop` — `Trainer` (the training loop) and its `Counters`; the glossary of env steps, policy steps, updates and
  replayed steps is there.
* `r2i.clocks` — when to train (the train ratio), log, evaluate and checkpoint.
* `r2i.evaluation` — `evaluate`, full episodes in separate evaluation envs.
* `r2i.rundir` — the run directory: `config.yaml`, the resume check, `result.json`.
* `r2i.preflight` — checks before a run starts: it makes updates, its replay fits.
* `r2i.console` — the progress bar, status lines and the final summary (`format_result`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from r2i import distributed as dist
from r2i.config import Config
from r2i.console import Progress as _Progress
from r2i.console import format_result
from r2i.console import postfix as _postfix
from r2i.evaluation import EVAL_SEED_OFFSET, evaluate
from r2i.loop import OBS_PREFIX, Counters, Trainer
from r2i.preflight import available_ram, check_replay_memory, check_updates, replay_spec
from r2i.rundir import (
    CONFIG_FILE,
    RESULT_FILE,
    check_resume_config,
    checkpointed_step,
    clear_result,
    finished_result,
    load_config,
    prepare_logdir,
    write_config,
    write_result,
)
from r2i.threads import limit_cpu_threads

__all__ = [
    "CONFIG_FILE", "EVAL_SEED_OFFSET", "OBS_PREFIX", "RESULT_FILE", "Counters", "Trainer", "_Progress", "_postfix",
    "available_ram", "check_replay_memory", "check_resume_config", "check_updates", "evaluate", "finished_result",
    "format_result", "load_config", "prepare_logdir", "replay_spec", "train", "write_config",
]  # fmt: skip


def train(config: Config, *, force: bool = False, quiet: bool = False) -> dict:
    """Train (or resume) a run; returns the last logged metrics plus a final evaluation if configured.

    A run that already finished (its `result.json` covers `run.steps`, or its task was solved by the stop rule the
    config still has) is not trained or evaluated again: its saved result comes back with `"finished_before"` set to
    "steps" or "solved" (both true). A run that would do no update is refused (ConfigError).
    """
    done = finished_result(config)
    if done is not None:
        return {**done, "finished_before": "steps" if done["env_steps"] >= config.run.steps else "solved"}
    limit_cpu_threads(config.run.cpu_threads)  # a no-op when `r2i train` has done it, a warning if JAX started first
    logdir = Path(config.logdir)
    check_updates(config, checkpointed_step(logdir) if logdir.is_dir() else 0)
    trainer = Trainer(config, force=force, quiet=quiet)
    try:
        clear_result(logdir)  # training further: the old result no longer describes it
        result = trainer.run()
        if not result["stopped_early"] and config.run.eval_episodes:
            final = trainer.eval_round(config.run.eval_episodes)
            trainer.logger.write(trainer.counters.env_steps, final)
            result.update(final)
        result["env_steps"] = trainer.counters.env_steps
        result["updates"] = trainer.counters.updates
        result["wall_s"] = trainer.counters.wall_s
        if not result["stopped_early"] and dist.is_main():  # result.json marks a finished run (the sweep skips those)
            write_result(logdir, result)
        return result
    finally:
        trainer.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use the `r2i train` command")
