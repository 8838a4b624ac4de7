"""MetricsLogger (JSON lines + TensorBoard), Aggregator, and the PNG plots."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from r2i.metrics import Aggregator, MetricsLogger
from r2i.plot import plot_runs, plot_sweep, sweep_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path, min_bytes=5_000):
    data = path.read_bytes()
    return data[:8] == PNG_MAGIC and len(data) > min_bytes


def test_logger_writes_finite_scalars_and_appends_on_resume(tmp_path):
    with MetricsLogger(tmp_path) as logger:
        written = logger.write(
            10,
            {"a": 1, "b": np.float32(2.5), "c": jnp.array(3.0), "d": np.array([4.0]), "nan": float("nan"),
             "inf": np.inf, "vec": np.zeros(3), "text": "x"},
        )
    assert written == {"a": 1.0, "b": 2.5, "c": 3.0, "d": 4.0}
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    assert record["step"] == 10 and record["time"] > 1.6e9 and record["c"] == 3.0 and "nan" not in record
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    with MetricsLogger(tmp_path, tensorboard=False) as logger:  # resume: appended
        logger.write(20, {"a": 2.0})
    assert [r["step"] for r in MetricsLogger.read(tmp_path)] == [10, 20]


def test_read_skips_truncated_line_and_follows_resume(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [{"step": s, "time": 0.0, "a": s} for s in (0, 10, 20, 30)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 40, "ti')  # killed mid-write
    assert [r["step"] for r in MetricsLogger.read(tmp_path)] == [0, 10, 20, 30]
    with MetricsLogger(tmp_path, tensorboard=False) as logger:  # resumed from a checkpoint at step 15
        logger.write(15, {"a": -1.0})
        logger.write(25, {"a": -2.0})
    assert [r["step"] for r in MetricsLogger.read(tmp_path)] == [0, 10, 15, 25]
    assert len(MetricsLogger.read(tmp_path, dedupe=False)) == 6
    with pytest.raises(FileNotFoundError):
        MetricsLogger.read(tmp_path / "nope")


def test_video(tmp_path):
    frames = (np.arange(6 * 8 * 8 * 3) % 256).astype(np.uint8).reshape(6, 8, 8, 3)
    with MetricsLogger(tmp_path / "tb_on") as logger:
        assert logger.video(5, "eval/policy", frames) is None
    events = list((tmp_path / "tb_on" / "tb").glob("events.out.tfevents.*"))
    assert b"GIF89a" in b"".join(p.read_bytes() for p in events)
    with MetricsLogger(tmp_path / "tb_off", tensorboard=False) as logger:
        path = logger.video(5, "eval/policy", frames[..., :1])
    assert path.name == "eval_policy_000000005.gif" and path.read_bytes()[:6] == b"GIF89a"
    with pytest.raises(ValueError, match="uint8"):
        MetricsLogger(tmp_path / "x", tensorboard=False).video(0, "v", frames.astype(np.float32))


def test_aggregator_means_and_episodes():
    agg = Aggregator()
    agg.add({"train/loss": 1.0, "train/x": np.float32(3)})
    agg.add({"train/loss": 3.0, "bad": float("nan")})
    agg.add_episode(10.0, 100, {"log_success": 1.0})
    agg.add_episode(20.0, 200, {"log_success": 0.0})
    out = agg.result()
    assert out == {"train/loss": 2.0, "train/x": 3.0, "episode/count": 2.0, "episode/return": 15.0,
                   "episode/length": 150.0, "episode/success": 0.5}
    assert agg.result() == {}


def test_aggregator_tracks_episodes_from_steps():
    agg = Aggregator("eval")
    # env 0: episode of 3 actions, rewards 1+2+3; env 1: episode of 2 actions, rewards 5+5, then a new one starts
    steps = [
        ([0, 0], [True, True], [False, False], [0, 0]),
        ([1, 5], [False, False], [False, False], [0, 0]),
        ([2, 5], [False, False], [False, True], [0, 1]),
        ([3, 0], [False, True], [True, False], [1, 0]),
    ]
    for reward, first, last, success in steps:
        agg.add_steps({"reward": np.array(reward, np.float32), "is_first": np.array(first),
                       "is_last": np.array(last), "log_success": np.array(success, np.float32)})
    out = agg.result()
    assert out == {"eval/count": 2.0, "eval/return": 8.0, "eval/length": 2.5, "eval/success": 1.0}


def _fake_run(path, n=50, seed=0):
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True)
    with open(path / "metrics.jsonl", "w") as f:
        for i in range(n):
            f.write(json.dumps({"step": i * 100, "time": 1e9 + i, "episode/return": float(rng.normal(i)),
                                "episode/success": float(rng.random() < i / n), "train/loss": 1.0 / (i + 1)}) + "\n")
            if i % 10 == 0:
                f.write(json.dumps({"step": i * 100, "time": 1e9 + i, "eval/return": float(i)}) + "\n")


def test_plot_runs(tmp_path):
    _fake_run(tmp_path / "s5_seed0", seed=0)
    _fake_run(tmp_path / "gru_seed0", seed=1)
    out = plot_runs([tmp_path / "s5_seed0", tmp_path / "gru_seed0"], tmp_path / "plots" / "runs.png", smooth=0.6)
    assert out == tmp_path / "plots" / "runs.png" and _is_png(out)
    out2 = plot_runs([tmp_path / "s5_seed0"], tmp_path / "loss.png", x="time", keys=["train/loss"])
    assert _is_png(out2)


def test_plot_runs_errors(tmp_path):
    with pytest.raises(ValueError, match=r"empty_run.metrics\.jsonl does not exist"):
        (tmp_path / "empty_run").mkdir()
        plot_runs([tmp_path / "empty_run"], tmp_path / "x.png")
    _fake_run(tmp_path / "run")
    with pytest.raises(ValueError, match=r"keys \['nope'\] are in no run"):
        plot_runs([tmp_path / "run"], tmp_path / "x.png", keys=["nope"])
    with pytest.raises(ValueError, match="x='env_steps'"):
        plot_runs([tmp_path / "run"], tmp_path / "x.png", x="env_steps")


def test_plot_sweep(tmp_path):
    lines = ["suite,setting,model,seed,env_steps,success,wall_s"]
    for suite in ("memory_length", "discounting_chain"):
        for model in ("r2i", "dreamerv3"):
            for setting in (30, 1, 10, 3, 100):
                for seed in range(3):
                    success = max(0.0, 1 - setting / (200 if model == "r2i" else 20)) * (0.8 + 0.1 * seed)
                    lines.append(f"{suite},{setting},{model},{seed},10000,{success:.3f},12.5")
    (tmp_path / "sweep.csv").write_text("\n".join(lines) + "\n")
    out = plot_sweep(tmp_path / "sweep.csv", tmp_path / "sweep.png")
    assert out == tmp_path / "sweep.png" and _is_png(out)
    (tmp_path / "bad.csv").write_text("suite,setting,model\nx,1,r2i\n")
    with pytest.raises(ValueError, match=r"bad\.csv lacks columns \['seed', 'env_steps', 'success', 'wall_s'\]"):
        plot_sweep(tmp_path / "bad.csv", tmp_path / "bad.png")
    named = [lines[0], "popgym,RepeatPreviousEasy,s3m,0,1,0.9,1", "popgym,AutoencodeEasy,s3m,0,1,0.2,1"]
    (tmp_path / "named.csv").write_text("\n".join(named) + "\n")
    assert _is_png(plot_sweep(tmp_path / "named.csv", tmp_path / "named.png"))  # categorical x axis
    (tmp_path / "nan.csv").write_text(lines[0] + "\nx,long,r2i,0,1,high,1\n")
    with pytest.raises(ValueError, match=r"nan\.csv:2: success must be a number"):
        plot_sweep(tmp_path / "nan.csv", tmp_path / "nan.png")
    with pytest.raises(ValueError, match="does not exist"):
        plot_sweep(tmp_path / "missing.csv", tmp_path / "m.png")
    # Two CSVs (the same suite at two settings of the agent): a line per model and CSV, named after both.
    (tmp_path / "probs.csv").write_text(lines[0] + "\nmemory_length,200,r2i,0,18004,0.99,1\n")
    table = sweep_table([tmp_path / "sweep.csv", tmp_path / "probs.csv"])
    assert sorted(table["memory_length"]) == ["dreamerv3 · sweep", "r2i · probs", "r2i · sweep"]
    assert table["memory_length"]["r2i · probs"] == {"200": [0.99]} and len(table["memory_length"]["r2i · sweep"]) == 5
    assert sorted(sweep_table([tmp_path / "sweep.csv"])["memory_length"]) == ["dreamerv3", "r2i"]  # one CSV: models
    out = plot_sweep([tmp_path / "sweep.csv", tmp_path / "probs.csv"], tmp_path / "both.png")
    assert _is_png(out)


def test_aggregator_mask_and_missing_log_values():
    """Only envs in the mask record the episodes they finish (an evaluation's budget); a NaN log value (an env that
    did not report the key) is missing from the mean, and a key nobody reported a number for is NaN."""
    agg = Aggregator("eval")
    step = {"reward": np.array([1.0, 2.0, 3.0], np.float32), "is_first": np.zeros(3, bool),
            "is_last": np.ones(3, bool), "log_success": np.array([1.0, np.nan, 0.0], np.float32),
            "log_score": np.full(3, np.nan, np.float32)}
    agg.add_steps(step, mask=np.array([True, True, False]))
    out = agg.result()
    assert out["eval/count"] == 2.0 and out["eval/return"] == 1.5 and out["eval/success"] == 1.0
    assert np.isnan(out["eval/score"])


def test_published_ticks_do_not_crowd_ours():
    from r2i.plot import add_ticks

    assert add_ticks([10.0, 100.0], [18.0, 101.0]) == [10.0, 18.0, 100.0]  # 101 would print over 100
    assert add_ticks([30.0], [512.0, 1024.0]) == [30.0, 512.0, 1024.0]
