"""`r2i sweep`'s bookkeeping: the runs it plans, the CSV it keeps (no run recorded twice), skipping finished runs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from r2i import sweep as sw
from r2i.envs.bsuite_env import discounting_chain_delay
from r2i.errors import ConfigError


def _overrides(run: sw.Run) -> dict[str, str]:
    return dict(o.split("=", 1) for o in run.overrides)


def test_plan_memory_len_windows_hold_an_episode_at_constant_tokens():
    for length in (5, 30, 50, 100, 510):
        (run,) = sw.plan("memory_len", [str(length)], ["s3m"], [0], [])
        o = _overrides(run)
        batch_length, batch_size = int(o["run.batch_length"]), int(o["run.batch_size"])
        assert batch_length >= 2 * (length + 2) and batch_length * batch_size == 1024
        assert o["env.options"] == f"{{memory_length: {length}}}" and o["model.sequence"] == "s3m"
        assert int(o["run.steps"]) == 10_000 + 400 * length


def test_plan_memory_len_budget_buys_the_same_updates_per_memory_step_past_batch_1():
    """Past N = 510 a window outgrows B·L = 1,024 at batch 1: the budget grows with B·L so that env steps × ratio /
    (B·L), the updates it buys, stays (10,000 + 400·N) × ratio / 1,024 as below."""
    for length in (511, 1024, 2000):
        (run,) = sw.plan("memory_len", [str(length)], ["s3m"], [0], [])
        o = _overrides(run)
        batch_length, batch_size = int(o["run.batch_length"]), int(o["run.batch_size"])
        assert batch_size == 1 and batch_length >= 2 * (length + 2)
        assert int(o["run.steps"]) / (batch_size * batch_length) == (10_000 + 400 * length) / 1024
    (run,) = sw.plan("memory_len", ["1024"], ["s3m"], [0], [])
    assert _overrides(run)["run.steps"] == "1678400"  # 4 × 419,600: windows of 4,096


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


def test_rows_record_the_commits_a_run_was_trained_with(tmp_path, monkeypatch):
    """A run resumed under newer code lists both commits; a finished run read back keeps what it recorded."""
    root, path = tmp_path / "runs", tmp_path / "memory_len.csv"
    (run,) = sw.plan("memory_len", ["10"], ["s3m"], [0], [])
    logdir = run.logdir(root)
    commits = iter(["aaaa", "aaaa", "bbbb+dirty"])
    monkeypatch.setattr(sw, "source_commit", lambda: next(commits))

    def fake_train(cmd, stdout, stderr, env):  # three sessions: two are killed (SIGTERM), the last one finishes
        if next(sessions):
            (logdir / "result.json").write_text(json.dumps({"env_steps": 6004, "eval/success": 1.0, "wall_s": 9.0}))
            return type("Done", (), {"returncode": 0})()
        return type("Killed", (), {"returncode": -15})()

    sessions = iter([False, False, True])
    monkeypatch.setattr(sw.subprocess, "run", fake_train)
    for _ in range(2):
        with pytest.raises(sw.RunFailedError):
            sw.execute(run, root, "bsuite_cpu", {})
    sw.execute(run, root, "bsuite_cpu", {})
    assert sw.run_commits(logdir) == ["aaaa", "bbbb+dirty"]
    sw.sweep("memory_len", ["10"], ["s3m"], [0], preset="bsuite_cpu", root=root, csv_path=path,
             extra=["behavior.entropy=0.01"])
    (row,) = csv.DictReader(open(path))
    assert row["commit"] == "aaaa+bbbb+dirty"
    assert row["overrides"] == "behavior.entropy=0.01"  # the variant the row measured


def test_a_larger_budget_trains_an_unsolved_run_on_and_replaces_its_row(tmp_path, monkeypatch):
    """`run.steps=…` above a recorded run's budget: the unsolved run is trained on from its directory and its row
    replaced; the solved one, and a second sweep with the same budget, train nothing."""
    root, path = tmp_path / "runs", tmp_path / "memory_len.csv"
    monkeypatch.setattr(sw, "source_commit", lambda: "aaaa")
    for run, solved in zip(sw.plan("memory_len", ["10"], ["s3m", "gru"], [0], []), (False, True), strict=True):
        run.logdir(root).mkdir(parents=True)
        result = {"env_steps": 14000 if not solved else 6004, "eval/success": 0.5 if not solved else 1.0,
                  "wall_s": 60.0, "solved": solved}
        (run.logdir(root) / "result.json").write_text(json.dumps(result))
    sw.sweep("memory_len", ["10"], ["s3m", "gru"], [0], preset="bsuite_cpu", root=root, csv_path=path)
    trained = []

    def fake_train(_children, cmd, stdout, stderr, env):
        trained.append(cmd)
        logdir = Path(cmd[cmd.index("--logdir") + 1])
        (logdir / "result.json").write_text(json.dumps(
            {"env_steps": 18004, "eval/success": 0.96, "wall_s": 90.0, "solved": True}))
        return type("Done", (), {"returncode": 0})()

    def stopped_train(_children, cmd, stdout, stderr, env):  # the first session is stopped: no result, a checkpoint
        logdir = Path(cmd[cmd.index("--logdir") + 1])
        (logdir / "result.json").unlink()
        _fake_run_dir(logdir, [15000])
        return type("Stopped", (), {"returncode": 143})()

    monkeypatch.setattr(sw.ChildProcesses, "run", stopped_train)
    with pytest.raises(sw.RunStoppedError):
        sw.sweep("memory_len", ["10"], ["s3m", "gru"], [0], preset="bsuite_cpu", root=root, csv_path=path,
                 extra=["run.steps=20000"])
    monkeypatch.setattr(sw.ChildProcesses, "run", fake_train)
    for _ in range(2):  # the next session trains it on (the row is still the old one), the one after has nothing to do
        sw.sweep("memory_len", ["10"], ["s3m", "gru"], [0], preset="bsuite_cpu", root=root, csv_path=path,
                 extra=["run.steps=20000", "run.cpu_threads=1"])  # the thread count is not written to the row
    assert len(trained) == 1 and "model.sequence=s3m" in trained[0] and trained[0][-2:] == [
        "run.steps=20000", "run.cpu_threads=1"]
    rows = list(csv.DictReader(open(path)))
    assert [(r["model"], r["env_steps"], r["success"], r["overrides"]) for r in rows] == [
        ("s3m", "18004", "0.96", "run.steps=20000"), ("gru", "6004", "1.0", "")]


def test_a_run_trained_on_by_a_larger_budget_is_left_to_it_by_the_smaller_one(tmp_path, monkeypatch):
    """Two sweeps share a root: one at the suite's budget (its row: unsolved at 14,000), one with `run.steps=20000`
    training the same run on. While that is under way (a checkpoint past 14,000, no result), the first sweep must not
    take the run for one of its own stopped trainings: it trains nothing and keeps its row."""
    root, small, large = tmp_path / "runs", tmp_path / "budget.csv", tmp_path / "longer.csv"
    monkeypatch.setattr(sw, "source_commit", lambda: "aaaa")
    (run,) = sw.plan("memory_len", ["10"], ["s3m"], [0], [])
    logdir = run.logdir(root)
    logdir.mkdir(parents=True)
    (logdir / "result.json").write_text(json.dumps({"env_steps": 14000, "eval/success": 0.5, "solved": False}))
    sw.sweep("memory_len", ["10"], ["s3m"], [0], preset="bsuite_cpu", root=root, csv_path=small)
    (logdir / "result.json").unlink()  # the longer sweep's training, stopped at 16,000
    _fake_run_dir(logdir, [14000, 16000])
    trained = []

    def fake_train(_children, cmd, stdout, stderr, env):
        trained.append(cmd)
        (logdir / "result.json").write_text(json.dumps({"env_steps": 20000, "eval/success": 0.5, "solved": False}))
        return type("Done", (), {"returncode": 0})()

    monkeypatch.setattr(sw.ChildProcesses, "run", fake_train)
    assert not sw.needs_more_steps(run, root, "bsuite_cpu")
    assert sw.sweep("memory_len", ["10"], ["s3m"], [0], preset="bsuite_cpu", root=root, csv_path=small) == []
    assert trained == [] and [r["env_steps"] for r in csv.DictReader(open(small))] == ["14000"]
    sw.sweep("memory_len", ["10"], ["s3m"], [0], preset="bsuite_cpu", root=root, csv_path=large,
             extra=["run.steps=20000"])
    assert len(trained) == 1 and [r["env_steps"] for r in csv.DictReader(open(large))] == ["20000"]


def test_pack_leaves_a_run_trained_on_by_a_larger_budget_to_that_sweep_s_carry(tmp_path):
    """The smaller sweep records the run; the larger one trains it on (a checkpoint past the small budget, no result):
    only the larger sweep's pack archives it, and the smaller one drops an archive it had packed before."""
    root, small, large, csv_path = tmp_path / "runs", tmp_path / "small", tmp_path / "large", tmp_path / "budget.csv"
    (run,) = sw.plan("memory_len", ["10"], ["s3m"], [0], [])
    (longer,) = sw.plan("memory_len", ["10"], ["s3m"], [0], ["run.steps=20000"])
    _fake_run_dir(run.logdir(root), [12000])
    (stale,) = sw.pack([run], root, small, "bsuite_cpu", csv_path)  # before the row: its own training, stopped
    sw._append_row(csv_path, dict(suite="memory_len", setting="10", model="s3m", seed=0, env_steps=14000,
                                  success=0.5, wall_s=1.0, commit="aaaa", overrides=""))
    _fake_checkpoints(run.logdir(root), [14000, 16000], first_serial=1)  # the larger sweep's, stopped past 14,000
    assert sw.pack([run], root, small, "bsuite_cpu", csv_path) == [] and not stale.exists()
    (archive,) = sw.pack([longer], root, large, "bsuite_cpu", tmp_path / "longer.csv")
    assert archive.parent == large


