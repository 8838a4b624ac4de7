"""The disk replay: same sampling as the in-memory ring, checkpoints without copying, a crash loses at most a chunk."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from test_replay import SPEC, make_step

from r2i.errors import ConfigError
from r2i.replay import Replay
from r2i.replay_disk import DiskReplay

ROOT = Path(__file__).resolve().parents[1]


def fill_both(tmp_path, capacity, num_envs, length, steps, chunk, seed=3):
    memory = Replay(SPEC, capacity, num_envs, length, seed=seed)
    disk = DiskReplay(SPEC, capacity, num_envs, length, seed=seed, directory=tmp_path / "r", chunk=chunk)
    for t in range(steps):
        memory.add(make_step(t, num_envs))
        disk.add(make_step(t, num_envs))
    return memory, disk


def assert_same_samples(a: Replay, b: Replay, batch=32, rounds=3):
    assert (len(a), a.added, a.num_windows()) == (len(b), b.added, b.num_windows())
    for _ in range(rounds):
        x, y = a.sample(batch), b.sample(batch)
        assert x.keys() == y.keys()
        for key in x:
            assert x[key].dtype == y[key].dtype
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)


@pytest.mark.parametrize("steps", [6, 13, 47])  # not yet wrapped, wrapped once mid-chunk, wrapped twice
def test_sampling_equals_the_in_memory_replay(tmp_path, steps):
    # per-env capacity 20 in chunks of 6: 4 files, the last one 2 slots long
    memory, disk = fill_both(tmp_path, capacity=40, num_envs=2, length=4, steps=steps, chunk=6)
    assert disk.num_chunks == 4 and disk._rows(3) == 2
    assert_same_samples(memory, disk)
    disk.close()


def test_checkpoint_holds_no_data_and_resumes_exactly(tmp_path):
    memory, disk = fill_both(tmp_path, capacity=40, num_envs=2, length=4, steps=31, chunk=6)
    state = disk.state_dict()
    assert not any(key.startswith("data_") for key in state) and sum(v.nbytes for v in state.values()) < 200
    disk.close()  # the process stops right after its checkpoint
    resumed = DiskReplay(SPEC, 40, 2, 4, seed=99, directory=tmp_path / "r", chunk=6)
    resumed.load_state_dict(state)
    assert_same_samples(memory, resumed)  # sampler RNG and data restored
    for t in range(31, 40):  # and it goes on as the in-memory ring does
        memory.add(make_step(t, 2))
        resumed.add(make_step(t, 2))
    assert_same_samples(memory, resumed)
    resumed.close()


def test_resume_drops_steps_written_after_the_checkpoint(tmp_path):
    _, disk = fill_both(tmp_path, capacity=40, num_envs=2, length=4, steps=25, chunk=6)
    state = disk.state_dict()  # 25 steps per env added, ring of 20: holds t = 5..24
    for t in range(25, 29):  # the run goes on, then stops (closing the replay) without another checkpoint
        disk.add(make_step(t, 2))
    disk.close()
    resumed = DiskReplay(SPEC, 40, 2, 4, directory=tmp_path / "r", chunk=6)
    with pytest.warns(UserWarning, match="overwritten after"):
        resumed.load_state_dict(state)
    # t = 25..28 went to the slots of t = 5..8: t = 9..24 are intact, t ≥ 25 belong to the lost timeline
    t = resumed.sample(256)["vector"][..., 1]
    assert t.min() == 9 and t.max() == 24 and len(resumed) == 2 * 16 and resumed.added == 2 * 25
    resumed.add(make_step(25, 2))
    assert resumed.sample(256)["vector"][..., 1].max() == 25
    resumed.close()


def test_a_missing_or_foreign_directory_resumes_empty_and_layout_changes_are_refused(tmp_path):
    _, disk = fill_both(tmp_path, capacity=40, num_envs=2, length=4, steps=10, chunk=6)
    state = disk.state_dict()
    disk.close()
    other = DiskReplay(SPEC, 40, 2, 4, directory=tmp_path / "elsewhere", chunk=6)
    with pytest.warns(UserWarning, match="has no index"):
        other.load_state_dict(state)
    assert len(other) == 0 and other.added == 20
    with pytest.raises(ConfigError, match="another layout .*chunk"):
        DiskReplay(SPEC, 40, 2, 4, directory=tmp_path / "r", chunk=5).load_state_dict(state)
    with pytest.raises(ConfigError, match="replay.capacity"):
        DiskReplay(SPEC, 60, 2, 4, directory=tmp_path / "r", chunk=6).load_state_dict(state)
    with pytest.raises(ConfigError, match="replay.backend=memory"):
        DiskReplay(SPEC, 40, 2, 4, directory=tmp_path / "r", chunk=6).load_state_dict(Replay(SPEC, 40, 2, 4).state_dict())


KILLER = """
import os, signal, sys
sys.path[:0] = [{src!r}, {tests!r}]
from r2i.replay_disk import DiskReplay
from test_replay import SPEC, make_step

