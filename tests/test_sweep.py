"""`r2i sweep`'s bookkeeping: the runs it plans, the CSV it keeps (no run recorded twice), skipping finished runs."""

from __future__ import annotations

import csv
import json

import pytest

from r2i import sweep as sw
from r2i.envs.bsuite_env import discounting_chain_delay
from r2i.errors import ConfigError


def _overrides(run: sw.Run) -> dict[str, str]:
    return dict(o.split("=", 1) for o in run.overrides)


def test_plan_memory_len_windows_hold_an_episode_at_constant_tokens():
    for length in (5, 30, 50, 100):
        (run,) = sw.plan("memory_len", [str(length)], ["s3m"], [0], [])
        o = _overrides(run)
        batch_length, batch_size = int(o["run.batch_length"]), int(o["run.batch_size"])
        assert batch_length >= 2 * (length + 2) and batch_length * batch_size == 1024
        assert o["env.options"] == f"{{memory_length: {length}}}" and o["model.sequence"] == "s3m"
        assert int(o["run.steps"]) == 10_000 + 400 * length


def test_plan_discounting_chain_maps_each_delay_to_its_bonus_ids():
    for delay in sw.DISCOUNTING_DELAYS:
        ids = {_overrides(r)["env.id"] for r in sw.plan("discounting_chain", [str(delay)], ["gru"], [0, 1, 2], [])}
        assert len(ids) == 3  # a different id (mapping seed) per seed
        assert {discounting_chain_delay(i) for i in ids} == {delay}
    with pytest.raises(ConfigError, match="delays"):
        sw.plan("discounting_chain", ["7"], ["s3m"], [0], [])
    with pytest.raises(ConfigError, match="--suite"):
        sw.plan("memory", ["7"], ["s3m"], [0], [])


def test_append_row_never_records_a_run_twice(tmp_path):
    path = tmp_path / "results" / "memory_len.csv"
    row = dict(suite="memory_len", setting="30", model="s3m", seed=0, env_steps=100, success=1.0, wall_s=2.0)
    assert sw._append_row(path, row)
    assert not sw._append_row(path, {**row, "success": 0.5})
    assert sw._append_row(path, {**row, "seed": 1})
    rows = list(csv.DictReader(open(path)))
    assert [(r["seed"], r["success"]) for r in rows] == [("0", "1.0"), ("1", "1.0")]


def test_sweep_skips_finished_runs_and_rerunning_adds_no_rows(tmp_path):
    """Finished runs (a result.json) are read, not retrained; a second sweep over the same runs writes nothing."""
    root, path = tmp_path / "runs", tmp_path / "memory_len.csv"
    for run in sw.plan("memory_len", ["10"], ["s3m", "gru"], [0], []):
        run.logdir(root).mkdir(parents=True)
        result = {"env_steps": 6004, "eval/success": 0.97, "wall_s": 60.0}
        (run.logdir(root) / "result.json").write_text(json.dumps(result))
    for _ in range(2):
        sw.sweep("memory_len", ["10"], ["s3m", "gru"], [0], preset="bsuite_cpu", root=root, csv_path=path, jobs=2)
    rows = list(csv.DictReader(open(path)))
    assert sorted((r["model"], r["success"], r["env_steps"]) for r in rows) == [
        ("gru", "0.97", "6004"), ("s3m", "0.97", "6004")]