@pytest.mark.parametrize("code", [130, 143])
def test_a_training_stopped_by_a_signal_is_stopped_not_failed(tmp_path, monkeypatch, code):
    """`r2i train` exits 130 / 143 after SIGINT / SIGTERM with its checkpoint written: the sweep says the run resumes,
    and records no row; any other non-zero exit is a failure."""
    (run,) = sw.plan("memory_len", ["10"], ["s3m"], [0], [])
    monkeypatch.setattr(sw, "source_commit", lambda: "aaaa")
    monkeypatch.setattr(sw.subprocess, "run", lambda *a, **k: type("Stopped", (), {"returncode": code})())
    with pytest.raises(sw.RunStoppedError, match="same command resumes it"):
        sw.execute(run, tmp_path, "bsuite_cpu", {})
    monkeypatch.setattr(sw.subprocess, "run", lambda *a, **k: type("Crashed", (), {"returncode": 1})())
    with pytest.raises(sw.RunFailedError, match="failed with exit code 1"):
        sw.execute(run, tmp_path, "bsuite_cpu", {})


def test_a_csv_without_the_commit_column_is_upgraded_in_place(tmp_path):
    path = tmp_path / "memory_len.csv"
    path.write_text("suite,setting,model,seed,env_steps,success,wall_s\nmemory_len,30,gru,1,14004,1.0,2566.0\n")
    row = dict(suite="memory_len", setting="30", model="s3m", seed=0, env_steps=100, success=1.0, wall_s=2.0,
               commit="abc")
    assert sw._append_row(path, row)
    rows = list(csv.DictReader(open(path)))
    assert list(rows[0]) == list(sw.COLUMNS)
    assert [(r["model"], r["commit"], r["overrides"]) for r in rows] == [("gru", "", ""), ("s3m", "abc", "")]


