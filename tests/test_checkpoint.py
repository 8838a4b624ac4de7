"""Checkpointer: exact round trips, pruning, atomicity (leftovers and a real SIGKILL)."""

import functools
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _xla import subprocess_env
from flax import nnx, struct

from r2i.checkpoint import Checkpointer, CheckpointError, CheckpointMismatchError


@struct.dataclass
class State:
    params: dict
    opt_state: Any
    key: jax.Array
    step: jax.Array


class Model(nnx.Module):
    def __init__(self, din: int, rngs: nnx.Rngs):
        self.linear = nnx.Linear(din, 4, rngs=rngs)
        self.norm = nnx.LayerNorm(4, rngs=rngs)
        self.lam = nnx.Param(jax.random.normal(rngs.params(), (3,), jnp.complex64))


@functools.partial(jax.jit, static_argnames="din")  # one compilation instead of many eager ops: faster
def make_state(seed: int = 0, din: int = 3) -> State:
    rngs = nnx.Rngs(jax.random.key(seed))
    model = Model(din, rngs)
    actor = nnx.Linear(4, 2, rngs=rngs)
    params = {"model": nnx.state(model, nnx.Param), "actor": nnx.state(actor)}
    tx = optax.chain(
        optax.multi_transform(
            {"model": optax.clip_by_global_norm(1.0), "actor": optax.clip_by_global_norm(2.0)},
            {"model": "model", "actor": "actor"},
        ),
        optax.multi_transform(
            {
                "model": optax.adamw(1e-3, weight_decay=0.1, mask=lambda p: jax.tree.map(lambda _: True, p)),
                "actor": optax.adam(1e-3),
            },
            {"model": "model", "actor": "actor"},
        ),
    )
    opt_state = tx.init(params)
    # One optimiser step so that the moments are not all zero.
    grads = jax.tree.map(lambda p: jnp.ones_like(p) * (seed + 1), params)
    _, opt_state = tx.update(grads, opt_state, params)
    return State(params=params, opt_state=opt_state, key=jax.random.key(seed), step=jnp.array(seed, jnp.int32))


