"""The training system end to end: resume exactness, SIGKILL + resume, the CLI's errors, eval / load / plot / doctor."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from _xla import subprocess_env

import r2i
from r2i import cli
from r2i import config as cfgmod
from r2i.checkpoint import Checkpointer
from r2i.console import format_result
from r2i.run import Trainer, load_config

# The `tiny` preset: the loop's properties do not depend on the model's size, and compiling stays cheap. Without its
# evaluation rounds, which would compile the evaluation policy.
TINY = {"run.eval_every": 0, "run.eval_episodes": 0}


def tiny_config(logdir: Path, **overrides) -> cfgmod.Config:
    return cfgmod.make_config("tiny", {**TINY, "logdir": str(logdir), **overrides})


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_resume_is_exact(tmp_path):
    """Same seed: N env steps straight through, or stopped half-way and resumed, give identical parameters, and keep
    the same snapshots (run.snapshot_every: nothing that trains reads them, and their clock is checkpointed, so a
    resume neither repeats nor skips one)."""
    straight = Trainer(tiny_config(tmp_path / "a", **{"run.steps": 120, "run.snapshot_every": 25}), quiet=True)
    straight.run()
    stopped = Trainer(tiny_config(tmp_path / "b", **{"run.steps": 60, "run.snapshot_every": 25}), quiet=True)
    stopped.run()
    stopped.close()
    resumed = Trainer(tiny_config(tmp_path / "b", **{"run.steps": 120, "run.snapshot_every": 25}), quiet=True)
    assert resumed.resumed and resumed.counters.env_steps == 60
    resumed.run()
    assert resumed.counters.updates == straight.counters.updates > 0
    assert len(resumed.replay) == len(straight.replay)
    for a, b in zip(_leaves(straight.state), _leaves(resumed.state)):
        np.testing.assert_array_equal(a, b)
    snapshots = Checkpointer(tmp_path / "a" / "snapshots").steps()
    assert len(snapshots) == 5 and snapshots == Checkpointer(tmp_path / "b" / "snapshots").steps(), snapshots
    straight.close()
    resumed.close()


def test_resume_refuses_a_different_config(tmp_path):
    config = tiny_config(tmp_path, **{"run.steps": 8})
    trainer = Trainer(config, quiet=True)
    trainer.save()  # the check applies to runs that have a checkpoint to resume
    trainer.close()
    changed = tiny_config(tmp_path, **{"run.steps": 8, "model.ssm.layers": 2})
    with pytest.raises(cfgmod.ConfigError, match="model.ssm.layers"):
        Trainer(changed, quiet=True)


def _train_command(logdir: Path, steps: int) -> list[str]:
    overrides = [f"{k}={v}" for k, v in TINY.items()]
    return [sys.executable, "-m", "r2i.cli", "train", "--quiet", "--json", "--logdir", str(logdir), "--steps",
            str(steps), "--preset", "tiny", "run.checkpoint_every=1", *overrides]


def test_sigkill_then_resume_continues(tmp_path):
    """Kill -9 a training process after it wrote a checkpoint; re-running the same command continues from it."""
    logdir = tmp_path / "run"
    proc = subprocess.Popen(_train_command(logdir, 100_000), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    checkpoints = Checkpointer(logdir / "checkpoints")
    deadline = time.monotonic() + 240
    try:
        while (checkpoints.latest() or 0) < 100:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no checkpoint written in time"
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    saved = checkpoints.latest()
    steps = saved + 80
    done = subprocess.run(_train_command(logdir, steps), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["env_steps"] == steps
    records = [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    after = [r for r in records if r["step"] > saved and "progress/replay_steps" in r]
    assert after, "no metrics written after the resume"
    # The replay kept everything the killed run had stored at its checkpoint and grew from there.
    assert after[0]["progress/replay_steps"] > saved
    assert after[-1]["progress/updates"] > max(r.get("progress/updates", 0) for r in records if r["step"] <= saved)


def _cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = cli.main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_rejects_unknown_key_with_nearest_name(capsys, tmp_path):
    code, _, err = _cli(["train", "--logdir", str(tmp_path), "model.ssm.layer=3"], capsys)
    assert code == 2 and "unknown config key 'model.ssm.layer'" in err and "model.ssm.layers" in err
    code, _, err = _cli(["train", "--preset", "popgim"], capsys)
    assert code == 2 and "did you mean 'popgym'" in err


def test_cli_rejects_bad_values_and_envs(capsys, tmp_path):
    code, _, err = _cli(["train", "--logdir", str(tmp_path), "--steps", "10", "model.ssm.state=10"], capsys)
    assert code == 2 and "divisible by model.ssm.blocks" in err
    code, _, err = _cli(["train", "--logdir", str(tmp_path / "x"), "--env", "r2i:memory_lenght/3"], capsys)
    assert code == 2 and "memory_length" in err
    assert "Traceback" not in err


def test_missing_extra_is_one_line(capsys, monkeypatch):
    import importlib.util

    for name in [m for m in sys.modules if m == "popgym" or m.startswith("popgym.")]:
        monkeypatch.delitem(sys.modules, name)  # forget an import done by other tests …
    monkeypatch.setitem(sys.modules, "popgym", None)  # … so that importing fails …
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "popgym" else real_find_spec(name, *a))
    code, _, err = _cli(["check-env", "popgym:RepeatPreviousEasy"], capsys)  # … because it is not installed
    assert code == 2 and "pip install 'r2i[popgym]'" in err and "Traceback" not in err


def test_check_env_doctor_and_help_config(capsys):
    code, out, _ = _cli(["check-env", "r2i:memory_length/3", "--episodes", "2"], capsys)
    assert code == 0 and "vector" in out
    code, out, _ = _cli(["doctor"], capsys)
    assert code == 0 and "backend" in out and "RAM available" in out
    code, out, _ = _cli(["train", "--help-config"], capsys)
    assert code == 0 and "model.ssm.layers (int) = 2: number of stacked S5 blocks" in out
    assert "optim.model_lr (float) = 0.001 (default 0.0001)" in out  # the preset's value, not the dataclass default
    code, out, _ = _cli(["train", "--preset", "bsuite_cpu", "--help-config"], capsys)
    assert code == 0 and "env.id (str) = 'bsuite:memory_len/0'" in out


def test_load_eval_and_plot_a_run(tmp_path, capsys):
    logdir = tmp_path / "run"
    Trainer(tiny_config(logdir, **{"run.steps": 40, "run.snapshot_every": 10}), quiet=True).run()
    records = [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    timed = [r for r in records if "time/train" in r]
    assert timed, "no log record carries the loop's phase shares"
    for record in timed:  # the loop's phases are disjoint: with time/other their shares sum to 1
        shares = {k: v for k, v in record.items() if k.startswith("time/")}
        assert set(shares) >= {"time/act", "time/env", "time/replay", "time/train", "time/other"}, shares
        assert all(0.0 <= v <= 1.0 for v in shares.values()) and abs(sum(shares.values()) - 1.0) < 1e-6, shares
    assert any(r["time/train"] > 0 for r in timed)
    policy = r2i.load(logdir)
    assert policy.mode == load_config(logdir).run.eval_mode and r2i.load(logdir, mode="sample").mode == "sample"
    carry = policy.initial(3)
    obs = {"vector": np.zeros((3, 4), np.float32), "is_first": np.ones(3, bool)}
    carry, action = policy.act(carry, obs)
    assert action.shape == (3, 2) and np.all(action.sum(-1) == 1)
    assert load_config(logdir).run.steps == 40
    # Snapshots (run.snapshot_every): kept beside the checkpoints, without the replay, read by r2i.load
    # and `r2i eval --step`; a step with neither says which steps there are.
    snapshots = Checkpointer(logdir / "snapshots").steps()
    assert len(snapshots) == 4 and Checkpointer(logdir / "checkpoints").steps() == [40], snapshots
    assert not list((logdir / "snapshots" / f"ckpt_{snapshots[0]:010d}" / "replay").glob("*.npy"))
    first, last = _leaves(r2i.load(logdir, snapshots[0]).params), _leaves(r2i.load(logdir).params)
    assert any(not np.array_equal(a, b) for a, b in zip(first, last)), "the first snapshot equals the end"
    code, out, _ = _cli(["eval", "--logdir", str(logdir), "--episodes", "2", "--step", str(snapshots[2])], capsys)
    assert code == 0 and json.loads(out)["env_steps"] == snapshots[2]
    code, _, err = _cli(["eval", "--logdir", str(logdir), "--step", "7777"], capsys)
    assert code != 0 and "no checkpoint or snapshot at env step 7777" in err and "Traceback" not in err
    code, out, _ = _cli(["eval", "--logdir", str(logdir), "--episodes", "4"], capsys)
    assert code == 0 and json.loads(out)["eval/episodes"] == 4
    assert json.loads(out)["eval/mode"] == load_config(logdir).run.eval_mode  # the run's own evaluation by default
    code, out, _ = _cli(["eval", "--logdir", str(logdir), "--episodes", "2", "--mode", "sample"], capsys)
    assert code == 0 and json.loads(out)["eval/mode"] == "sample"
    code, out, _ = _cli(["bench", "eval", "--logdir", str(logdir), "--episodes", "3", "--envs", "1,3,8",
                         "--repeats", "1"], capsys)
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r.get("envs") for r in lines[:3]] == [1, 3, 3]  # never more envs than episodes
    assert all(r["median_s"] > 0 and r["episodes"] == 3 for r in lines[:3])
    assert lines[3]["ratio"]["1"] == 1.0 and set(lines[3]["ratio"]) == {"1", "3", "8"}
    code, _, err = _cli(["bench", "eval", "--logdir", str(logdir), "--envs", "4,0"], capsys)
    assert code != 0 and "--envs" in err and "Traceback" not in err
    png = tmp_path / "curves.png"
    code, out, _ = _cli(["plot", str(logdir), "--out", str(png), "--keys", "episode/return"], capsys)
    assert code == 0 and png.read_bytes()[:4] == b"\x89PNG"


def test_stop_at_success_on_an_env_without_success_is_said_once(tmp_path, capsys):
    """`run.stop_at_success` reads eval/success; an env that reports none (a POPGym task, CartPole) would train to
    run.steps with the stop never taken: the first evaluation round says so, once, and the run goes on. With
    `run.stop_metric=eval/return` (POPGym's normalised return) the same threshold reads the return instead."""
    trainer = Trainer(tiny_config(tmp_path, **{"run.steps": 8, "run.stop_at_success": 0.9}), quiet=True)
    assert trainer._reports_stop_metric({"eval/success": 0.5, "eval/return": 0.0})
    assert not trainer._reports_stop_metric({"eval/return": 1.0})
    assert not trainer._reports_stop_metric({"eval/return": 1.0})
    err = capsys.readouterr().err
    assert err.count("run.stop_at_success=0.9 has no effect") == 1 and "trains to run.steps=8" in err
    assert "run.stop_metric=eval/return" in err  # the way out, named
    trainer.close()
    by_return = Trainer(tiny_config(tmp_path / "r", **{"run.steps": 8, "run.stop_at_success": 0.9,
                                                       "run.stop_metric": "eval/return"}), quiet=True)
    assert by_return._reports_stop_metric({"eval/return": 0.95})
    by_return.counters.last_eval_score = 0.95
    assert by_return.solved()
    by_return.close()
    with pytest.raises(cfgmod.ConfigError, match="run.stop_metric must name an evaluation metric"):
        tiny_config(tmp_path, **{"run.stop_metric": "return"})


def test_a_run_solved_then_stopped_resumes_to_its_final_evaluation(tmp_path):
    """An evaluation round meets `run.stop_at_success`, the checkpoint is written, and a SIGTERM stops the run before
    its final evaluation (no result.json). Resumed, it used to train on past its solving step; now the counters carry
    the round's success: it trains no further, evaluates and writes its result, which the next resume returns."""
    from r2i.run import finished_result, train

    solve = {"run.stop_at_success": 0.9, "run.eval_episodes": 2}
    first = Trainer(tiny_config(tmp_path, **solve, **{"run.steps": 24}), quiet=True)
    first.run()
    assert not first.solved()
    first.counters.last_eval_score = 0.95  # the round that solved, as the loop records it before its checkpoint
    assert first.solved()
    first.save()
    first.close()
    config = tiny_config(tmp_path, **solve, **{"run.steps": 400})
    result = train(config, quiet=True)
    assert result["solved"] and not result["stopped_early"] and result["env_steps"] == 24
    assert result["eval/episodes"] == 2  # the final evaluation ran
    again = train(config, quiet=True)
    assert finished_result(config) is not None and again["finished_before"] == "solved"
    assert "already solved its task (24 env steps)" in format_result(again, tmp_path).splitlines()[0]
    # The stop rule set to never, or above the score it stopped at: a solved run trains on (--force for the change).
    for threshold in (0.0, 0.99):
        assert finished_result(tiny_config(tmp_path, **{**solve, "run.stop_at_success": threshold,
                                                        "run.steps": 400})) is None
    # Below the threshold it is an ordinary resume: it trains on.
    trainer = Trainer(tiny_config(tmp_path / "b", **{"run.steps": 8, "run.stop_at_success": 0.9}), quiet=True)
    trainer.counters.last_eval_score = 0.5
    assert not trainer.solved()
    trainer.close()


def test_stop_rounds_needs_that_many_rounds_in_a_row(tmp_path):
    """`run.stop_rounds=k`: a run is solved only when its last k evaluation rounds all met `run.stop_at_success`; a
    checkpoint from before `eval_scores` existed counts its last round alone; a result solved by fewer rounds than the
    rule now asks for trains on."""
    from r2i.rundir import counter_scores, stop_met

    rule = tiny_config(tmp_path, **{"run.stop_at_success": 0.9, "run.stop_rounds": 2}).run
    assert not stop_met(rule, [0.95]) and not stop_met(rule, [0.95, 0.5]) and not stop_met(rule, [0.95, 0.5, 0.97])
    assert stop_met(rule, [0.5, 0.95, 0.91]) and stop_met(rule, [0.9, 0.9])
    assert counter_scores({"last_eval_score": 0.95}) == [0.95] and counter_scores({"eval_scores": [0.2, 0.3]}) == [0.2, 0.3]
    assert counter_scores({"last_eval_score": None, "eval_scores": []}) == []

    solve = {"run.stop_at_success": 0.9, "run.eval_episodes": 2, "run.stop_rounds": 2}
    first = Trainer(tiny_config(tmp_path, **solve, **{"run.steps": 24}), quiet=True)
    first.run()
    first.counters.eval_scores, first.counters.last_eval_score = [0.5, 0.95], 0.95  # one round met it: not solved
    assert not first.solved()
    first.counters.eval_scores, first.counters.last_eval_score = [0.5, 0.95, 0.92], 0.92
    assert first.solved()
    first.save()
    first.close()
    from r2i.run import finished_result, train

    result = train(tiny_config(tmp_path, **solve, **{"run.steps": 400}), quiet=True)
    assert result["solved"] and result["env_steps"] == 24 and result["solved_rounds"] == 2
    assert result["solved_score"] == pytest.approx(0.92)  # the lower of the two rounds that met the rule
    assert finished_result(tiny_config(tmp_path, **solve, **{"run.steps": 400})) is not None
    assert finished_result(tiny_config(tmp_path, **{**solve, "run.stop_rounds": 3, "run.steps": 400})) is None


def test_nan_reward_env_gives_clear_error():
    """An environment that returns NaN stops training with an error naming the key."""
    from r2i.envs.base import Space
    from r2i.envs.checks import validate_step
    from r2i.errors import EnvError

    obs = {"vector": np.zeros(3, np.float32), "reward": np.float32(np.nan), "is_first": np.bool_(False),
           "is_last": np.bool_(False), "is_terminal": np.bool_(False)}
    with pytest.raises(EnvError, match="reward"):
        validate_step(obs, {"vector": Space((3,))}, "my-env", 5)


@pytest.mark.slow
def test_data_parallel_training_matches_one_device(tmp_path):
    """On two (virtual CPU) devices the batch is split along B and the update is the same maths: a short run gives the
    parameters of the one-device run up to float32 reduction order; a batch not divisible by the devices is refused."""
    steps = {"run.steps": 40}
    code = textwrap.dedent(
        f"""
        import sys, jax, numpy as np
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_run import tiny_config
        from r2i.errors import ConfigError
        from r2i.run import Trainer
        assert len(jax.devices()) == 2
        try:
            Trainer(tiny_config(sys.argv[1] + "/odd", **{{"run.batch_size": 3}}), quiet=True)
            raise SystemExit("batch 3 on 2 devices was accepted")
        except ConfigError as e:
            assert "divisible by the 2 devices" in str(e), e
        trainer = Trainer(tiny_config(sys.argv[1] + "/run", **{steps!r}), quiet=True)
        trainer.run()
        assert trainer.counters.updates > 0
        np.savez(sys.argv[1] + "/params.npz", *[np.asarray(x) for x in jax.tree.leaves(trainer.state.params)])
        print("ok")
        """
    )
    env = subprocess_env("--xla_force_host_platform_device_count=2")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]
    single = Trainer(tiny_config(tmp_path / "single", **steps), quiet=True)
    single.run()
    sharded = np.load(tmp_path / "params.npz")
    leaves = _leaves(single.state.params)
    assert len(leaves) == len(sharded.files)
    for i, leaf in enumerate(leaves):
        np.testing.assert_allclose(sharded[f"arr_{i}"], leaf, rtol=1e-3, atol=1e-4)
    single.close()
