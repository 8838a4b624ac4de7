"""`r2i sweep --status`: each run's state, env steps, evaluations and CSV row, read without writing anything."""

from __future__ import annotations

import json

from test_sweep import _fake_run_dir

from r2i import sweep as sw
from r2i.cli import main
from r2i.runlock import RunLock
from r2i.sweep_status import format_table, status


def _metrics(logdir, evals, last_step):
    lines = [json.dumps({"step": s, "eval/success": v}) for s, v in evals]
    lines += [json.dumps({"step": last_step, "loss/model": 1.0, "fps/env_steps_per_s": 5.75}),
              '{"step": 99999, "eval/succ']  # a line cut by a kill
    (logdir / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def test_status_names_every_state_and_reads_the_evaluations(tmp_path, capsys):
    root, carry, csv_path = tmp_path / "runs", tmp_path / "carry", tmp_path / "memory_len.csv"
    extra = ["run.steps=20000"]
    solved, extend, training, stopped, packed, fresh = sw.plan("memory_len", ["10", "12"], ["s3m", "gru"], [0, 1],
                                                                extra)[:6]
    for run, result in ((solved, {"env_steps": 6004, "eval/success": 0.97, "solved": True}),
                        (extend, {"env_steps": 14000, "eval/success": 0.5, "solved": False})):
        run.logdir(root).mkdir(parents=True)
        (run.logdir(root) / "result.json").write_text(json.dumps(result))
        sw._append_row(csv_path, dict(suite=run.suite, setting=run.setting, model=run.model, seed=run.seed,
                                      env_steps=result["env_steps"], success=result["eval/success"], wall_s=1.0))
    for run in (training, stopped, packed):
        _fake_run_dir(run.logdir(root), [3000])
        _metrics(run.logdir(root), [(2004, 0.45), (4004, 0.8), (6004, 0.8), (8004, 0.6)], 8500)
    sw.pack([packed], root, carry, "bsuite_cpu")
    moved = root.parent / "gone"
    packed.logdir(root).rename(moved)

    lock = RunLock(training.logdir(root)).acquire()
    try:
        rows = status([solved, extend, training, stopped, packed, fresh], root, "bsuite_cpu", csv_path, carry)
    finally:
        lock.release()
    assert [r.state for r in rows] == ["solved", "to train on", "training", "stopped", "packed", "not started"]
    assert [r.env_steps for r in rows] == [6004, 14000, 8500, 8500, 3000, None]
    assert {r.budget for r in rows} == {20000}
    assert [r.recorded for r in rows] == [0.97, 0.5, None, None, None, None]
    assert rows[3].last_eval == (8004, 0.6) and rows[3].best_eval == (4004, 0.8)  # the earliest of the best
    assert rows[4].best_eval == (4004, 0.8) and str(carry) in rows[4].note  # read from the archive
    assert "pid" in rows[2].note and "5.8 env steps/s, 0.6 h to the budget" in rows[2].note  # (20,000 − 8,500) / 5.75
    assert rows[2].env_steps_per_s == 5.75 and rows[3].env_steps_per_s is None
    # Looking wrote nothing: the lock file keeps the holder's record, no run directory appeared.
    assert RunLock(training.logdir(root)).holder()["pid"] == lock.holder()["pid"]
    assert not fresh.logdir(root).exists() and not packed.logdir(root).exists()

    table = format_table(rows).splitlines()
    assert len(table) == 7 and table[0].split()[:2] == ["run", "state"]
    assert "0.60 at 8,004" in table[4] and "8,500 / 20,000" in table[4]
    assert main(["sweep", "--status", "--suite", "memory_len", "--settings", "10", "--models", "s3m", "--seeds", "0",
                 "--root", str(root), "--csv", str(csv_path), *extra]) == 0
    assert "memory_len/10/s3m/seed0  solved" in capsys.readouterr().out
    (solved.logdir(root) / "result.json").write_text('{"env_steps": 60')  # cut short: reported, not a traceback
    assert status([solved], root, "bsuite_cpu", csv_path)[0].state == "finished"
    # Stopped after the round that met run.stop_at_success (the checkpoint's counters say so): its resume only evaluates.
    ckpt = stopped.logdir(root) / "checkpoints" / "ckpt_0000003000"
    (ckpt / "meta.json").write_text(json.dumps({"counters": {"env_steps": 3000, "last_eval_score": 0.97}}))
    with_stop = sw.plan("memory_len", [stopped.setting], [stopped.model], [stopped.seed],
                        [*extra, "run.stop_at_success=0.95"])[0]
    assert status([with_stop], root, "bsuite_cpu", csv_path)[0].state == "stopped (solved)"
    assert status([stopped], root, "bsuite_cpu", csv_path)[0].state == "stopped"  # no stop_at_success: trains on
    # A fresh clone: the CSV has the row, the run directory stayed on the machine that trained it.
    assert status([solved], tmp_path / "fresh", "bsuite_cpu", csv_path)[0].state == "recorded"


def test_time_to_budget_ignores_the_intervals_before_the_first_update(tmp_path):
    """A run fills its first windows (4 envs × 2,048 steps at 512) at thousands of env steps/s, then trains at a few:
    the estimate must come from an interval that trained, and say nothing before the first one."""
    run = sw.plan("memory_len", ["10"], ["s3m"], [0], ["run.steps=20000"])[0]
    logdir = run.logdir(tmp_path)
    _fake_run_dir(logdir, [3000])

    def write(records):
        (logdir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

    filling = [{"step": s, "fps/env_steps_per_s": 2000.0, "progress/updates": 0} for s in (1004, 2004, 3004)]
    trained = [{"step": 4004, "fps/env_steps_per_s": 6.0, "progress/updates": 12},
               {"step": 5004, "fps/env_steps_per_s": 4.0, "progress/updates": 20},
               {"step": 5004, "eval/success": 0.5}]
    lock = RunLock(logdir).acquire()
    try:
        write(filling)
        row = status([run], tmp_path, "bsuite_cpu", tmp_path / "none.csv")[0]
        assert row.env_steps_per_s is None and "no update yet" in row.note and "to the budget" not in row.note
        write(filling + trained)
        row = status([run], tmp_path, "bsuite_cpu", tmp_path / "none.csv")[0]
        assert row.env_steps_per_s == 4.0 and "4.0 env steps/s, 1.0 h to the budget" in row.note  # (20,000 − 5,004) / 4
    finally:
        lock.release()
