"""Fault injection on the checkpoint path: a process killed at every stage of a save, a damaged newest checkpoint,
and a full disk (a real small tmpfs where this machine allows mounting one, and a simulated ENOSPC everywhere) —
after each, the newest intact checkpoint must restore exactly."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

import r2i.checkpoint as ck
from r2i.checkpoint import Checkpointer, CheckpointError


def _state(value: float) -> dict:
    return {"w": jnp.full((3,), value, jnp.float32), "n": jnp.asarray(int(value), jnp.int32)}


def _replay(value: float, size: int = 16) -> dict:
    return {"obs": np.full((size,), value, np.float32)}


TARGET = _state(0.0)


def _restored_value(directory: Path) -> tuple[int, float]:
    """(step, value) of the newest intact checkpoint; the state, replay and meta must agree with each other."""
    step, state, replay, meta = Checkpointer(directory).restore_intact(TARGET)
    value = float(state["w"][0])
    np.testing.assert_array_equal(np.asarray(state["w"]), np.full(3, value, np.float32))
    np.testing.assert_array_equal(replay["obs"], np.full(16, value, np.float32))
    assert meta == {"value": value} and step == int(value)
    return step, value


class _Killed(BaseException):
    """Stands for SIGKILL: not an Exception, and once raised nothing of the writer runs any more (no clean-up)."""


class _Stages:
    """Counts the stages of a save (file writes, fsyncs, renames, deletions, orbax's write) and 'kills' the writer
    at stage `kill_at`: that call and every later one raise _Killed, so no clean-up handler gets to run.

    A call made inside a counted stage (the per-file fsyncs of `_fsync_tree`) is not a stage of its own: how many
    files orbax's OCDBT writer leaves depends on thread timing, so counting them made the number of stages differ
    between two saves of the same state (a save with fewer files then outran `kill_at`: CI saw DID NOT RAISE)."""

    def __init__(self, monkeypatch, directory: Path, kill_at: int | None):
        self.count, self.kill_at, self.dead, self.names, self.depth = 0, kill_at, False, [], 0
        self.directory = str(directory)
        for name in ("_write_file", "_fsync_tree", "_fsync_path"):
            monkeypatch.setattr(ck, name, self._wrap(name, getattr(ck, name)))
        monkeypatch.setattr(np, "save", self._wrap("np.save", np.save))
        # os.replace and shutil.rmtree are global: count only the calls on the checkpoint directory's entries.
        monkeypatch.setattr(os, "replace", self._wrap("os.replace", os.replace, path_arg=True))
        monkeypatch.setattr(shutil, "rmtree", self._wrap("rmtree", shutil.rmtree, path_arg=True))
        monkeypatch.setattr(ocp.StandardCheckpointer, "save",
                            self._wrap("orbax.save", ocp.StandardCheckpointer.save))

    def _wrap(self, name, fn, path_arg=False):
        def wrapped(*args, **kwargs):
            if path_arg and not str(args[0]).startswith(self.directory):
                return fn(*args, **kwargs)
            if self.dead:
                raise _Killed(name)
            if self.depth:
                return fn(*args, **kwargs)
            self.count += 1
            self.names.append(name)
            if self.kill_at is not None and self.count == self.kill_at:
                self.dead = True
                raise _Killed(name)
            self.depth += 1
            try:
                return fn(*args, **kwargs)
            finally:
                self.depth -= 1

        return wrapped


def _two_checkpoints(directory: Path) -> None:
    ckpt = Checkpointer(directory, keep=2)
    for value in (1.0, 2.0):
        ckpt.save(int(value), _state(value), _replay(value), {"value": value})


@pytest.mark.parametrize("new_step", [3, 2], ids=["new-step", "replace-existing-step"])
def test_kill_at_every_stage_of_a_save_leaves_a_restorable_checkpoint(tmp_path, monkeypatch, new_step):
    template = tmp_path / "template"
    _two_checkpoints(template)
    value = 3.0 if new_step == 3 else 2.0  # re-saving step 2 writes the same value (a resumed run re-saving a step)

    with monkeypatch.context() as patch:  # a full save, to count its stages
        probe = tmp_path / "probe"
        shutil.copytree(template, probe)
        stages = _Stages(patch, probe, None)
        Checkpointer(probe, keep=2).save(new_step, _state(value), _replay(value), {"value": value})
    names = stages.names
    assert {"orbax.save", "np.save", "_write_file", "os.replace"} <= set(names), names

    for kill_at in range(1, len(names) + 1):
        directory = tmp_path / f"kill{kill_at}"
        shutil.copytree(template, directory)
        with monkeypatch.context() as patch:
            killer = _Stages(patch, directory, kill_at)
            ckpt = Checkpointer(directory, keep=2)
            with pytest.raises(_Killed):
                ckpt.save(new_step, _state(value), _replay(value), {"value": value})
        # The next process (a new Checkpointer cleans up after dead writers) restores the newest intact checkpoint:
        # the new one if the save got far enough, else the one before — never a broken one.
        step, restored = _restored_value(directory)
        assert (step, restored) in {(new_step, value), (2, 2.0)}, (kill_at, killer.names[-1], step)
        left = [p.name for p in directory.iterdir() if p.name.startswith(".")]
        assert not left, (kill_at, left)
        assert Checkpointer(directory).steps() in ([1, 2], [2, 3], [1, 2, 3]), kill_at


def _damage(path: Path, how: str) -> None:
    if how == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:  # flip one byte, same size
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("what, how", [("state", "truncate"), ("state", "flip"), ("replay", "truncate"),
                                       ("meta.json", "flip")])
def test_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, what, how):
    _two_checkpoints(tmp_path)
    newest = Checkpointer(tmp_path).path(2)
    files = sorted(p for p in (newest / what).rglob("*") if p.is_file()) if (newest / what).is_dir() else [
        newest / what]
    _damage(max(files, key=lambda p: p.stat().st_size), how)
    warnings = []
    step, state, replay, meta = Checkpointer(tmp_path).restore_intact(TARGET, warn=warnings.append)
    assert step == 1 and meta == {"value": 1.0} and float(state["w"][0]) == 1.0
    assert "ckpt_0000000002 is damaged" in warnings[0] and "step 1" in warnings[-1]
    assert all("\n" not in w for w in warnings)


def test_restore_without_replay_does_not_read_it(tmp_path):
    _two_checkpoints(tmp_path)
    shutil.rmtree(Checkpointer(tmp_path).path(2) / "replay")  # e.g. copied without the (large) replay
    step, state, replay, _ = Checkpointer(tmp_path).restore_intact(TARGET, replay=False)
    assert step == 2 and replay == {} and float(state["w"][0]) == 2.0


def test_simulated_full_disk_is_one_line_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    _two_checkpoints(tmp_path)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def full_in_orbax(*args, **kwargs):  # tensorstore reports it inside a wrapped error, by message only
        try:
            raise OSError(errno.ENOSPC, "write failed")
        except OSError as error:
            raise ValueError("Error writing local file: No space left on device [OS error 28]") from error

    for target, name, fake in ((np, "save", full), (ocp.StandardCheckpointer, "save", full_in_orbax)):
        with monkeypatch.context() as patch:
            patch.setattr(target, name, fake)
            with pytest.raises(CheckpointError) as caught:
                Checkpointer(tmp_path).save(3, _state(3.0), _replay(3.0), {"value": 3.0})
        message = str(caught.value)
        assert "\n" not in message and "No space left on device" in message
        assert "the previous checkpoint (step 2) is intact" in message and "Free disk space" in message
        assert _restored_value(tmp_path) == (2, 2.0)
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 1 MiB tmpfs, where the machine lets this user mount one (root in a container that allows it)."""
    mount = tmp_path / f"tmpfs-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root; the simulated ENOSPC test covers the same path")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_real_full_disk_on_a_small_tmpfs(small_tmpfs):
    ckpt = Checkpointer(small_tmpfs / "checkpoints")
    ckpt.save(1, _state(1.0), _replay(1.0), {"value": 1.0})
    with pytest.raises(CheckpointError) as caught:  # 2 MiB of replay on a 1 MiB disk
        ckpt.save(2, _state(2.0), {"obs": np.zeros(512 * 1024, np.float32)}, {"value": 2.0})
    assert "\n" not in str(caught.value) and "No space left on device" in str(caught.value)
    assert _restored_value(small_tmpfs / "checkpoints") == (1, 1.0)
    with pytest.raises(CheckpointError) as caught:  # a state too large for the disk fails inside orbax
        noise = np.random.default_rng(0).standard_normal(3 * 1024 * 1024 // 4).astype(np.float32)  # incompressible
        ckpt.save(2, {"w": jnp.asarray(noise), "n": jnp.asarray(2, jnp.int32)},
                  _replay(2.0), {"value": 2.0})
    assert "\n" not in str(caught.value) and "No space left on device" in str(caught.value)
    assert _restored_value(small_tmpfs / "checkpoints") == (1, 1.0)
