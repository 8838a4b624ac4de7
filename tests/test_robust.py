"""Nothing lost, nothing silent (issue 12): logs that match the checkpoint, a finished run that stays finished, a
damaged newest checkpoint, the Policy API's checks, and the small user-facing fixes (summary, exit codes,
--print-config, plot markers, check-env's baseline, doctor's overrides). The run lock's own test: test_runlock.py.

One tiny run (the same tiny agent as test_run.py, so its compiled programs come from the shared cache) is trained,
resumed and then only read by the tests that need it.
"""

from __future__ import annotations

import json
import shutil
import signal
import struct
from pathlib import Path

import numpy as np
import pytest
from test_run import tiny_config

import r2i
from r2i import cli
from r2i.checkpoint import Checkpointer
from r2i.errors import ConfigError
from r2i.metrics import MetricsLogger
from r2i.run import Trainer, format_result, train


def _records(logdir: Path) -> list[dict]:
    return [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run trained to 40 env steps (checkpoint), then — after a 'killed process' logged past that checkpoint —
    resumed to 56 (second checkpoint)."""
    logdir = tmp_path_factory.mktemp("robust") / "run"
    first = train(tiny_config(logdir, **{"run.steps": 40}), quiet=True)
    assert first["updates"] > 0 and (logdir / "result.json").exists()
    with open(logdir / "metrics.jsonl", "a") as f:  # what a process killed after its checkpoint had logged
        f.write(json.dumps({"step": 44, "time": 0.0, "progress/updates": 999}) + "\n")
        f.write('{"step": 48, "time": 0.0, "progress/upd')  # torn last line
    second = train(tiny_config(logdir, **{"run.steps": 56}), quiet=True)
    assert second["env_steps"] == 56 and not second.get("finished_before")
    return logdir


def test_resumed_logs_continue_from_the_checkpoint_exactly_once(run_dir):
    records = _records(run_dir)
    assert all(r.get("progress/updates") != 999 for r in records)
    for key in {k for r in records for k in r} - {"step", "time"}:
        steps = [r["step"] for r in records if key in r]
        assert steps == sorted(set(steps)), (key, steps)  # every key: steps strictly increasing
    assert max(r["step"] for r in records) == 56
    # The resumed session's TensorBoard file starts with a purge marker at the checkpoint's step + 1.
    starts = [e for path in sorted((run_dir / "tb").iterdir()) for e in _tb_events(path) if e.HasField("session_log")]
    assert [(e.step, e.session_log.status) for e in starts] == [(41, 1)]


def _tb_events(path: Path):
    from tensorboardX.proto import event_pb2

    data, offset = path.read_bytes(), 0
    while offset < len(data):  # TFRecord: u64 length, u32 crc, payload, u32 crc
        (length,) = struct.unpack("<Q", data[offset : offset + 8])
        event = event_pb2.Event()
        event.ParseFromString(data[offset + 12 : offset + 12 + length])
        yield event
        offset += 16 + length


def test_rerunning_a_finished_run_says_so_and_changes_nothing(run_dir):
    before = (run_dir / "metrics.jsonl").read_bytes()
    again = train(tiny_config(run_dir, **{"run.steps": 56}), quiet=True)
    assert again["finished_before"] and again["env_steps"] == 56
    assert (run_dir / "metrics.jsonl").read_bytes() == before
    summary = format_result(again, run_dir)
    assert "already finished (56 env steps)" in summary.splitlines()[0]


def test_summary_is_a_few_labelled_lines():
    result = {"env_steps": 12004, "updates": 5002, "wall_s": 990.0, "eval/episodes": 32.0, "eval/return": 0.94,
              "eval/success": 0.97, "eval/length": 11.0, "episode/return": 0.9, "stopped_early": False}
    lines = format_result(result, "runs/x").splitlines()
    assert lines[0] == "r2i: finished" and len(lines) <= 6 and all(len(line) < 120 for line in lines)
    assert "12,004 env steps, 5,002 updates, 16.5 min" in lines[1]
    assert "32 episodes: return 0.94, success 0.97" in lines[2]
    no_updates = format_result({"env_steps": 8, "updates": 0, "stopped_early": True}, "runs/x")
    assert "WARNING" in no_updates and "untrained" in no_updates


def test_damaged_newest_checkpoint_load_and_eval_fall_back(run_dir, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    ckpt = Checkpointer(copy / "checkpoints")
    assert ckpt.steps() == [40, 56]
    state_file = max((p for p in (ckpt.path(56) / "state").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    state_file.write_bytes(state_file.read_bytes()[:10])  # truncated
    trainer = Trainer(tiny_config(copy, **{"run.steps": 56}), quiet=True)  # train resumes from the intact one …
    try:
        assert trainer.resumed and trainer.counters.env_steps == 40
        assert max(r["step"] for r in _records(copy)) <= 40  # … and its logs continue from there
    finally:
        trainer.close()
    assert "ckpt_0000000056 is damaged" in capsys.readouterr().err
    for step in (40, 56):  # eval and load never need the replay
        shutil.rmtree(ckpt.path(step) / "replay")
    policy = r2i.load(copy)
    err = capsys.readouterr().err
    assert "ckpt_0000000056 is damaged" in err and "newest intact checkpoint, ckpt_0000000040" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 2
    assert policy.initial(2)["a"].shape[0] == 2


def test_policy_act_checks_its_input(run_dir):
    policy = r2i.load(run_dir)
    carry = policy.initial(3)
    good = {"vector": np.zeros((3, 4), np.float32), "is_first": np.ones(3, bool)}
    _, action = policy.act(carry, good)
    assert action.shape == (3, 2)
    assert policy.env_actions(action) == [int(np.argmax(a)) for a in action]  # r2i env: indices
    bad = [
        ({"is_first": good["is_first"]}, "obs lacks 'vector'"),
        ({**good, "vector": np.zeros((3, 5), np.float32)}, "obs['vector'] has shape (3, 5), expected (N, 4)"),
        ({"vector": np.zeros(4, np.float32), "is_first": np.ones(1, bool)}, "without the batch axis"),
        ({**good, "vector": np.zeros((2, 4), np.float32)}, "holds 2 environments but the carry 3"),
        ({**good, "vector": np.full((3, 4), np.nan, np.float32)}, "obs['vector'] contains NaN"),
        ({**good, "is_first": np.ones(3, np.float32)}, "obs['is_first'] must be bool"),
        ([1, 2], "obs must be a dict"),
    ]
    for obs, message in bad:
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
            policy.act(carry, obs)
    with pytest.raises(ConfigError, match="arguments are swapped"):
        policy.act(good, carry)  # the order before (carry, out) became the convention
    with pytest.raises(ConfigError, match="batch_size must be a positive int"):
        policy.initial(0)


def test_env_actions_are_what_gymnasium_accepts():
    """The README's API example: a Discrete Gymnasium env gets a Python int, not array([0])."""
    import gymnasium

    from r2i.api import _native_decoder
    from r2i.envs import make_env

    env = make_env("gym:CartPole-v1", 0)
    decode = _native_decoder(env)
    env.close()
    native = decode(np.array([0.0, 1.0], np.float32))
    assert native == 1 and isinstance(native, int)
    gym_env = gymnasium.make("CartPole-v1")
    gym_env.reset(seed=0)
    assert gym_env.action_space.contains(native)
    gym_env.step(native)
    gym_env.close()


def test_metrics_rollback_without_a_recorded_size(tmp_path):
    with MetricsLogger(tmp_path, tensorboard=False) as log:
        for step in (0, 4, 8, 12):
            log.write(step, {"x": step})
    with MetricsLogger(tmp_path, tensorboard=False, rollback_to=4) as log:
        log.write(8, {"x": 80})
    assert [(r["step"], r["x"]) for r in MetricsLogger.read(tmp_path, dedupe=False)] == [(0, 0), (4, 4), (8, 80)]


def test_sigterm_exits_143_and_sigint_130(monkeypatch, tmp_path, capsys):
    import r2i.run

    for signum, code in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
        fake = {"stopped_early": True, "signal": int(signum), "env_steps": 8, "updates": 0}
        monkeypatch.setattr(r2i.run, "train", lambda *a, _fake=fake, **k: _fake)
        assert cli.main(["train", "--logdir", str(tmp_path / "run"), "--quiet"]) == code
        assert "run the same command again to resume" in capsys.readouterr().err


def test_print_config_shows_the_resolved_config(capsys, tmp_path):
    import yaml

    code = cli.main(["train", "--preset", "bsuite_cpu", "--print-config", "--logdir", str(tmp_path / "r"),
                     "run.steps=5000"])
    config = yaml.safe_load(capsys.readouterr().out)
    assert code == 0 and config["env"]["id"] == "bsuite:memory_len/0" and config["run"]["steps"] == 5000
    assert not (tmp_path / "r").exists()


def test_one_point_eval_curve_is_drawn_with_a_marker(tmp_path, monkeypatch):
    import matplotlib.axes

    from r2i.plot import plot_runs

    with MetricsLogger(tmp_path / "run", tensorboard=False) as log:
        log.write(100, {"eval/return": 1.0})
    calls = []
    real = matplotlib.axes.Axes.plot
    monkeypatch.setattr(matplotlib.axes.Axes, "plot", lambda self, *a, **k: calls.append(k) or real(self, *a, **k))
    plot_runs([tmp_path / "run"], tmp_path / "c.png", keys=["eval/return"])
    assert calls and calls[0]["marker"] == "o"


def test_check_env_random_baseline_is_not_seeded_like_the_env(capsys):
    """The random actions of check-env used the env's seed, so r2i:repeat_previous "solved" itself (return +1)."""
    assert cli.main(["check-env", "r2i:repeat_previous/0", "--episodes", "3"]) == 0
    out = capsys.readouterr().out
    mean = float(out.split("mean return ")[1].split()[0])
    assert mean < 0.5, out


def test_doctor_takes_train_overrides(capsys):
    assert cli.main(["doctor", "replay.capacity=10000000000000", "run.steps=10000000000000"]) == 0
    out = capsys.readouterr().out
    assert "replay 10,000,000,000,000 steps" in out and "NOT enough for the replay" in out
    # A run stores at most run.steps env steps: doctor sizes the replay as `r2i train`'s own check does.
    assert cli.main(["doctor", "replay.capacity=10000000000000", "run.steps=12000"]) == 0
    out = capsys.readouterr().out
    assert "replay 12,000 steps (run.steps; replay.capacity 10,000,000,000,000)" in out, out
    assert "NOT enough" not in out, out


def test_progress_bar_says_compiling_and_times_training_from_its_start(capsys, monkeypatch):
    from r2i import console
    from r2i.run import Counters, _Progress

    now = [1000.0]  # a clock the test moves: the rate below must not depend on how long the test itself takes
    monkeypatch.setattr(console.time, "monotonic", lambda: now[0])
    counters = Counters()
    bar = _Progress(100, counters, enabled=True)
    assert bar.bar.desc == "prefill"
    counters.env_steps = 40
    bar.update(counters)
    bar.compiling()
    assert "compiling" in bar.bar.desc
    counters.env_steps, counters.updates = 44, 2
    bar.update(counters)
    # A fresh bar from the first update: its rate (and ETA) exclude the fast random-action prefill.
    assert bar.bar.desc == "train" and bar.bar.format_dict["initial"] == 44 and bar.bar.n == 44
    now[0] += 2.0  # two seconds of training later
    counters.env_steps, counters.updates = 48, 6
    bar.update(counters)
    assert "upd/s 2" in bar.bar.postfix  # 4 updates in 2 s
    bar.close()


def test_doctor_reports_an_env_it_cannot_build():
    from r2i import doctor

    text = doctor.report("default", overrides={"env.id": "atari:NoSuchGame"})
    assert "cannot build env atari:NoSuchGame" in text and "disk free at" in text


def test_a_moved_run_directory_loads_with_its_new_place_as_logdir(tmp_path):
    from r2i.config import make_config
    from r2i.rundir import load_config, write_config

    config = make_config("tiny", {"logdir": str(tmp_path / "old")})
    (tmp_path / "old").mkdir()
    write_config(config)
    (tmp_path / "old").rename(tmp_path / "new")
    assert load_config(tmp_path / "new").logdir == str(tmp_path / "new")