def _fake_checkpoints(logdir, steps, first_serial=0):
    """Complete checkpoints at `steps`, written in that order after `first_serial` earlier ones."""
    for serial, step in enumerate(steps, start=first_serial):
        ckpt = logdir / "checkpoints" / f"ckpt_{step:010d}"
        (ckpt / "replay").mkdir(parents=True)
        (ckpt / "checkpoint.json").write_text(json.dumps({"serial": serial, "step": step}))
        (ckpt / "replay" / "data.npy").write_bytes(b"x" * 100)


def _fake_run_dir(logdir, steps):
    """A run directory with complete checkpoints at `steps` (written in that order) and the files a resume reads."""
    _fake_checkpoints(logdir, steps)
    (logdir / "config.yaml").write_text("seed: 0\n")
    (logdir / "metrics.jsonl").write_text('{"step": 1}\n')
    (logdir / "commits.txt").write_text("aaaa\n")
    (logdir / "tb").mkdir()
    (logdir / "tb" / "events").write_text("e")


def test_pack_then_unpack_carries_an_unfinished_run_to_a_fresh_machine(tmp_path):
    here, there, carry = tmp_path / "here", tmp_path / "there", tmp_path / "carry"
    running, finished = sw.plan("memory_len", ["100"], ["s3m", "gru"], [0], [])
    _fake_run_dir(running.logdir(here), [100, 200])
    finished.logdir(here).mkdir(parents=True)
    (finished.logdir(here) / "result.json").write_text("{}")
    finished.archive(carry).parent.mkdir(parents=True)
    finished.archive(carry).write_bytes(b"stale")

    (archive,) = sw.pack([running, finished], here, carry, "bsuite_cpu")
    assert archive == running.archive(carry) and not finished.archive(carry).exists()
    assert not list(carry.glob("*.tmp"))

    assert sw.unpack(running, there, carry)
    restored = running.logdir(there)
    assert sorted(p.name for p in (restored / "checkpoints").iterdir()) == ["ckpt_0000000200"]  # the newest only
    for name in ("config.yaml", "metrics.jsonl", "commits.txt", "tb/events", "checkpoints/ckpt_0000000200/replay/data.npy"):
        assert (restored / name).read_bytes() == (running.logdir(here) / name).read_bytes(), name
    # A run directory with its own checkpoint is newer than any archive: never overwritten.
    assert not sw.unpack(running, here, carry) and not sw.unpack(running, there, carry)
    assert not sw.unpack(finished, there, carry)


