"""`r2i bench gpu` (the prepared GPU check) runs end to end on CPU at tiny sizes and writes well-formed JSON lines."""

from __future__ import annotations

import json

import pytest

from r2i.bench import gpu

# Shrinks the reference size to a tiny agent, so the run checks the wiring, not the machine.
TINY = {
    "model.deter": 16, "model.hidden": 16, "model.stoch": 4, "model.classes": 4, "model.ssm.units": 16,
    "model.ssm.state": 8, "model.ssm.blocks": 2, "model.ssm.layers": 1, "model.encoder.units": 16,
    "model.decoder.units": 16, "model.reward_head.units": 16, "model.reward_head.layers": 1,
    "model.cont_head.units": 16, "model.cont_head.layers": 1, "model.reward_bins": 31, "behavior.actor.units": 16,
    "behavior.actor.layers": 1, "behavior.critic.units": 16, "behavior.critic.layers": 1, "behavior.horizon": 2,
}  # fmt: skip


@pytest.mark.slow
def test_gpu_check_runs_on_cpu_at_tiny_sizes(tmp_path):
    out = gpu.run(tmp_path / "results" / "gpu.jsonl", scan_batch=(2,), scan_length=(8,), scan_state=(4,),
                  act_envs=(2,), models=("s3m",), batch=(2,), length=(4,), dtypes=("float32",),
                  extra=TINY, repeats=1, budget_s=600)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0]["part"] == "start" and lines[-1]["part"] == "end"
    scans = [r for r in lines if r.get("bench") == "scan" and "method" in r]
    assert {(r["method"], r["mode"]) for r in scans} == {(m, d) for m in ("sequential", "associative")
                                                         for d in ("forward", "forward+backward")}
    acts = [r for r in lines if r.get("part") == "act"]
    assert [r["model"] for r in acts] == ["s3m"] and acts[0]["env_steps_per_s"] > 0
    updates = [r for r in lines if r.get("part") == "train"]
    assert not [r for r in updates if "error" in r or "skipped" in r]
    # One model and one dtype: each update compile costs ~30 CPU-seconds even for the tiny agent, and the GRU and
    # bfloat16 configurations go through the same code (the order and skipping are checked below, without compiling).
    assert [(r["dtype"], r["model"]) for r in updates] == [("float32", "s3m")]
    assert all(r["median_s"] > 0 and r["program_memory_mb"] > 0 and r["size"] == gpu.REFERENCE_SIZE
               for r in updates)


def test_gpu_check_skips_what_the_budget_does_not_allow(capsys):
    gpu.updates(["s3m", "gru"], [4, 16], [64], ["float32"], gpu.REFERENCE_SIZE, TINY, 1, deadline=0.0)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == [{"bench": "gpu", "part": "train", "reason": "time budget",
                      "skipped": ["s3m float32 B4xT64", "gru float32 B4xT64", "s3m float32 B16xT64",
                                  "gru float32 B16xT64"]}]