replay = DiskReplay(SPEC, {capacity}, 2, 4, directory={directory!r}, chunk={chunk})
for t in range({steps}):
    replay.add(make_step(t, 2))


class DieAfterFirstKey(dict):
    def items(self):
        first = next(iter(super().items()))
        yield first
        os.kill(os.getpid(), signal.SIGKILL)  # mid-step: one key of step {steps} written, the others not


write = replay._write
replay._write = lambda values: write(DieAfterFirstKey(values))
replay.add(make_step({steps}, 2))
"""


@pytest.mark.parametrize(("steps", "capacity"), [(21, 200), (45, 40)])  # ring not full / wrapped twice
def test_kill_during_a_write_loses_at_most_the_unfinished_chunk(tmp_path, steps, capacity):
    directory = tmp_path / "r"
    script = KILLER.format(src=str(ROOT / "src"), tests=str(ROOT / "tests"), capacity=capacity, directory=str(directory),
                           chunk=6, steps=steps)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    index = json.loads((directory / "index.json").read_text())
    per_env = capacity // 2
    # step `steps` lies in the chunk that starts at step 18 (21 steps) / 42 (45 steps): everything before is durable
    chunk_start = steps - (steps % per_env) % 6
    assert index["durable"] == chunk_start and index["dirty_end"] == chunk_start + min(6, per_env - chunk_start % per_env)
    recovered = DiskReplay(SPEC, capacity, 2, 4, directory=directory, chunk=6)
    kept = recovered.recover()
    lost_old = index["dirty_end"] - chunk_start  # the unfinished chunk's slots held these many older steps
    assert kept == min(chunk_start, per_env - lost_old)
    batch = recovered.sample(512)
    t = batch["vector"][..., 1].astype(int)
    assert t.max() == chunk_start - 1 and t.min() == chunk_start - kept
    expected = np.stack([make_step(int(s), 2)["image"][int(e)] for s, e in zip(t.ravel(), batch["vector"][..., 0].ravel().astype(int))])
    np.testing.assert_array_equal(batch["image"].reshape(expected.shape), expected)  # intact data, not just counters
    recovered.add(make_step(chunk_start, 2))  # and the writer can go on from there
    assert recovered.added == 2 * (chunk_start + 1)
    recovered.close()


def test_ram_and_disk_estimates():
    image = {"image": ((64, 64, 3), np.uint8), "action": ((6,), np.float32), "reward": ((), np.float32)}
    per_step = 64 * 64 * 3 + 6 * 4 + 4
    assert Replay.estimate_bytes(image, 10_000_000, 40) == per_step * 10_000_000
    assert DiskReplay.estimate_ram(image, num_envs=40, chunk=1024, batch=4, length=1024) == per_step * (40 * 1024 + 8192)


def test_files_are_sparse_and_the_directory_is_relative_to_the_logdir(tmp_path):
    from r2i import config as cfgmod
    from r2i.replay_disk import make_replay

    config = cfgmod.make_config("default", {"replay.backend": "disk", "replay.capacity": 1_000_000, "behavior.imag_starts": 0,
                                            "replay.chunk": 4096, "run.batch_length": 8})
    replay = make_replay(config, SPEC, 4, tmp_path)
    replay.add(make_step(0, 4))
    replay.close()
    files = list((tmp_path / "replay").glob("chunk_*.bin"))
    assert len(files) == 1 and os.stat(files[0]).st_blocks * 512 < files[0].stat().st_size / 10
    with pytest.raises(ConfigError, match="replay.backend"):
        cfgmod.make_config("default", {"replay.backend": "tape"})


def test_a_run_resumes_its_disk_replay_from_the_checkpoint(tmp_path):
    """Trainer hooks: the disk backend is built from the config, its checkpoint holds no data, and a resumed run has
    the replay a run on the in-memory ring has (prefill only: the hooks do not depend on updates, which cost compiles)."""
    from test_run import tiny_config

    from r2i.run import Trainer

    steps = {"run.steps": 40, "run.prefill": 1000}
    memory = Trainer(tiny_config(tmp_path / "a", **steps), quiet=True)
    memory.run()
    disk = {"replay.backend": "disk", "replay.chunk": 16, **steps}
    stopped = Trainer(tiny_config(tmp_path / "b", **disk), quiet=True)
    stopped.run()
    stopped.close()
    assert (tmp_path / "b" / "replay" / "index.json").exists()
    assert sum(f.stat().st_size for f in (tmp_path / "b" / "checkpoints").rglob("replay/*")) < 4096  # no data copied
    resumed = Trainer(tiny_config(tmp_path / "b", **disk), quiet=True)
    assert resumed.resumed and len(resumed.replay) == len(memory.replay) == 40
    assert_same_samples(memory.replay, resumed.replay)
    memory.close()
    resumed.close()