def test_a_recorded_run_trained_on_past_its_budget_is_carried_to_a_fresh_machine(tmp_path, monkeypatch):
    """An unsolved run stopped while a larger `run.steps` trains it on keeps its archive (with its result.json); a
    sweep on a fresh machine restores it and trains it on, and its row is replaced. Packed without the larger budget,
    the finished run's archive is dropped."""
    here, there, carry, path = tmp_path / "here", tmp_path / "there", tmp_path / "carry", tmp_path / "memory_len.csv"
    monkeypatch.setattr(sw, "source_commit", lambda: "aaaa")
    (run,) = sw.plan("memory_len", ["10"], ["s3m"], [0], [])
    _fake_run_dir(run.logdir(here), [14000, 15000])
    result = {"env_steps": 14000, "eval/success": 0.5, "wall_s": 60.0, "solved": False}
    (run.logdir(here) / "result.json").write_text(json.dumps(result))
    sw._append_row(path, dict(suite="memory_len", setting="10", model="s3m", seed=0, env_steps=14000, success=0.5,
                              wall_s=60.0, commit="aaaa", overrides=""))
    (longer,) = sw.plan("memory_len", ["10"], ["s3m"], [0], ["run.steps=20000"])
    assert sw.pack([run], here, carry, "bsuite_cpu") == [] and not run.archive(carry).exists()
    (archive,) = sw.pack([longer], here, carry, "bsuite_cpu")
    assert sw.archive_holds_result(archive)
    trained = []

    def fake_train(_children, cmd, stdout, stderr, env):
        logdir = Path(cmd[cmd.index("--logdir") + 1])
        trained.append(sw.newest_checkpoint(logdir).name)
        (logdir / "result.json").write_text(json.dumps(
            {"env_steps": 18004, "eval/success": 0.96, "wall_s": 90.0, "solved": True}))
        return type("Done", (), {"returncode": 0})()

    monkeypatch.setattr(sw.ChildProcesses, "run", fake_train)
    sw.sweep("memory_len", ["10"], ["s3m"], [0], preset="bsuite_cpu", root=there, csv_path=path,
             extra=["run.steps=20000"], carry=carry)
    assert trained == ["ckpt_0000015000"]
    rows = list(csv.DictReader(open(path)))
    assert [(r["env_steps"], r["success"]) for r in rows] == [("18004", "0.96")]
    assert sw.pack([longer], there, carry, "bsuite_cpu") == [] and not archive.exists()  # solved: dropped


