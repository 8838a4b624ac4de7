"""Properties of the S5 core: the parallel scan equals a step loop, resets isolate episodes, HiPPO init, shapes.

Tolerances: complex64 arithmetic over windows of ≤ 40 steps with |Λ̄| ≤ 1; values agree with a float64 NumPy loop to
rtol 1e-5 / atol 1e-5 (relative to the state scale), gradients with a JAX Python loop to rtol 1e-4 / atol 1e-4.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from r2i import ssm

B, T, P = 3, 37, 8
METHODS = ["sequential", "associative"]


def _complex(key, shape, scale=1.0):
    k1, k2 = jax.random.split(key)
    return (scale * jax.lax.complex(jax.random.normal(k1, shape), jax.random.normal(k2, shape))).astype(jnp.complex64)


def _stable_lam(key, shape):
    k1, k2 = jax.random.split(key)
    mag = jax.random.uniform(k1, shape, minval=0.5, maxval=0.99)
    phase = jax.random.uniform(k2, shape, minval=-np.pi, maxval=np.pi)
    return (mag * jnp.exp(1j * phase)).astype(jnp.complex64)


def _resets(kind, key):
    if kind == "none":
        return jnp.zeros((B, T), bool)
    if kind == "all":
        return jnp.ones((B, T), bool)
    r = jax.random.uniform(key, (B, T)) < 0.2
    return r.at[0, 0].set(True).at[1, T - 1].set(True).at[2, 0].set(True).at[2, 1].set(True)


def _inputs(seed=0, per_step_lam=False, batched_init=False, resets="random"):
    ks = jax.random.split(jax.random.PRNGKey(seed), 5)
    lam = _stable_lam(ks[0], (B, T, P) if per_step_lam else (P,))
    bu = _complex(ks[1], (B, T, P))
    is_first = _resets(resets, ks[2])
    x_carry = _complex(ks[3], (B, P), 2.0)
    x_init = _complex(ks[4], (B, P) if batched_init else (P,), 3.0)
    return lam, bu, is_first, x_carry, x_init


def numpy_loop(lam, bu, is_first, x_carry, x_init):
    """The definition, in float64 NumPy."""
    lam, bu, is_first = np.asarray(lam, np.complex128), np.asarray(bu, np.complex128), np.asarray(is_first)
    lam = np.broadcast_to(lam, bu.shape)
    x_init = np.broadcast_to(np.asarray(x_init, np.complex128), (bu.shape[0], bu.shape[2]))
    x = np.asarray(x_carry, np.complex128).copy()
    out = np.zeros(bu.shape, np.complex128)
    for t in range(bu.shape[1]):
        s = np.where(is_first[:, t, None], x_init, x)
        x = lam[:, t] * s + bu[:, t]
        out[:, t] = x
    return out


def jax_loop(lam, bu, is_first, x_carry, x_init):
    """The definition as a Python loop of JAX ops (an independent implementation to differentiate)."""
    lam = jnp.broadcast_to(lam, bu.shape)
    x_init = jnp.broadcast_to(x_init, (bu.shape[0], bu.shape[2]))
    x, out = x_carry, []
    for t in range(bu.shape[1]):
        x = lam[:, t] * jnp.where(is_first[:, t, None], x_init, x) + bu[:, t]
        out.append(x)
    return jnp.stack(out, 1)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("resets", ["random", "none", "all"])
@pytest.mark.parametrize("per_step_lam,batched_init", [(False, False), (True, True)])
def test_recurrence_equals_numpy_loop(method, resets, per_step_lam, batched_init):
    args = _inputs(1, per_step_lam, batched_init, resets)
    got = np.asarray(ssm.linear_recurrence(*args, method=method))
    want = numpy_loop(*args)
    assert got.shape == (B, T, P) and got.dtype == np.complex64
    scale = np.abs(want).max()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * scale)


def _loss(fn, w):
    return lambda *a: jnp.sum(jnp.real(w * fn(*a)))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("resets", ["random", "none"])
@pytest.mark.parametrize("per_step_lam", [False, True])
def test_recurrence_gradients_equal_loop(method, resets, per_step_lam):
    lam, bu, is_first, x_carry, x_init = _inputs(2, per_step_lam, False, resets)
    w = _complex(jax.random.PRNGKey(9), (B, T, P))
    scan = _loss(lambda lam_, b, c, x0: ssm.linear_recurrence(lam_, b, is_first, c, x0, method=method), w)
    loop = _loss(lambda lam_, b, c, x0: jax_loop(lam_, b, is_first, c, x0), w)
    got = jax.grad(scan, argnums=(0, 1, 2, 3))(lam, bu, x_carry, x_init)
    want = jax.grad(loop, argnums=(0, 1, 2, 3))(lam, bu, x_carry, x_init)
    for name, g, h in zip(["lam_bar", "bu", "x_carry", "x_init"], got, want):
        h = np.asarray(h)
        np.testing.assert_allclose(np.asarray(g), h, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(h).max()), err_msg=name)
    # The carried state only matters before the first reset, and x_init only after one.
    if resets == "none":
        assert np.all(np.asarray(got[3]) == 0)
    else:
        assert np.abs(np.asarray(got[3])).max() > 0


def _random_element(key, reset):
    k1, k2 = jax.random.split(key)
    a = jnp.zeros((P,), jnp.complex64) if reset else _stable_lam(k1, (P,))
    return a, _complex(k2, (P,))


def test_operator_is_associative_on_composed_operands_with_resets():
    """(e1·e2)·e3 == e1·(e2·e3) where the operands are themselves compositions that contain resets."""
    keys = jax.random.split(jax.random.PRNGKey(3), 9)
    flags = [False, True, False, False, True, True, False, True, False]
    el = [_random_element(k, r) for k, r in zip(keys, flags)]
    op = ssm.compose_affine
    e1, e2, e3 = op(el[0], el[1]), op(op(el[2], el[3]), el[4]), op(el[5], op(el[6], op(el[7], el[8])))
    left, right = op(op(e1, e2), e3), op(e1, op(e2, e3))
    for lhs, rhs in zip(left, right):
        np.testing.assert_allclose(np.asarray(lhs), np.asarray(rhs), rtol=1e-5, atol=1e-5)
    # A composition containing a reset ignores everything before it.
    a, b = op(op(el[0], el[1]), el[2])
    a2, b2 = op(op(_random_element(keys[5], False), el[1]), el[2])
    np.testing.assert_allclose(np.asarray(b), np.asarray(b2), rtol=1e-6)
    assert np.all(np.asarray(a) == 0) and np.all(np.asarray(a2) == 0)


def test_shape_errors_name_the_argument():
    lam, bu, is_first, x_carry, x_init = _inputs()
    with pytest.raises(ValueError, match="is_first"):
        ssm.linear_recurrence(lam, bu, is_first[:, 1:], x_carry, x_init)
    with pytest.raises(ValueError, match="x_carry"):
        ssm.linear_recurrence(lam, bu, is_first, x_carry[:, 1:], x_init)
    with pytest.raises(ValueError, match="method"):
        ssm.linear_recurrence(lam, bu, is_first, x_carry, x_init, method="fast")


def test_auto_method_follows_backend():
    expected = "sequential" if jax.default_backend() == "cpu" else "associative"
    assert ssm.default_method() == expected


# ----------------------------------------------------------------------------------------------------------------------
# Initialisation and discretisation
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 4, 16, 64])
def test_hippo_n_block_matches_eig_of_normal_part(n):
    lam, v = ssm.hippo_n_block(n)
    np.testing.assert_allclose(lam.real, -0.5)
    s = ssm.hippo_normal(n)
    ref = np.linalg.eig(s)[0]
    np.testing.assert_allclose(np.sort(lam.imag), np.sort(ref.imag), atol=1e-8 * n)
    np.testing.assert_allclose(ref.real, -0.5, atol=1e-8 * n)
    np.testing.assert_allclose(v.conj().T @ v, np.eye(n), atol=1e-10)
    np.testing.assert_allclose(v @ np.diag(lam) @ v.conj().T, s, atol=1e-8 * n)


def test_hippo_n_init_is_block_diagonal():
    lam, v, v_inv = ssm.hippo_n_init(16, 4)
    assert lam.shape == (16,) and v.shape == v_inv.shape == (16, 16)
    np.testing.assert_allclose(lam[:4], lam[4:8])
    assert np.all(v[:4, 4:] == 0) and np.all(v[4:8, :4] == 0)
    np.testing.assert_allclose(v @ v_inv, np.eye(16), atol=1e-10)
    with pytest.raises(ValueError, match="divisible"):
        ssm.hippo_n_init(10, 4)


@pytest.mark.parametrize("method", ["zoh", "bilinear"])
def test_discretization_is_stable_and_typed(method):
    lam, _, _ = ssm.hippo_n_init(64, 8)
    lam = jnp.asarray(lam, jnp.complex64)
    b_tilde = _complex(jax.random.PRNGKey(0), (64, 5))
    for step in [1e-3, 1e-1, 1.0, 10.0]:
        lam_bar, b_bar = ssm.discretize(lam, b_tilde, jnp.full((64,), step, jnp.float32), method)
        assert lam_bar.shape == (64,) and b_bar.shape == (64, 5)
        assert lam_bar.dtype == jnp.complex64 and b_bar.dtype == jnp.complex64
        assert np.all(np.abs(np.asarray(lam_bar)) < 1.0)
    # Both agree to first order for small steps: Λ̄ ≈ 1 + ΔΛ, B̄ ≈ ΔB̃.
    zoh = ssm.discretize(lam, b_tilde, jnp.full((64,), 1e-4), "zoh")
    bil = ssm.discretize(lam, b_tilde, jnp.full((64,), 1e-4), "bilinear")
    np.testing.assert_allclose(np.asarray(zoh[0]), np.asarray(bil[0]), atol=1e-6)
    np.testing.assert_allclose(np.asarray(zoh[1]), np.asarray(bil[1]), rtol=1e-3, atol=1e-8)


def test_layer_parameters_are_real_ssm_params():
    layer = ssm.S5Layer(6, 8, blocks=2, learned_init=True, rngs=nnx.Rngs(0))
    params = nnx.state(layer, ssm.SSMParam)
    names = set(params.keys())
    assert names == {"lam_re", "lam_im", "b_re", "b_im", "c_re", "c_im", "d", "log_step", "x0_re", "x0_im"}
    for leaf in jax.tree.leaves(params):
        assert leaf.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(layer.lam_re[...]), -0.5)
    step = np.exp(np.asarray(layer.log_step[...]))
    assert np.all(step >= 1e-3 * 0.999) and np.all(step <= 1e-1 * 1.001)
    assert layer.b_re[...].shape == (8, 6) and layer.c_re[...].shape == (6, 8) and layer.d[...].shape == (6,)


# ----------------------------------------------------------------------------------------------------------------------
# The stack: sequence mode equals step mode; resets isolate episodes
# ----------------------------------------------------------------------------------------------------------------------

H, NL = 6, 2


@pytest.fixture(scope="module")
def stack_fns():
    """Jitted sequence and step functions of a small stack with a learned (non-zero) initial state."""
    stack = ssm.S5Stack(H, P, NL, blocks=2, learned_init=True, discretization="bilinear", rngs=nnx.Rngs(1))
    # Give the learned initial state a value so that resets visibly matter.
    for block in stack.blocks:
        block.ssm.x0_re[...] = jax.random.normal(jax.random.PRNGKey(5), (P,))
        block.ssm.x0_im[...] = jax.random.normal(jax.random.PRNGKey(6), (P,))
    graph, state = nnx.split(stack)

    @jax.jit
    def sequence(state, u, is_first, carry):
        return nnx.merge(graph, state)(carry, u, is_first)

    @jax.jit
    def step(state, u, is_first, carry):
        return nnx.merge(graph, state).step(carry, u, is_first)

    return state, sequence, step


def _window(seed, t=T):
    ks = jax.random.split(jax.random.PRNGKey(seed), 3)
    u = jax.random.normal(ks[0], (B, t, H))
    is_first = (jax.random.uniform(ks[1], (B, t)) < 0.15).at[:, 0].set(False).at[0, 0].set(True)
    carry = _complex(ks[2], (B, NL, P))
    return u, is_first, carry


def test_stack_sequence_equals_repeated_steps(stack_fns):
    state, sequence, step = stack_fns
    u, is_first, carry = _window(0)
    states, out = sequence(state, u, is_first, carry)
    assert out.shape == (B, T, H) and states.shape == (B, T, NL, P) and states.dtype == jnp.complex64
    c, outs, xs = carry, [], []
    for t in range(T):
        c, o = step(state, u[:, t], is_first[:, t], c)
        outs.append(o)
        xs.append(c)
    np.testing.assert_allclose(np.asarray(out), np.stack(outs, 1), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(states), np.stack(xs, 1), rtol=1e-4, atol=1e-4)


def test_episode_starting_mid_window_equals_episode_alone(stack_fns):
    state, sequence, _ = stack_fns
    u, _, carry = _window(1)
    start = 13
    is_first = jnp.zeros((B, T), bool).at[:, start].set(True).at[:, 4].set(True)
    states, out = sequence(state, u, is_first, carry)
    # The same episode alone: its first step is the start of the window, whatever the carry.
    alone_first = jnp.zeros((B, T - start), bool).at[:, 0].set(True)
    other_carry = _complex(jax.random.PRNGKey(77), (B, NL, P), 10.0)
    states_alone, out_alone = sequence(state, u[:, start:], alone_first, other_carry)
    np.testing.assert_allclose(np.asarray(out[:, start:]), np.asarray(out_alone), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(states[:, start:]), np.asarray(states_alone), rtol=1e-5, atol=1e-5)
    # And the steps before the reset do depend on the carry (the test is not vacuous).
    _, out_other = sequence(state, u, is_first, other_carry)
    assert np.abs(np.asarray(out_other[:, :4]) - np.asarray(out[:, :4])).max() > 1e-3


@pytest.mark.parametrize("method", METHODS)
def test_stack_methods_agree_in_sequence_mode(method):
    stack = ssm.S5Stack(H, P, NL, blocks=2, method=method, rngs=nnx.Rngs(2))
    ref = ssm.S5Stack(H, P, NL, blocks=2, method="sequential", rngs=nnx.Rngs(2))
    u, is_first, carry = _window(3, 16)
    states, out = stack(carry, u, is_first)
    states_ref, out_ref = ref(carry, u, is_first)
    np.testing.assert_allclose(np.asarray(out), np.asarray(out_ref), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(states), np.asarray(states_ref), rtol=1e-4, atol=1e-4)


def test_ssm_stays_float32_under_bfloat16():
    stack = ssm.S5Stack(H, P, NL, blocks=2, dtype=jnp.bfloat16, rngs=nnx.Rngs(4))
    u, is_first, carry = _window(4, 8)
    states, out = stack(carry, u.astype(jnp.bfloat16), is_first)
    assert out.dtype == jnp.bfloat16
    assert states.dtype == jnp.complex64
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(nnx.state(stack, ssm.SSMParam)))
