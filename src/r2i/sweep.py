"""`r2i sweep`: the memory experiments of R2I (BSuite memory_len and discounting_chain, POPGym), S3M vs GRU.

Every run is one `r2i train` process with its own run directory under `<root>/<suite>/<setting>/<model>/seed<k>`,
so a sweep is resumable at two levels: finished runs (a `result.json`) are skipped, and an interrupted run resumes
from its last checkpoint. Runs can go on in parallel processes (`--jobs`). Each finished run appends one row to the
CSV: `suite,setting,model,seed,env_steps,success,wall_s,commit`, where `commit` is the git commit of the code the run
was trained with (several joined by `+` when it was resumed under newer code; `+dirty` marks uncommitted changes).
A run that ended unsolved at its budget is trained on when the sweep is given a larger one (`run.steps=…` among its
arguments, which the `overrides` column then shows); its row is replaced when it finishes again.

Runs longer than one machine's session carry their state in small archives (`--carry DIR`): `pack` writes each
unfinished run's newest checkpoint, config, metrics and commits to `DIR/<suite>-<setting>-<model>-seed<k>.tar.gz`, and
a sweep started where a run has no run directory (a fresh machine, a clean clone) unpacks it and resumes from there.
A recorded run that a larger budget trains on is packed too, with its `result.json`, until it is trained to that budget.

Success (the `success` column), from the final evaluation of `--eval-episodes` greedy episodes after training:

* memory_len: fraction of the episodes answered correctly;
* discounting_chain: fraction of the episodes in which the agent chose the chain that pays 1.1 (the bonus chain);
* popgym: the mean normalised episode return in [−1, 1] (POPGym's own score; 1 = perfect).
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from r2i.errors import ConfigError, EnvError, R2IError
from r2i.metrics import METRICS_FILE, TB_DIR
from r2i.plot import SWEEP_COLUMNS
from r2i.results_csv import append_row
from r2i.rundir import CONFIG_FILE, RESULT_FILE
from r2i.runtime import source_commit
from r2i.signals import ChildProcesses, StopRequested
from r2i.threads import per_job

# `overrides`: the key=value arguments given to the sweep on top of each run's own (blank in rows written before the
# column existed), so that a row says which variant it measured. `run.cpu_threads` is left out: it sets how fast a run
# goes on a shared machine, not what it computes.
COLUMNS = (*SWEEP_COLUMNS, "commit", "overrides")
COMMITS_FILE = "commits.txt"
DISCOUNTING_DELAYS = (1, 3, 10, 30, 100)


@dataclass(frozen=True)
class Run:
    suite: str
    setting: str
    model: str
    seed: int
    overrides: tuple[str, ...]

    @property
    def key(self) -> tuple[str, str, str, int]:
        """(suite, setting, model, seed): what a CSV row records it by (`run_key`)."""
        return self.suite, self.setting, self.model, self.seed

    def logdir(self, root: Path) -> Path:
        return root / self.suite / self.setting / self.model / f"seed{self.seed}"

    def archive(self, carry: Path) -> Path:
        return carry / f"{self.suite}-{self.setting}-{self.model}-seed{self.seed}.tar.gz"


def memory_len_overrides(length: int, tokens: int = 1024) -> list[str]:
    """bsuite memory_len with `length` memory steps.

    Windows hold an episode (N + 2 steps) at least twice, B·L = `tokens` while a window of that length fits
    (N ≤ tokens/2 − 2), batch 1 past it. The budget buys the same updates per memory step at every length: 10,000 +
    400·N env steps at B·L = `tokens` (N = 30 was solved after 8,000-10,000 env steps by both models with the
    bsuite_cpu preset; the rest is margin), times B·L / `tokens` past it, since an update then replays B·L env steps
    and the same env steps would buy fewer updates (at 1,024 a quarter: the budget 10,000 + 400·N stopped S3M's first
    seed there at 12,600 updates, unsolved, and it solved at 15,175; docs/notes.md, "1,024's budget was too small").
    """
    batch_length = max(64, 2 ** math.ceil(math.log2(2 * (length + 2))))
    batch_size = max(1, tokens // batch_length)
    scale = max(1, batch_size * batch_length // tokens)
    return [
        "env.id=bsuite:memory_len/0",
        f"env.options={{memory_length: {length}}}",
        f"run.batch_length={batch_length}",
        f"run.batch_size={batch_size}",
        f"run.steps={(10_000 + 400 * length) * scale}",
    ]


def discounting_chain_overrides(delay: int, seed: int) -> list[str]:
    """The bsuite id whose bonus chain has this delay: mapping_seed n pays 1.1 on chain n % 5; seeds pick n + 5k."""
    if delay not in DISCOUNTING_DELAYS:
        raise ConfigError(f"discounting_chain delays are {DISCOUNTING_DELAYS}, got {delay}")
    index = DISCOUNTING_DELAYS.index(delay) + 5 * (seed % 4)
    return [f"env.id=bsuite:discounting_chain/{index}"]


SUITES = ("memory_len", "discounting_chain", "popgym")


class RunFailedError(R2IError, RuntimeError):
    """A run of the sweep exited with an error (its train.log says why)."""


class RunStoppedError(R2IError, RuntimeError):
    """A run of the sweep was stopped by SIGINT or SIGTERM; it checkpointed and resumes when the sweep runs again."""


def _setting_int(suite: str, setting: str) -> int:
    try:
        value = int(setting)
    except ValueError:
        raise ConfigError(f"--settings of --suite {suite} are integers, got {setting!r}") from None
    if value < 1:
        raise ConfigError(f"--settings of --suite {suite} must be >= 1, got {value}")
    return value


def plan(suite: str, settings: list[str], models: list[str], seeds: list[int], extra: list[str]) -> list[Run]:
    if suite not in SUITES:
        raise ConfigError(f"--suite must be memory_len, discounting_chain or popgym, got {suite!r}")
    for name, values in (("--settings", settings), ("--models", models), ("--seeds", seeds)):
        if not values or any(v == "" for v in values):
            raise ConfigError(f"{name} needs a comma-separated list without empty entries, got {values!r}")
    from r2i.config import CHOICES

    for model in models:
        if model not in CHOICES["model.sequence"]:
            raise ConfigError(f"--models: unknown model {model!r}; use {', '.join(CHOICES['model.sequence'])}")
    runs = []
    for setting in settings:
        for model in models:
            for seed in seeds:
                if suite == "memory_len":
                    overrides = memory_len_overrides(_setting_int(suite, setting))
                elif suite == "discounting_chain":
                    overrides = discounting_chain_overrides(_setting_int(suite, setting), seed)
                elif suite == "popgym":
                    overrides = [f"env.id=popgym:{setting}"]
                else:
                    raise ConfigError(f"--suite must be memory_len, discounting_chain or popgym, got {suite!r}")
                overrides += [f"model.sequence={model}", f"seed={seed}", *extra]
                runs.append(Run(suite, str(setting), model, seed, tuple(overrides)))
    return runs


def run_config(run: Run, preset: str):
    """The config a run trains with: `preset` plus the run's overrides (without its logdir)."""
    from r2i import config as cfgmod

    return cfgmod.make_config(preset, cfgmod.parse_overrides(list(run.overrides)))


