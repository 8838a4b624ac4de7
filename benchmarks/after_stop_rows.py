"""Rows of a solved run trained on past its stop: one per evaluation round after the stop, appended to a CSV.

    r2i train --logdir COPY --steps N --force run.stop_at_success=0     # a copy of the solved run's directory
    python benchmarks/after_stop_rows.py COPY --stopped-at 134004 --setting 512 --model s3m --seed 1 \
        --commit d4033498eb --overrides "..." --csv benchmarks/results/memory_len_512_after_stop_tr128.csv

Each row: the round's env step, its greedy success, the training episodes' recent success logged at that step
(`episode/success_recent`), the commit of the code that trained on, and the overrides of the continued run. Rounds
already in the CSV for that (setting, model, seed, stopped_at) are skipped, so it can be run again as the run goes on.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from r2i.results_csv import append_row

COLUMNS = ("suite", "setting", "model", "seed", "stopped_at", "env_steps", "success", "train_success_recent", "commit",
           "overrides")


def rounds(logdir: Path, stopped_at: int) -> list[tuple[int, float, float | None]]:
    """(env step, eval/success, episode/success_recent at that step) of every evaluation round after `stopped_at`."""
    recent, success = {}, {}
    for line in (logdir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line) if line.strip() else {}
        if "episode/success_recent" in record:
            recent[record["step"]] = record["episode/success_recent"]
        # The loop's round only: `r2i train` ends with a final evaluation logged at the same step.
        if "eval/success" in record and record["step"] > stopped_at:
            success.setdefault(record["step"], record["eval/success"])
    return [(step, value, recent.get(step)) for step, value in success.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("logdir", type=Path)
    parser.add_argument("--stopped-at", type=int, required=True, help="env step of the solve")
    parser.add_argument("--suite", default="memory_len")
    parser.add_argument("--setting", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--seed", required=True)
    parser.add_argument("--commit", required=True, help="commit of the code that trained on past the stop")
    parser.add_argument("--overrides", required=True, help="the continued run's settings")
    parser.add_argument("--csv", type=Path, required=True)
    args = parser.parse_args()
    fixed = dict(suite=args.suite, setting=args.setting, model=args.model, seed=args.seed, stopped_at=args.stopped_at,
                 commit=args.commit, overrides=args.overrides)
    written = sum(
        append_row(args.csv, {**fixed, "env_steps": step, "success": round(success, 2),
                              "train_success_recent": "" if recent is None else round(recent, 2)},
                   COLUMNS, key=lambda row: tuple(str(row[c]) for c in COLUMNS[:6]))
        for step, success, recent in rounds(args.logdir, args.stopped_at))
    print(f"{written} rows appended to {args.csv}")


if __name__ == "__main__":
    main()