def test_pack_takes_a_relative_run_root(tmp_path, monkeypatch):
    """`r2i sweep --pack` run from the repository: the default root benchmarks/runs is a relative path."""
    monkeypatch.chdir(tmp_path)
    (run,) = sw.plan("memory_len", ["100"], ["s3m"], [0], [])
    _fake_run_dir(run.logdir(tmp_path / "here"), [100])
    (archive,) = sw.pack([run], Path("here"), Path("carry"), "bsuite_cpu")
    assert sw.unpack(run, Path("there"), Path("carry")) and archive.exists()
    assert (run.logdir(Path("there")) / "checkpoints" / "ckpt_0000000100" / "replay" / "data.npy").exists()


def test_a_damaged_archive_is_a_one_line_error_and_leaves_no_half_restored_run(tmp_path):
    here, there, carry = tmp_path / "here", tmp_path / "there", tmp_path / "carry"
    (run,) = sw.plan("memory_len", ["100"], ["s3m"], [0], [])
    _fake_run_dir(run.logdir(here), [100])
    (archive,) = sw.pack([run], here, carry, "bsuite_cpu")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])  # a truncated download or copy
    with pytest.raises(ConfigError, match="cannot be unpacked.*git checkout") as error:
        sw.unpack(run, there, carry)
    assert "\n" not in str(error.value) and str(archive) in str(error.value)
    assert sw.newest_checkpoint(run.logdir(there)) is None
    assert not list(there.rglob("*.unpacking"))
    archive.write_bytes(b"not a tar file at all")
    with pytest.raises(ConfigError, match="cannot be unpacked"):
        sw.unpack(run, there, carry)


def test_a_sigterm_to_the_sweep_stops_its_trainings_and_starts_no_more(tmp_path, monkeypatch):
    """`kill <sweep>` reaches the trainings it runs (they checkpoint and exit), starts none of the remaining runs,
    records no row, and ends in StopRequested (the CLI's exit code 143)."""
    import os
    import signal
    import sys
    import threading
    import time

    from test_signals import CHILD

    from r2i.signals import StopRequested

    started = []

    def fake_execute(run, root, preset, env, runner=None):
        marker = tmp_path / f"{run.model}-{run.seed}"
        started.append(marker.name)
        runner([sys.executable, "-c", CHILD, str(marker)])
        return {"env_steps": 1, "eval/success": 1.0}

    def kill_when_ready():
        end = time.time() + 30
        while len(list(tmp_path.glob("*.ready"))) < 2 and time.time() < end:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(sw, "execute", fake_execute)
    threading.Thread(target=kill_when_ready, daemon=True).start()
    csv_path = tmp_path / "memory_len.csv"
    with pytest.raises(StopRequested):
        sw.sweep("memory_len", ["10"], ["s3m", "gru"], [0, 1], preset="bsuite_cpu", root=tmp_path / "runs",
                 csv_path=csv_path, jobs=2)
    assert len(started) == 2 and len(list(tmp_path.glob("*.stopped"))) == 2
    assert not csv_path.exists()
