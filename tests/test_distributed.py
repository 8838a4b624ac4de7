"""Real multi-process training on one machine: 2 processes over the loopback address with gloo CPU collectives.

Checks, with the tiny agent: data-parallel updates over 2 processes keep bitwise identical parameters on both and
match the single-process update on the same global batch; `r2i train` on 2 processes stops on a signal that reaches
only one of them (both checkpoint), resumes, keeps identical replicated state (its checkpoint fingerprints), and a
resume with another process count is refused with a one-line error.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from _xla import subprocess_env

# The `tiny` preset without evaluation rounds or timed checkpoints (the tests checkpoint when they mean to).
TINY_RUN = {"run.eval_every": 0, "run.eval_episodes": 0, "run.checkpoint_every": 3600}
TESTS = Path(__file__).parent
SRC = TESTS.parent / "src"
# Float32 all-reduces add the two halves' gradients in another order than one process's sum over the batch; after 3
# Adam updates of the tiny agent the parameters differ by rounding only (measured: at most 1.2e-7 absolute, in 775 of
# 6,829 parameters).
RTOL, ATOL = 1e-5, 1e-6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(default_cache: Path) -> dict:
    env = {k: v for k, v in subprocess_env().items() if k not in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES",
                                                                   "JAX_PROCESS_ID")}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(TESTS), env.get("PYTHONPATH", "")])
    # The test session's compilation cache (conftest), so that later processes reuse the first ones' programs.
    env["R2I_CACHE_DIR"] = jax.config.jax_compilation_cache_dir or str(default_cache)
    return env


def _train_cmd(logdir: Path, steps: int, port: int | None, index: int | None) -> list[str]:
    cmd = [sys.executable, "-m", "r2i.cli", "train", "--logdir", str(logdir), "--steps", str(steps), "--quiet",
           "--json"]
    if port is not None:
        cmd += ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(index)]
    return cmd + ["--preset", "tiny"] + [f"{k}={v}" for k, v in TINY_RUN.items()]


def _finish(procs, timeout=600) -> list[tuple[int, str, str]]:
    out = []
    for p in procs:
        try:
            stdout, stderr = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("a process of the multi-process run hung")
        out.append((p.returncode, stdout, stderr))
    return out


def _fingerprints(logdir: Path) -> dict[int, str]:
    """Process → fingerprint of the replicated state in the newest checkpoint both processes hold."""
    ckpts = logdir / "checkpoints"
    step = max(int(p.name.split("_")[1]) for p in ckpts.glob("ckpt_*"))
    name = f"ckpt_{step:010d}"
    return {i: json.loads((d / name / "meta.json").read_text())["state_sha256"]
            for i, d in ((0, ckpts), (1, ckpts / "process_1"))}


@pytest.mark.slow
def test_two_processes_match_one_and_resume(tmp_path):
    env = _env(tmp_path / "jax-cache")
    # 1. The same 3 updates on one global batch: 2 processes (half the rows each) and 1 process, side by side.
    port = _free_port()
    worker = str(TESTS / "_distributed_worker.py")
    procs = [subprocess.Popen([sys.executable, worker, str(n), str(i), str(port), str(tmp_path / f"p{n}_{i}.npz")],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for n, i in ((2, 0), (2, 1), (1, 0))]
    for code, _, stderr in _finish(procs):
        assert code == 0, stderr[-3000:]
    two = [np.load(tmp_path / f"p2_{i}.npz") for i in (0, 1)]
    one = np.load(tmp_path / "p1_0.npz")
    assert len(one.files) == len(two[0].files) > 10
    for key in one.files:
        np.testing.assert_array_equal(two[0][key], two[1][key])  # the replicas are the same, bit for bit
        np.testing.assert_allclose(two[0][key], one[key], rtol=RTOL, atol=ATOL)

    # 2. `r2i train` on 2 processes; SIGTERM reaches only process 1, once updates have started: both stop and save.
    logdir, port = tmp_path / "run", _free_port()
    procs = [subprocess.Popen(_train_cmd(logdir, 100_000, port, i), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in (0, 1)]
    metrics, deadline = logdir / "metrics.jsonl", time.monotonic() + 600
    while not (metrics.exists() and any(json.loads(line).get("progress/updates", 0) > 0
                                        for line in metrics.read_text().splitlines())):
        assert all(p.poll() is None for p in procs) and time.monotonic() < deadline, "the run ended or hung"
        time.sleep(0.2)
    procs[1].send_signal(signal.SIGTERM)
    (code0, out0, err0), (code1, _, err1) = _finish(procs)
    assert (code0, code1) == (130, 130), err0[-2000:] + err1[-2000:]
    stopped = json.loads(out0.strip().splitlines()[-1])
    assert stopped["stopped_early"] and stopped["updates"] > 0
    first = _fingerprints(logdir)
    assert first[0] == first[1]

    # 3. Resume on 2 processes for 16 more env steps.
    port = _free_port()
    target = stopped["env_steps"] + 16
    procs = [subprocess.Popen(_train_cmd(logdir, target, port, i), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in (0, 1)]
    (code0, out0, err0), (code1, out1, err1) = _finish(procs)
    assert (code0, code1) == (0, 0), err0[-2000:] + err1[-2000:]
    assert "resumed" not in out1  # process 1 prints nothing
    resumed = json.loads(out0.strip().splitlines()[-1])
    assert resumed["env_steps"] == target and resumed["updates"] > stopped["updates"]
    second = _fingerprints(logdir)
    assert second[0] == second[1] != first[0]

    # 4. Another process count is refused before anything is restored.
    proc = subprocess.run(_train_cmd(logdir, target + 16, None, None), env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert "checkpointed by 2 process(es) but this run has 1" in proc.stderr.strip().splitlines()[-1]