def make_replay(n: int = 16, fill: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(fill)
    return {
        "data_image": rng.integers(0, 255, (2, n, 8, 8, 3), dtype=np.uint8),
        "data_reward": rng.standard_normal((2, n), dtype=np.float32),
        "data_is_first": rng.random((2, n)) < 0.1,
        "added": np.array(2 * n + fill, np.int64),
        "rng_state": np.array([2**64 - 1, 0, 3, 4, 0, 0], np.uint64),
    }


def bits(x):
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    return np.asarray(x)


def assert_same_state(a, b):
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for (path, x), y in zip(jax.tree_util.tree_flatten_with_path(a)[0], jax.tree.leaves(b)):
        name = jax.tree_util.keystr(path)
        assert isinstance(x, jax.Array), name
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert bits(x).tobytes() == bits(y).tobytes(), name


def test_round_trip_exact(tmp_path):
    state = make_state(1)
    leaves = jax.tree.leaves(state)
    dtypes = {str(x.dtype) for x in leaves}
    assert {"float32", "complex64", "int32", "key<fry>"} <= dtypes
    assert any(x.ndim == 0 for x in leaves)
    assert "MaskedNode" in str(jax.tree_util.tree_structure(state.opt_state))
    replay = make_replay()
    replay["big"] = np.random.default_rng(0).standard_normal((1024, 1024), dtype=np.float32)  # 4 MB
    meta = {"step": 12, "config": {"lr": 1e-3, "name": "x", "sizes": [1, 2]}, "np_rng": [2**100 + 7, 3]}

    ckpt = Checkpointer(tmp_path / "ckpt")
    path = ckpt.save(12, state, replay, meta)
    assert path.is_dir() and ckpt.steps() == [12] and ckpt.latest() == 12

    restored, replay2, meta2 = ckpt.restore(jax.eval_shape(lambda: make_state(0)))
    assert_same_state(restored, state)
    assert jax.random.key_data(restored.key).tolist() == jax.random.key_data(state.key).tolist()
    assert list(replay2) == list(replay)
    for key, array in replay.items():
        assert replay2[key].dtype == array.dtype and replay2[key].shape == array.shape
        np.testing.assert_array_equal(replay2[key], array)
    assert meta2 == meta

    # A concrete target works too; the restored state is usable (e.g. by nnx.merge).
    again, replay3, _ = ckpt.restore(make_state(5), step=12, mmap_replay=True)
    assert_same_state(again, state)
    np.testing.assert_array_equal(replay3["big"], replay["big"])
    model = nnx.merge(nnx.graphdef(Model(3, nnx.Rngs(0))), again.params["model"])
    assert model.linear(jnp.ones((1, 3))).shape == (1, 4)


def test_mismatch_errors(tmp_path):
    ckpt = Checkpointer(tmp_path)
    ckpt.save(1, make_state(0, din=3), make_replay(), {})
    with pytest.raises(CheckpointMismatchError) as e:
        ckpt.restore(jax.eval_shape(lambda: make_state(0, din=5)))
    msg = str(e.value)
    assert "['linear']['kernel']" in msg and "float32[3,4]" in msg and "float32[5,4]" in msg and "--force" in msg

    other = make_state(0)
    other = other.replace(params={**other.params, "critic": nnx.state(nnx.Linear(2, 2, rngs=nnx.Rngs(0)))})
    with pytest.raises(CheckpointMismatchError, match=r"this run has .*\['critic'\].* which the checkpoint lacks"):
        ckpt.restore(jax.eval_shape(lambda: other))

    wrong_dtype = make_state(0).replace(step=jnp.array(0.0, jnp.float32))
    with pytest.raises(CheckpointMismatchError, match=r"\.step is int32\[\] in the checkpoint but float32\[\]"):
        ckpt.restore(wrong_dtype)

    with pytest.raises(CheckpointError, match="no complete checkpoint for step 7"):
        ckpt.restore(make_state(0), step=7)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        Checkpointer(tmp_path / "empty").restore(make_state(0))


def test_keep_and_latest(tmp_path):
    state = {"w": jnp.zeros(3), "n": jnp.array(0, jnp.int32)}
    ckpt = Checkpointer(tmp_path, keep=2)
    for step in (10, 20, 30):
        ckpt.save(step, {"w": jnp.full(3, step, jnp.float32), "n": jnp.array(step, jnp.int32)}, {}, {"s": step})
    assert ckpt.steps() == [20, 30] and ckpt.latest() == 30
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt_0000000020", "ckpt_0000000030"]

    # Resuming from an older checkpoint continues that timeline: latest() is the one written last.
    restored, _, meta = ckpt.restore(state, step=20)
    assert meta == {"s": 20} and int(restored["n"]) == 20
    ckpt.save(25, restored, {}, {"s": 25})
    assert ckpt.steps() == [25, 30] and ckpt.latest() == 25
    # Saving an existing step replaces it.
    ckpt.save(25, {"w": jnp.ones(3), "n": jnp.array(26, jnp.int32)}, {}, {"s": 26})
    assert ckpt.steps() == [25, 30] and ckpt.restore(state)[2] == {"s": 26}

    everything = Checkpointer(tmp_path / "all", keep=None)
    for step in range(4):
        everything.save(step, state)
    assert everything.steps() == [0, 1, 2, 3]
    assert everything.restore(state, step=0)[1:] == ({}, {})


def test_leftovers_of_a_crash_are_ignored_and_cleaned(tmp_path):
    state = {"w": jnp.arange(4.0)}
    ckpt = Checkpointer(tmp_path, keep=2)
    ckpt.save(1, state, {"x": np.arange(3)}, {"step": 1})

    # A dead writer's temporary directory, a visible checkpoint without checkpoint.json and a half-deleted one.
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], check=False, capture_output=True, text=True
    )
    pid = int(dead.stdout)
    host = ckpt._host
    tmp = tmp_path / f".tmp-{pid}-abcd1234-{host}"
    (tmp / "replay").mkdir(parents=True)
    (tmp / "replay" / "x.npy").write_bytes(b"\x93NUMPY partial")
    partial = tmp_path / "ckpt_0000000009"
    (partial / "state").mkdir(parents=True)
    deleting = tmp_path / f".del-{pid}-0000beef-{host}"
    deleting.mkdir()
    # A live writer's temporary directory (this test's parent process) must be left alone.
    live = tmp_path / f".tmp-{os.getppid()}-12345678-{host}"
    live.mkdir()

    ckpt = Checkpointer(tmp_path, keep=2)
    assert not tmp.exists() and not deleting.exists() and live.exists()
    assert ckpt.steps() == [1] and ckpt.latest() == 1
    _, replay, meta = ckpt.restore(state)
    assert meta == {"step": 1} and replay["x"].tolist() == [0, 1, 2]

    ckpt.save(2, {"w": jnp.arange(4.0) + 2}, {"x": np.arange(3) + 2}, {"step": 2})
    assert ckpt.latest() == 2 and ckpt.steps() == [1, 2]
    assert int(ckpt.restore(state)[0]["w"][0]) == 2

    # Crash between moving a replaced checkpoint aside and moving its replacement in: the old one comes back.
    old = tmp_path / f".old-{pid}-0badf00d-{host}"
    os.replace(ckpt.path(2), old)
    assert Checkpointer(tmp_path).steps() == [1, 2] and not old.exists()
    live.rmdir()


