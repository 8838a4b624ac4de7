"""A tiny end-to-end run learns a memory task: a cue at the first step, the answer three steps later.

Chance is 0.5; the assertion asks for a success rate that a policy without memory cannot reach (P(≥ 0.8 of 50 | 0.5)
< 1e-5). The run stops at the first evaluation round (every 1,000 env steps) with success ≥ 0.9, and a fresh
final evaluation must still show ≥ 0.8. About one to two minutes on a 2-core CPU.
"""

import json
import subprocess
import sys

import pytest
from _xla import subprocess_env

from r2i import config as cfgmod

LEARN = {
    "env.id": "r2i:memory_length/3", "env.num_envs": 4,
    "run.steps": 6000, "run.prefill": 500, "run.train_ratio": 256, "run.batch_size": 8, "run.batch_length": 32,
    "run.eval_every": 1000, "run.eval_episodes": 50, "run.stop_at_success": 0.9, "run.log_every": 1000,
    "model.deter": 64, "model.hidden": 64, "model.ssm.units": 64, "model.ssm.state": 32, "model.ssm.layers": 1,
    "model.encoder.units": 64, "model.decoder.units": 64, "model.reward_head.units": 64,
    "model.cont_head.units": 64, "behavior.actor.units": 64, "behavior.critic.units": 64,
    "behavior.imag_starts": 128,
}  # fmt: skip


@pytest.mark.slow
def test_s3m_agent_learns_a_memory_task(tmp_path):
    config = cfgmod.make_config("default", LEARN)
    assert config.model.sequence == "s3m" and config.model.policy_inputs == "hidden"
    # `r2i train` in a child process with XLA's default code generation: thousands of updates run 2–3× faster there
    # than under the session's fast-compile setting (tests/_xla.py).
    cmd = [sys.executable, "-m", "r2i.cli", "train", "--logdir", str(tmp_path / "run"), "--quiet", "--json",
           *(f"{key}={value}" for key, value in LEARN.items())]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(optimised=True), timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["eval/episodes"] == 50
    assert result["eval/success"] >= 0.8, result
    assert result["solved"] == (result["env_steps"] < 6000), result