def check_runs(runs: list[Run], preset: str) -> None:
    """Build every run's config and every distinct environment once, so that a bad setting, model or override is
    reported before any run starts (not as a failed run halfway through the sweep)."""
    from r2i.envs import make_env

    built = set()
    for run in runs:
        try:
            config = run_config(run, preset)
            env_key = (config.env.id, repr(sorted(config.env.options.items())))
            if env_key not in built:
                make_env(config.env.id, config.seed, **config.env.options).close()
                built.add(env_key)
        except (ConfigError, EnvError) as error:
            raise type(error)(f"sweep run {run.suite}/{run.setting}/{run.model}/seed{run.seed}: {error}") from None


def success_key(suite: str) -> str:
    """The evaluation metric that is a suite's `success` (module docstring)."""
    return {"memory_len": "eval/success", "discounting_chain": "eval/bonus_chain"}.get(suite, "eval/return")


def success_of(suite: str, result: dict) -> float:
    return result[success_key(suite)]


def run_key(row: dict) -> tuple[str, str, str, int]:
    """(suite, setting, model, seed) of a CSV row or a row about to be written (values may not be strings yet)."""
    return row["suite"], str(row["setting"]), row["model"], int(row["seed"])


def _append_row(csv_path: Path, row: dict, replace: bool = False) -> bool:
    """Append `row` unless the CSV already holds its (suite, setting, model, seed) — with `replace`, it takes that row's
    place; returns whether it was written (under a lock on the file, so sweeps running at the same time never record a
    run twice)."""
    return append_row(csv_path, row, COLUMNS, key=run_key, replace=replace)


def _recorded(csv_path: Path) -> set[tuple[str, str, str, int]]:
    if not csv_path.exists():
        return set()
    with open(csv_path) as f:
        return {run_key(r) for r in csv.DictReader(f)}


def needs_more_steps(run: Run, root: Path, preset: str) -> bool:
    """Whether a recorded run is to train on: it ended unsolved short of the budget its overrides now give
    (`run.steps=…` among the sweep's arguments raised it), or it was being trained on and stopped (a checkpoint short
    of that budget, no result). The sweep then trains it from its last checkpoint to the new budget. A checkpoint at or
    past the budget without a result is a run that a sweep with a larger budget is training on (sharing the root):
    not this sweep's to train, nor its row to replace."""
    logdir = run.logdir(root)
    try:
        result = json.loads((logdir / RESULT_FILE).read_text())
    except FileNotFoundError:
        step = newest_checkpoint_step(logdir)
        return step is not None and step < run_config(run, preset).run.steps
    except (OSError, ValueError):
        return False
    # Only an explicit "solved": false counts: results written before the key existed are left as they are.
    return isinstance(result, dict) and result.get("solved") is False and result.get("env_steps", 0) < run_config(run, preset).run.steps