def test_failed_save_leaves_nothing(tmp_path):
    ckpt = Checkpointer(tmp_path)
    ckpt.save(1, {"w": jnp.ones(2)})

    class Boom:
        def __array__(self, dtype=None, copy=None):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        ckpt.save(2, {"w": jnp.ones(2)}, {"x": Boom()})
    with pytest.raises(TypeError, match="JSON"):
        ckpt.save(3, {"w": jnp.ones(2)}, {}, {"bad": object()})
    with pytest.raises(ValueError, match="file name"):
        ckpt.save(4, {"w": jnp.ones(2)}, {"../x": np.ones(2)})
    assert ckpt.steps() == [1] and sorted(p.name for p in tmp_path.iterdir()) == ["ckpt_0000000001"]


CHILD = textwrap.dedent(
    """
    import sys
    import jax.numpy as jnp
    import numpy as np
    from r2i.checkpoint import Checkpointer

    ckpt = Checkpointer(sys.argv[1], keep=2)
    step = 0
    while True:
        step += 1
        state = {"w": jnp.full((64, 64), step, jnp.float32), "step": jnp.array(step, jnp.int32)}
        replay = {"data": np.full((2, 1024, 1024), step, np.int32), "n": np.array(step)}  # 8 MB
        ckpt.save(step, state, replay, {"step": step})
        print(step, flush=True)
    """
)


def test_sigkill_during_saves(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    directory = tmp_path / "ckpt"
    child = subprocess.Popen([sys.executable, str(script), str(directory)], stdout=subprocess.PIPE, text=True)
    try:
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(child.stdout), daemon=True)
        reader.start()
        deadline = time.monotonic() + 60
        while len(lines) < 2 and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(lines) >= 2, f"child saved {len(lines)} checkpoints, exit code {child.poll()}"
        time.sleep(np.random.default_rng().uniform(0.0, 0.3))  # kill at a random point of a later save
    finally:
        child.kill()
        child.wait()
    reader.join(timeout=5)
    written = int(lines[-1])

    ckpt = Checkpointer(directory, keep=2)
    step = ckpt.latest()
    assert step is not None and step >= written and len(ckpt.steps()) <= 2
    assert not [p for p in directory.iterdir() if p.name.startswith(".")]  # leftovers cleaned
    state, replay, meta = ckpt.restore({"w": jnp.zeros((64, 64)), "step": jnp.array(0, jnp.int32)})
    assert meta == {"step": step} and int(state["step"]) == step
    assert bool((state["w"] == step).all())
    assert replay["data"].shape == (2, 1024, 1024) and bool((replay["data"] == step).all()) and int(replay["n"]) == step
    ckpt.save(step + 1, state, replay, meta)
    assert ckpt.latest() == step + 1


def test_checkpoint_json_describes_contents(tmp_path):
    ckpt = Checkpointer(tmp_path)
    path = ckpt.save(3, {"k": jax.random.key(1), "c": jnp.ones(2, jnp.complex64)}, {"x": np.zeros((), np.int64)})
    info = json.loads((path / "checkpoint.json").read_text())
    assert info["step"] == 3 and info["replay"] == {"x": {"shape": [], "dtype": "<i8"}}
    assert sorted(map(tuple, (tuple(leaf[:1]) + (leaf[2],) for leaf in info["state"]))) == [
        ("['c']", "complex64"),
        ("['k']", "key<fry>"),
    ]


def test_restore_follows_target_sharding(tmp_path):
    """On two (virtual CPU) devices: a sharded target gets its sharding back, a bare abstract one the default device."""
    code = textwrap.dedent(
        """
        import sys
        import jax, jax.numpy as jnp, numpy as np
        from jax.sharding import Mesh, NamedSharding, PartitionSpec, SingleDeviceSharding
        from r2i.checkpoint import Checkpointer

        assert len(jax.devices()) == 2
        replicated = NamedSharding(Mesh(np.array(jax.devices()), ("data",)), PartitionSpec())
        state = jax.device_put({"w": jnp.arange(6.0), "key": jax.random.key(3)}, replicated)
        ckpt = Checkpointer(sys.argv[1])
        ckpt.save(1, state)
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)
        for target in (state, abstract):
            restored, _, _ = ckpt.restore(target)
            assert all(x.sharding == replicated for x in jax.tree.leaves(restored))
        bare = jax.eval_shape(lambda: state)  # eval_shape drops shardings
        restored, _, _ = ckpt.restore(bare)
        assert all(x.sharding == SingleDeviceSharding(jax.devices()[0]) for x in jax.tree.leaves(restored))
        assert restored["w"].tolist() == list(range(6))
        print("ok")
        """
    )
    env = subprocess_env("--xla_force_host_platform_device_count=2")
    cmd = [sys.executable, "-c", code, str(tmp_path)]
    out = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]
