"""`run.cpu_threads`: XLA's CPU pools sized for fewer cores, without pinning any thread (r2i/threads.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import jax
import pytest

from r2i import config as cfgmod
from r2i.threads import available_cores, limit_cpu_threads, per_job

# A child process starts JAX's backends with `run.cpu_threads=N` and reports the threads they made and every
# thread's cores afterwards.
CHILD = """
import json, os, sys
from r2i.threads import limit_cpu_threads
before = set(os.listdir("/proc/self/task"))
in_effect = limit_cpu_threads(int(sys.argv[1]))
import jax, jax.numpy as jnp
value = float(jax.jit(lambda a: (a @ a).sum())(jnp.ones((64, 64))))
tasks = os.listdir("/proc/self/task")
cores = {tuple(sorted(os.sched_getaffinity(int(t)))) for t in tasks}
print(json.dumps({"in_effect": in_effect, "new_threads": len(set(tasks) - before), "cores": sorted(cores),
                  "value": value}))
"""

needs_two_cores = pytest.mark.skipif(available_cores() < 2 or not sys.platform.startswith("linux"),
                                     reason="sizing XLA's pools below the core count needs Linux and two cores")


def _child(count: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(count)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@needs_two_cores
def test_one_thread_makes_smaller_pools_and_pins_nothing():
    every = _child(0)
    one = _child(1)
    assert one["in_effect"] == 1 and every["in_effect"] == 0
    assert one["new_threads"] < every["new_threads"], (one, every)  # XLA's pools were sized for one core
    assert len(one["cores"]) == 1 and one["cores"] == every["cores"], one  # every thread may run on every core
    assert one["value"] == every["value"] == 64.0 * 64 * 64


@needs_two_cores
def test_after_jax_started_it_warns_and_changes_nothing():
    jax.devices()  # this process's backends are running
    with pytest.warns(RuntimeWarning, match="run.cpu_threads=1 has no effect"):
        assert limit_cpu_threads(1) == 0


def test_zero_is_xla_default_and_negative_is_refused():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert limit_cpu_threads(0) == 0
    with pytest.raises(ValueError, match="run.cpu_threads must be >= 0"):
        limit_cpu_threads(-1)


def test_jobs_side_by_side_share_the_cores_unless_told_otherwise():
    assert per_job(1) == []
    assert per_job(2) == [f"run.cpu_threads={max(1, available_cores() // 2)}"]
    assert per_job(available_cores() * 4) == ["run.cpu_threads=1"]
    assert per_job(2, ["run.cpu_threads=3"]) == [] and per_job(2, ["--run.cpu_threads", "3"]) == []


def test_a_run_resumes_with_another_thread_count():
    """Threads change how fast a run computes, not what: a resume with another count is not refused."""
    a = cfgmod.make_config("tiny", {})
    b = cfgmod.make_config("tiny", {"run.cpu_threads": "1", "run.eval_every": "7"})
    assert cfgmod.diff(a, b) == ["run.eval_every"]
