"""The run directory: what a run keeps beside its checkpoints, and the rules for starting, resuming and finishing.

Layout of a logdir: `config.yaml` (the resolved config, written once a run could be built), `checkpoints/`,
`metrics.jsonl` and `tb/` (`r2i.metrics`), `result.json` (written when a run finishes; its presence marks the run as
done), `.lock` (`r2i.runlock.RunLock`, held while a trainer owns the directory).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import yaml

from r2i import config as cfgmod
from r2i.checkpoint import Checkpointer
from r2i.config import Config
from r2i.errors import ConfigError

CONFIG_FILE = "config.yaml"
RESULT_FILE = "result.json"
CHECKPOINTS = "checkpoints"
SNAPSHOTS = "snapshots"  # run.snapshot_every: the agent at points of the run, kept for good


def prepare_logdir(logdir: Path) -> Path | None:
    """Create the run directory; returns the topmost directory this call created (None if it existed), so that a
    failed start can remove it. A logdir that is a file, under a file, or not readable and writable is a ConfigError."""
    if logdir.exists() and not logdir.is_dir():
        raise ConfigError(f"--logdir {logdir} is a file, not a directory; choose a directory path")
    created = None
    for parent in [logdir, *logdir.parents]:
        if parent.exists():
            break
        created = parent
    try:
        logdir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(f"cannot create --logdir {logdir}: a part of that path is a file; choose another path")\
            from None
    except OSError as error:
        raise ConfigError(f"cannot create --logdir {logdir}: {error.strerror}; choose a writable directory") from None
    if not os.access(logdir, os.R_OK | os.W_OK | os.X_OK):
        raise ConfigError(f"--logdir {logdir} is not readable and writable by this user; fix its permissions "
                          "(chmod u+rwx) or choose another directory")
    return created


def load_config(logdir: str | Path) -> Config:
    path = Path(logdir) / CONFIG_FILE
    if not path.exists():
        raise ConfigError(f"{logdir} is not an r2i run directory (no {CONFIG_FILE}); pass the --logdir of a run")
    # The run lives where it was found: a run directory that was moved, copied or unpacked elsewhere (or trained with
    # a --logdir relative to another working directory) must not point back to its old place.
    return cfgmod.apply_overrides(cfgmod.from_dict(yaml.safe_load(path.read_text())), {"logdir": str(logdir)})


def write_config(config: Config) -> None:
    path = Path(config.logdir) / CONFIG_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(cfgmod.dump_yaml(config))
    tmp.replace(path)


def check_resume_config(config: Config, force: bool = False) -> None:
    """Refuse to resume a run (a logdir with a checkpoint) with a different config, unless `force`."""
    logdir = Path(config.logdir)
    saved_path = logdir / CONFIG_FILE
    if not saved_path.exists() or Checkpointer(logdir / CHECKPOINTS).latest() is None:
        return  # nothing to resume: a config.yaml left by a run that never checkpointed is simply replaced
    saved = load_config(logdir)
    differing = cfgmod.diff(saved, config)
    if differing and not force:
        flat_saved, flat_new = cfgmod.flatten(cfgmod.to_dict(saved)), cfgmod.flatten(cfgmod.to_dict(config))
        lines = ", ".join(f"{k}: {flat_saved[k]!r} → {flat_new[k]!r}" for k in differing[:8])
        raise ConfigError(
            f"{logdir} holds a run with a different config ({lines}); resume with the same settings (or only "
            "--logdir), pass --force to continue it with the new ones, or choose another --logdir"
        )


def checkpointed_step(logdir: Path) -> int:
    """The step of a run directory's latest checkpoint (0 if none), without creating anything."""
    directory = logdir / CHECKPOINTS
    if not directory.is_dir():
        return 0
    return Checkpointer(directory).latest() or 0


def stop_met(run: cfgmod.RunConfig, scores: list[float]) -> bool:
    """Whether the latest `run.stop_rounds` evaluation rounds' `run.stop_metric` scores (newest last) all met
    `run.stop_at_success` (0 = never): the rule by which a run is solved, for the training loop and for `r2i sweep
    --status` reading a checkpoint's counters."""
    rounds = run.stop_rounds
    return bool(run.stop_at_success) and len(scores) >= rounds and min(scores[-rounds:]) >= run.stop_at_success


def counter_scores(counters: dict) -> list[float]:
    """The stop metric's scores of the latest rounds, newest last, from a run's counters (`r2i.loop.Counters` or a
    checkpoint's saved dict); counters saved before `eval_scores` existed give their last round's score alone."""
    scores = counters.get("eval_scores") or []
    last = counters.get("last_eval_score")
    if not scores and isinstance(last, (int, float)):
        scores = [last]
    return [float(s) for s in scores if isinstance(s, (int, float))]


def finished_result(config: Config) -> dict | None:
    """The saved result of a run that already finished with this many steps, or that solved its task by the stop rule
    the config still has, else None. A solved run whose `run.stop_at_success` is now 0 (never) or above the score it
    stopped at trains on (resuming with a changed stop rule needs --force, as any changed setting does)."""
    path = Path(config.logdir) / RESULT_FILE
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(result, dict) or "env_steps" not in result:
        return None
    if result["env_steps"] >= config.run.steps:
        return result
    # A result written before "solved_score" existed stays solved under any rule but 0 (never); one solved by fewer
    # rounds in a row than `run.stop_rounds` now asks for trains on.
    rounds = int(result.get("solved_rounds", 1))
    if result.get("solved") and stop_met(config.run, [result.get("solved_score", math.inf)] * rounds):
        return result
    return None


def clear_result(logdir: Path) -> None:
    """Forget a run's result: a run that trains further is no longer described by it."""
    (logdir / RESULT_FILE).unlink(missing_ok=True)


def write_result(logdir: Path, result: dict) -> None:
    """Write `result.json` atomically; it marks a finished run (the sweep skips those)."""
    tmp = logdir / (RESULT_FILE + ".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(logdir / RESULT_FILE)
