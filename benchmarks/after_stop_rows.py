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
import csv
import json
from pathlib import Path

COLUMNS = ("suite", "setting", "model", "seed", "stopped_at", "env_steps", "success", "train_success_recent", "commit",
           "overrides")


def rounds(logdir: Path, stopped_at: int) -> list[tuple[int, float, float | None]]:
    """(env step, eval/success, episode/success_recent at that step) of every evaluation round after `stopped_at`."""
    recent, out = {}, []
    for line in (logdir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line) if line.strip() else {}
        if "episode/success_recent" in record:
            recent[record["step"]] = record["episode/success_recent"]
        # The loop's round only: `r2i train` ends with a final evaluation logged at the same step.
        if "eval/success" in record and record["step"] > stopped_at and record["step"] not in {s for s, _ in out}:
            out.append((record["step"], record["eval/success"]))
    return [(step, success, recent.get(step)) for step, success in out]


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
    key = (args.suite, args.setting, args.model, args.seed, str(args.stopped_at))
    seen = set()
    if args.csv.exists():
        with args.csv.open() as f:
            seen = {tuple(r[c] for c in COLUMNS[:5]) + (r["env_steps"],) for r in csv.DictReader(f)}
    new = [(step, success, recent) for step, success, recent in rounds(args.logdir, args.stopped_at)
           if key + (str(step),) not in seen]
    write_header = not args.csv.exists()
    with args.csv.open("a", newline="") as f:
        writer = csv.writer(f)
        if write_header:
            writer.writerow(COLUMNS)
        for step, success, recent in new:
            writer.writerow([*key, step, round(success, 2), "" if recent is None else round(recent, 2), args.commit,
                             args.overrides])
    print(f"{len(new)} rows appended to {args.csv}")


if __name__ == "__main__":
    main()