def execute(run: Run, root: Path, preset: str, env: dict, runner=None) -> dict:
    """Train (or resume, extend, or skip) one run; returns its result dict. `runner` starts the training process
    (`subprocess.run` or `ChildProcesses.run`, which raises `StopRequested` when the sweep is being stopped)."""
    logdir = run.logdir(root)
    result_path = logdir / RESULT_FILE
    if not result_path.exists() or needs_more_steps(run, root, preset):
        logdir.mkdir(parents=True, exist_ok=True)
        commits = run_commits(logdir)
        commit = source_commit()
        if not commits or commits[-1] != commit:
            with open(logdir / COMMITS_FILE, "a") as f:
                f.write(commit + "\n")
        cmd = [sys.executable, "-m", "r2i.cli", "train", "--quiet", "--preset", preset, "--logdir", str(logdir),
               *run.overrides]
        with open(logdir / "train.log", "a") as log:
            proc = (runner or subprocess.run)(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        if proc.returncode in (128 + signal.SIGINT, 128 + signal.SIGTERM):  # r2i train's exit after a signal
            raise RunStoppedError(f"run {logdir} was stopped by a signal after writing its checkpoint; the same "
                                  "command resumes it (add --pack to carry it to another machine)")
        if proc.returncode:
            raise RunFailedError(f"run {logdir} failed with exit code {proc.returncode}; see {logdir / 'train.log'}")
    return json.loads(result_path.read_text())


def run_commits(logdir: Path) -> list[str]:
    """The commits a run was trained with, in order (one line per session that started under a different commit)."""
    path = logdir / COMMITS_FILE
    return path.read_text().split() if path.exists() else []


def _checkpointer(logdir: Path):
    """The run directory's Checkpointer (opening one clears what dead writers left), or None without checkpoints."""
    from r2i.checkpoint import Checkpointer

    return Checkpointer(logdir / "checkpoints") if (logdir / "checkpoints").is_dir() else None


def newest_checkpoint_step(logdir: Path) -> int | None:
    """The env steps of a run directory's newest complete checkpoint, or None without one."""
    checkpointer = _checkpointer(logdir)
    return None if checkpointer is None else checkpointer.latest()


def newest_checkpoint(logdir: Path) -> Path | None:
    checkpointer = _checkpointer(logdir)
    step = None if checkpointer is None else checkpointer.latest()
    return None if step is None else checkpointer.path(step)


def pack(runs: list[Run], root: Path, carry: Path, preset: str, csv_path: Path | None = None) -> list[Path]:
    """Archive every unfinished run's resume state into `carry`; drop the archives of runs that have finished.

    A run the sweep's CSV (`csv_path`) records is finished for this sweep unless its budget trains it on
    (`needs_more_steps`), even without a `result.json`: a sweep with a larger budget on the same root may be training
    it on, and packs it into its own carry.

    An archive holds the run's newest complete checkpoint, `config.yaml`, `metrics.jsonl`, the TensorBoard events,
    `commits.txt` and, for a recorded run that the runs' budget trains on (`needs_more_steps`), its `result.json` —
    what `r2i train` needs to resume exactly (the metrics and events past the checkpoint are cut on resume) and the
    sweep needs to know the run is to be trained on. It is written to a temporary name and renamed, so an interrupted
    pack never leaves half an archive. Returns the archives written.
    """
    carry.mkdir(parents=True, exist_ok=True)
    recorded = _recorded(csv_path) if csv_path is not None else set()
    written = []
    for run in runs:
        logdir, archive = run.logdir(root), run.archive(carry)
        finished = (logdir / RESULT_FILE).exists() or run.key in recorded
        if finished and not needs_more_steps(run, root, preset):
            archive.unlink(missing_ok=True)  # finished: its row is in the CSV
            continue
        if pack_run(logdir, archive):
            written.append(archive)
    return written


def pack_run(logdir: Path, archive: Path) -> bool:
    """Write one run's resume state to `archive` (.tar.gz, atomically); False if the run has no checkpoint yet."""
    checkpoint = newest_checkpoint(logdir)
    if checkpoint is None:
        return False
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_name(archive.name + ".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for name in (CONFIG_FILE, METRICS_FILE, COMMITS_FILE, TB_DIR, RESULT_FILE):
            if (logdir / name).exists():
                tar.add(logdir / name, arcname=name)
        # Named by its place in the run directory: the checkpointer's path is absolute, `logdir` may be relative.
        tar.add(checkpoint, arcname=f"{checkpoint.parent.name}/{checkpoint.name}")
    os.replace(tmp, archive)
    return True


def unpack(run: Run, root: Path, carry: Path) -> bool:
    """Restore a run's directory from its archive in `carry` when the run has no checkpoint here; returns whether it
    did. A run directory that already holds a checkpoint is never overwritten (it is newer than any archive)."""
    return unpack_run(run.archive(carry), run.logdir(root))


def archive_holds_result(archive: Path) -> bool:
    """Whether `archive` carries a recorded run that was being trained on past its first budget (see `pack`)."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            return RESULT_FILE in tar.getnames()
    except (FileNotFoundError, tarfile.TarError, EOFError, zlib.error):
        return False


def unpack_run(archive: Path, logdir: Path) -> bool:
    """Restore a run directory from `archive` unless it already holds a checkpoint or a result; returns whether it did."""
    if not archive.exists() or (logdir / RESULT_FILE).exists() or newest_checkpoint(logdir) is not None:
        return False
    logdir.mkdir(parents=True, exist_ok=True)
    # Unpack beside the run directory first, so that a damaged archive leaves no half-restored run behind.
    staging = logdir.with_name(f".{logdir.name}.unpacking")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(staging, filter="data")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise ConfigError(
            f"{archive} cannot be unpacked ({type(error).__name__}: {error}); it is damaged or not a run archive: "
            f"restore it from git (git checkout -- {archive}) or delete it to start that run from scratch"
        ) from None
    for entry in staging.iterdir():  # the archive wins over what a run without a checkpoint left here
        if (logdir / entry.name).is_dir():
            shutil.rmtree(logdir / entry.name)
        os.replace(entry, logdir / entry.name)
    staging.rmdir()
    return True


def sweep(suite: str, settings: list[str], models: list[str], seeds: list[int], *, preset: str, root: Path,
          csv_path: Path, jobs: int = 1, extra: list[str] = (), carry: Path | None = None) -> list[dict]:
    """Run every (setting, model, seed) not yet in the CSV, `jobs` at a time, appending rows as runs finish.

    With `carry`, a run without a checkpoint under `root` first resumes from its archive there (see `pack`)."""
    if jobs < 1:  # before the runs' checks, which build environments (and need their extras)
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    runs = plan(suite, settings, models, seeds, [*per_job(jobs, extra), *extra])
    check_runs(runs, preset)
    done = _recorded(csv_path)
    new = [r for r in runs if r.key not in done]
    if carry is not None:  # a recorded run carried here while being trained on: restored first, to be seen below
        for run in runs:
            if run not in new and archive_holds_result(run.archive(carry)) and unpack(run, root, carry):
                print(f"r2i sweep: {run.logdir(root)} restored from {run.archive(carry)}", flush=True)
    # Recorded, unsolved, and now given a larger budget: trained on, and their rows replaced when they finish.
    extended = {r for r in runs if r not in new and needs_more_steps(r, root, preset)}
    todo = [r for r in runs if r in extended or r in new]  # in the plan's order
    print(f"r2i sweep: {len(runs)} runs, {len(runs) - len(new)} already in {csv_path}, {len(todo)} to go"
          + (f" ({len(extended)} recorded, unsolved: trained on to the new run.steps)" if extended else "")
          + f" ({jobs} at a time); runs under {root}", flush=True)
    env = dict(os.environ)
    rows = []

    def one(run: Run) -> dict | None:
        start = time.time()
        if children.requested:
            return None
        if carry is not None and unpack(run, root, carry):
            print(f"r2i sweep: resuming {run.logdir(root)} from {run.archive(carry)}", flush=True)
        try:
            result = execute(run, root, preset, env, runner=children.run)
        except StopRequested:
            return None
        row = dict(suite=run.suite, setting=run.setting, model=run.model, seed=run.seed,
                   env_steps=result["env_steps"], success=round(success_of(run.suite, result), 4),
                   wall_s=round(result.get("wall_s", time.time() - start), 1),
                   commit="+".join(dict.fromkeys(run_commits(run.logdir(root)))) or "unknown",
                   overrides=" ".join(o for o in extra if not o.startswith("run.cpu_threads=")))
        if _append_row(csv_path, row, replace=run in extended):
            print(f"r2i sweep: {json.dumps(row)}", flush=True)
        return row

    # A SIGINT / SIGTERM to the sweep reaches its trainings: they checkpoint and exit, and the same command resumes.
    with ChildProcesses() as children, ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        rows = [row for row in pool.map(one, todo) if row is not None]
    if children.requested:
        print("r2i sweep: stopped; the same command resumes the unfinished runs", flush=True)
        raise StopRequested(children.signum)
    return rows
