"""The adjoint scan (r2i.scan_grad) is `jax.lax.scan` with another backward pass: equal values and gradients (with
respect to parameters, initial carry and inputs), on a toy cell with resets and random draws, and on the GRU world
model's filter at batch 1, where it is used.

Tolerances: float32; the adjoint sums the per-step parameter gradients in another order than JAX's transpose of the
scan, so the two agree to ~1e-6 relative (observed ≤ 3e-6); values are the same operations (compared to 1e-6).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from r2i import scan_grad
from r2i.agent import Agent
from r2i.config import make_config
from r2i.spaces import ActionSpace, Space


def assert_grads_close(got, want, rtol=1e-5):
    """Same tree; every leaf's largest difference within rtol of that leaf's largest entry (an elementwise rtol would
    fail on entries that are rounding noise around zero)."""
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for (path, g), w in zip(jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want)):
        diff, scale = np.abs(np.asarray(g) - np.asarray(w)).max(), max(np.abs(np.asarray(w)).max(), 1e-12)
        assert diff <= rtol * scale, f"{jax.tree_util.keystr(path)}: {diff} > {rtol}·{scale}"


def toy_step(params, carry, x_t, consts):
    """A reset-aware tanh cell with a noisy output: carry (B, D), x_t (B, E), consts = (is_first (B,), key)."""
    first, key = consts
    carry = jnp.where(first[:, None], params["c0"], carry)
    h = jnp.tanh(carry @ params["w"] + x_t @ params["u"] + params["b"])
    return h, (h + 0.1 * jax.random.normal(key, h.shape), jnp.sum(h * h, -1))


@pytest.mark.parametrize("unroll", [1, 3, scan_grad.UNROLL])
def test_adjoint_scan_equals_lax_scan_on_a_toy_cell(unroll, monkeypatch):
    """Unrolled or not, and with a remainder (40 steps, 3 per iteration), the loops give the scan's values and
    gradients."""
    monkeypatch.setattr(scan_grad, "UNROLL", unroll)
    t, b, d, e = 40, 3, 4, 5
    keys = jax.random.split(jax.random.key(0), 6)
    params = {"w": 0.6 * jax.random.normal(keys[0], (d, d)), "u": jax.random.normal(keys[1], (e, d)),
              "b": jnp.full((d,), 0.1), "c0": jax.random.normal(keys[2], (d,))}
    carry = jax.random.normal(keys[3], (b, d))
    xs = jax.random.normal(keys[4], (t, b, e))
    first = np.zeros((t, b), bool)
    first[[7, 20], 1] = True
    consts = (jnp.asarray(first), jax.random.split(keys[5], t))

    def loss(scan):
        def f(params, carry, xs):
            last, (noisy, energy) = scan(toy_step, params, carry, xs, consts)
            return jnp.sum(1.3 * last) + jnp.sum(jnp.sin(noisy)) + 0.1 * jnp.sum(energy * jnp.arange(t)[:, None])

        return jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2)))

    (value, grads), (value_ref, grads_ref) = loss(scan_grad.adjoint_scan)(params, carry, xs), loss(
        scan_grad.plain_scan)(params, carry, xs)
    np.testing.assert_allclose(value, value_ref, rtol=1e-6)
    assert_grads_close(grads, grads_ref)
    assert np.abs(np.asarray(grads[0]["c0"])).max() > 1e-3  # the resets reach the gradient: not vacuous


@pytest.mark.parametrize("latent_input", ["sample", "probs"])
def test_gru_filter_gradient_at_batch_one_equals_lax_scan(latent_input, monkeypatch):
    """The GRU filter at B = 1 runs the adjoint scan; its gradient with respect to the parameters, the embeddings and
    the initial carry equals that of the same filter through `jax.lax.scan` (episode starts inside the window)."""
    config = make_config("tiny", {"model.sequence": "gru", "model.latent_input": latent_input})
    agent = Agent.from_config(config, {"vec": Space((5,))}, ActionSpace("discrete", nvec=(4,)))
    world_model = agent.world_model(agent.init(jax.random.key(0)).params)
    seq = world_model.seq
    graph, params = nnx.split(seq)
    t = 48
    rng = np.random.default_rng(1)
    embed = jnp.asarray(rng.standard_normal((1, t, world_model.embed_size)), jnp.float32)
    action = jax.nn.one_hot(jnp.asarray(rng.integers(0, 4, (1, t))), 4)
    is_first = jnp.zeros((1, t), bool).at[0, jnp.array([17, 30])].set(True)
    carry = {name: jnp.asarray(rng.standard_normal(v.shape), jnp.float32) for name, v in seq.initial(1).items()}

    def gradient():
        """A new function each time, so that the jitted reference is traced anew (JAX caches traces per function)."""

        def f(params, carry, embed):
            model = nnx.merge(graph, params)
            last, out = model.filter(carry, embed, action, is_first, jax.random.key(2))
            weights = jnp.linspace(0.1, 1.0, t)[None, :, None]
            return (jnp.sum(jnp.sin(out["h"]) * weights) + 0.01 * jnp.sum(out["post"]) + jnp.sum(out["prior"][..., 0])
                    + jnp.sum(out["z"] * out["h"][..., : out["z"].shape[-1]]) + jnp.sum(last["h"] ** 2))

        return jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2)))

    value, grads = gradient()(params, carry, embed)
    monkeypatch.setattr(scan_grad, "adjoint_scan", scan_grad.plain_scan)
    value_ref, grads_ref = gradient()(params, carry, embed)
    np.testing.assert_allclose(value, value_ref, rtol=1e-6)
    assert_grads_close(grads, grads_ref)
    assert np.abs(np.asarray(grads[1]["h"])).max() > 1e-3  # the carry reaches the loss before the first reset
