"""`r2i bench solve`: time to a solved task, per seed — the figure a user of `r2i train` waits for.

Each seed runs `r2i train` as its own process (a fresh run directory, the persistent compilation cache on, as a user
gets it) with evaluation every `eval_every` env steps and `run.stop_at_success`, so the run ends at the first
evaluation round that reaches the threshold — or, with `to_budget`, to the preset's `run.steps` without stopping, so the
same runs also give the whole run's wall clock and its final success. One JSON line per seed:

    {"bench": "solve", "seed": 0, "solved": true, "env_steps_to_success": 7004, "wall_s_to_success": 212.4,
     "wall_s": 214.0, "final_success": 1.0, "updates": 2503, "cpu_user_s": ..., "cpu_system_s": ..., ...}

`wall_s_to_success` counts from the command's start (imports, compilation, prefill and evaluations included) to the
evaluation line that reached the threshold, read from the run's `metrics.jsonl`. Then a summary line with the median
and the number of seeds solved (with `to_budget` also the whole run's median and maximum wall clock and the
number of seeds whose final evaluation is at the threshold). Seeds run one after another unless `jobs` > 1 (which
shares the CPU between runs, so their wall clocks are not comparable with a run alone).

With `csv_path`, each finished seed also appends a row (`CSV_COLUMNS`) with the overrides and the git commit of the code
it was trained with (e.g. `benchmarks/results/default_seeds.csv`).
"""

from __future__ import annotations

import concurrent.futures
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from r2i.bench.common import emit
from r2i.results_csv import append_row
from r2i.runtime import device_description, source_commit
from r2i.signals import ChildProcesses, StopRequested
from r2i.threads import per_job

CSV_COLUMNS = ("preset", "overrides", "seed", "solved", "env_steps_to_success", "env_steps", "final_success",
               "eval_episodes", "commit", "wall_s_to_success", "jobs", "wall_s", "to_budget")


def _children_cpu() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime, usage.ru_stime


def run_seed(seed: int, root: Path, preset: str, threshold: float, eval_every: int, extra: list[str],
             runner=subprocess.run, to_budget: bool = False) -> dict:
    """Train one seed to `threshold` (or to the preset's `run.steps`; always there with `to_budget`) and read back
    when it got there."""
    logdir = root / f"seed{seed}"
    if logdir.exists():
        from r2i.errors import ConfigError

        raise ConfigError(f"{logdir} exists; `r2i bench solve` times fresh runs only — pass another --root")
    cmd = [sys.executable, "-m", "r2i.cli", "train", "--preset", preset, "--seed", str(seed), "--logdir", str(logdir),
           "--quiet", f"run.eval_every={eval_every}", *([] if to_budget else [f"run.stop_at_success={threshold}"]),
           *extra]
    start = time.time()
    proc = runner(cmd, capture_output=True, text=True)
    wall = time.time() - start
    if proc.returncode:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"bench": "solve", "seed": seed, "error": tail, "returncode": proc.returncode}
    return {"bench": "solve", "seed": seed, "preset": preset, "wall_s": round(wall, 1),
            **read_run(logdir, start, threshold)}


def read_run(logdir: Path, start: float, threshold: float) -> dict:
    """When a finished run first reached `threshold` eval/success: env steps, and seconds since `start` (unix time)."""
    evals = []
    with open(logdir / "metrics.jsonl") as f:
        for line in f:
            row = json.loads(line)
            if "eval/success" in row:
                evals.append(row)
    first = next((r for r in evals if r["eval/success"] >= threshold), None)
    result = json.loads((logdir / "result.json").read_text())
    episodes = next((int(r["eval/episodes"]) for r in reversed(evals) if "eval/episodes" in r), None)
    return {
        "solved": first is not None,
        "env_steps_to_success": first["step"] if first else None,
        "wall_s_to_success": round(first["time"] - start, 1) if first else None,
        "final_success": evals[-1]["eval/success"] if evals else None,
        "eval_episodes": episodes, "evals": [[r["step"], round(r["eval/success"], 3)] for r in evals],
        "updates": result.get("updates"), "env_steps": result.get("env_steps"), "logdir": str(logdir),
    }


def run(seeds: list[int], root: Path, preset: str, threshold: float, eval_every: int, jobs: int,
        extra: list[str], csv_path: Path | None = None, to_budget: bool = False) -> list[dict]:
    root.mkdir(parents=True, exist_ok=True)
    commit = source_commit()  # the seeds' trainings import the same code
    env_note = {"device": device_description(), "jobs": jobs, "threshold": threshold, "eval_every": eval_every,
                "overrides": extra, "to_budget": to_budget}
    cpu0 = _children_cpu()
    # A SIGINT / SIGTERM reaches the seeds' trainings (they checkpoint and exit); the seeds done so far are printed.
    with ChildProcesses() as children, concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(run_seed, s, root, preset, threshold, eval_every, [*per_job(jobs, extra), *extra],
                               children.run, to_budget=to_budget) for s in seeds]
        results = []
        for future in futures:  # in seed order
            try:
                record = {**future.result(), **env_note}
            except StopRequested:
                continue
            emit(record)
            results.append(record)
            if csv_path is not None and "error" not in record:
                append_row(csv_path, {**record, "overrides": " ".join(extra), "commit": commit}, CSV_COLUMNS)
    if children.requested:
        raise StopRequested(children.signum)
    cpu1 = _children_cpu()
    done = [r for r in results if "error" not in r]
    times = [r["wall_s_to_success"] for r in done if r["solved"]]
    emit({
        "bench": "solve", "summary": True, "preset": preset, "seeds": len(seeds), "solved": len(times),
        "median_wall_s_to_success": round(float(np.median(times)), 1) if times else None,
        "max_wall_s_to_success": max(times) if times else None,
        "median_env_steps_to_success": float(np.median([r["env_steps_to_success"] for r in done if r["solved"]]))
        if times else None,
        **({"median_wall_s": round(float(np.median([r["wall_s"] for r in done])), 1),
            "max_wall_s": max(r["wall_s"] for r in done),
            "final_at_threshold": sum(r["final_success"] is not None and r["final_success"] >= threshold for r in done)}
           if to_budget and done else {}),
        "cpu_user_s": round(cpu1[0] - cpu0[0], 1), "cpu_system_s": round(cpu1[1] - cpu0[1], 1),
        "system_fraction": round((cpu1[1] - cpu0[1]) / max(1e-9, (cpu1[0] - cpu0[0]) + (cpu1[1] - cpu0[1])), 4),
        **env_note,
    })
    return results


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use `r2i bench solve`")
