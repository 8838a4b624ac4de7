"""`r2i sweep --status`: where each run of a sweep stands, read from its run directory, its archive and the CSV.

A run is in one of these states (the first that holds):

* `training` — a live process holds its run directory's lock (`training (paused)`: stopped by SIGSTOP);
* `to train on` — finished unsolved short of the budget the sweep's arguments now give (the sweep trains it on);
* `solved` / `unsolved` / `finished` — it has a `result.json` (`finished`: written before results said which);
* `stopped` — a checkpoint and no result: the sweep resumes it (`stopped (solved)`: its last evaluation met
  `run.stop_at_success`; the resume runs the final evaluation and trains no more);
* `packed` — no checkpoint here, an archive in `--carry`: the sweep unpacks and resumes it;
* `recorded` — a row in the CSV and no run directory here (it finished on another machine);
* `not started`.

Nothing is written: the lock is only tested, archives are read in place.
"""

from __future__ import annotations

import csv
import json
import socket
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from r2i.metrics import METRICS_FILE, MetricsLogger, parse_records
from r2i.rundir import RESULT_FILE, counter_scores, stop_met
from r2i.runlock import RunLock
from r2i.sweep import Run, needs_more_steps, newest_checkpoint, run_config, run_key, success_key


@dataclass(frozen=True)
class RunStatus:
    name: str  # suite/setting/model/seed<k>
    state: str  # see the module docstring
    env_steps: int | None  # the newest env step known: last metrics record, or the checkpoint's
    budget: int  # run.steps with the sweep's arguments
    last_eval: tuple[int, float] | None  # (env step, success) of the newest evaluation
    best_eval: tuple[int, float] | None  # the best evaluation so far (the earliest of equals)
    recorded: float | None  # the success in the CSV row, if the run has one
    note: str = ""  # the training's pid, or the archive a packed run resumes from
    env_steps_per_s: float | None = None  # a training's rate in its newest interval with updates (→ time to budget)


def _evaluations(records: list[dict], key: str) -> list[tuple[int, float]]:
    return [(int(r["step"]), float(r[key])) for r in records if key in r]


def _paused(pid) -> bool:
    """Whether local process `pid` is stopped (SIGSTOP; Linux's /proc; False where that cannot be read)."""
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError, TypeError):
        return False
    return stat.rpartition(")")[2].split()[0] in ("T", "t")


def _last_rate(records: list[dict]) -> float | None:
    """The env steps per second of the newest logged interval that made updates (None before the first).

    Before its first update a run only steps its envs (the prefill, then until every env's stream holds a window:
    8,192 env steps for windows of 2,048 in 4 envs), hundreds of times faster than it will train, so such an
    interval's rate would promise the budget in minutes. Records without `progress/updates` (older runs) count as
    having trained."""
    rate, updates = None, 0
    for record in records:
        now = record.get("progress/updates")
        if "fps/env_steps_per_s" in record and (now is None or now > updates):
            rate = float(record["fps/env_steps_per_s"])
        updates = now if now is not None else updates
    return rate


def _archived(archive: Path) -> tuple[list[dict], int | None]:
    """The metrics records and the checkpoint's env step of a packed run (([], None) if the archive is unreadable)."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            names = tar.getnames()
            member = tar.extractfile(METRICS_FILE) if METRICS_FILE in names else None
            records = parse_records(member.read().decode()) if member else []
    except (OSError, tarfile.TarError, EOFError, zlib.error, KeyError):
        return [], None
    steps = [int(n.rsplit("_", 1)[1]) for n in names if n.startswith("checkpoints/ckpt_") and n.count("/") == 1]
    return records, max(steps, default=None)


def _solved_in(checkpoint: Path, run_cfg) -> bool:
    """Whether the checkpoint's counters hold an evaluation round that met `run.stop_at_success`: the run was stopped
    between its solving round and its final evaluation, which its resume runs (r2i.loop, `Trainer.solved`)."""
    try:
        counters = json.loads((checkpoint / "meta.json").read_text()).get("counters", {})
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(counters, dict) and stop_met(run_cfg, counter_scores(counters))


def run_status(run: Run, root: Path, preset: str, carry: Path | None = None, recorded: float | None = None
               ) -> RunStatus:
    logdir = run.logdir(root)
    name = f"{run.suite}/{run.setting}/{run.model}/seed{run.seed}"
    budget = run_config(run, preset).run.steps
    records = MetricsLogger.read(logdir) if (logdir / METRICS_FILE).exists() else []
    checkpoint = newest_checkpoint(logdir)
    steps = int(records[-1]["step"]) if records else None
    note = ""
    holder = RunLock.held(logdir) if logdir.is_dir() else None
    rate = None
    if holder is not None:
        state, note = "training", f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}"
        rate = _last_rate(records)
        if holder.get("host") == socket.gethostname() and _paused(holder.get("pid")):
            state, rate = "training (paused)", None
        elif rate and steps is not None:
            note += f"; {rate:.1f} env steps/s, {max(0, budget - steps) / rate / 3600:.1f} h to the budget"
        elif steps is not None:
            note += "; no update yet (filling its first windows)"
    elif (logdir / RESULT_FILE).exists():
        try:
            result = json.loads((logdir / RESULT_FILE).read_text())
        except (OSError, ValueError):
            result = {}  # unreadable: reported as finished, like a result that does not say whether it solved
        steps = result.get("env_steps", steps) if isinstance(result, dict) else steps
        result = result if isinstance(result, dict) else {}
        solved = result.get("solved")
        state = ("to train on" if needs_more_steps(run, root, preset)
                 else "finished" if solved is None else "solved" if solved else "unsolved")
    elif checkpoint is not None:
        state = "stopped (solved)" if _solved_in(checkpoint, run_config(run, preset).run) else "stopped"
        steps = steps if steps is not None else int(checkpoint.name.rsplit("_", 1)[1])
    elif carry is not None and run.archive(carry).exists():
        state, note = "packed", str(run.archive(carry))
        records, steps = _archived(run.archive(carry))
    elif recorded is not None:
        state = "recorded"  # its row is in the CSV, its run directory is on another machine
    else:
        state = "not started"
    evals = _evaluations(records, success_key(run.suite))
    best = max(evals, key=lambda e: (e[1], -e[0]), default=None)
    return RunStatus(name, state, steps, budget, evals[-1] if evals else None, best, recorded, note, rate)


def status(runs: list[Run], root: Path, preset: str, csv_path: Path, carry: Path | None = None) -> list[RunStatus]:
    """Every planned run's status, in the plan's order."""
    rows = {}
    if csv_path.exists():
        with open(csv_path) as f:
            rows = {run_key(r): float(r["success"]) for r in csv.DictReader(f)}
    return [run_status(run, root, preset, carry, rows.get(run.key))
            for run in runs]


def format_table(statuses: list[RunStatus]) -> str:
    def at(evaluation):
        return "-" if evaluation is None else f"{evaluation[1]:.2f} at {evaluation[0]:,}"

    header = ("run", "state", "env steps / budget", "last eval", "best eval", "CSV", "")
    table = [header] + [
        (s.name, s.state, f"{'-' if s.env_steps is None else f'{s.env_steps:,}'} / {s.budget:,}", at(s.last_eval),
         at(s.best_eval), "-" if s.recorded is None else f"{s.recorded:g}", s.note)
        for s in statuses
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in table)
