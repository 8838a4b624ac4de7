"""Properties of r2i.dists and of the return maths in r2i.behavior, against plain NumPy / Python definitions.

Tolerances: everything runs in float32. symlog/symexp round trips hold to rtol 1e-5 (a few ulps of exp/log1p, times
the derivative of exp at 20); two-hot decoding is exact up to float32 rounding of the interpolation (rtol 1e-5 in
symlog space); the return maths agree with float64 loops to rtol 1e-5. The sampler's frequency test uses a fixed seed
and a 5-sigma bound per class (a failure is not a fluke).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r2i import dists
from r2i.behavior import discount_weights, lambda_returns, return_scale
from r2i.config import BehaviorConfig

# Values across magnitudes, including 0, tiny, negative and ±1e4.
VALUES = np.array(
    [0.0, 1e-7, -1e-7, 1e-3, -1e-3, 0.3, -0.3, 1.0, -1.0, 2.5, -7.0, 42.0, -123.4, 1e3, -1e3, 9999.0, 1e4, -1e4],
    np.float32,
)


# ----------------------------------------------------------------------------------------------------------------------
# symlog / symexp
# ----------------------------------------------------------------------------------------------------------------------


def test_symlog_definition_and_symexp_inverse():
    x = jnp.asarray(VALUES)
    want = np.sign(VALUES) * np.log1p(np.abs(VALUES.astype(np.float64)))
    np.testing.assert_allclose(np.asarray(dists.symlog(x)), want, rtol=1e-6, atol=0)
    np.testing.assert_allclose(np.asarray(dists.symexp(dists.symlog(x))), VALUES, rtol=1e-5, atol=1e-12)
    y = jnp.linspace(-20.0, 20.0, 401)
    np.testing.assert_allclose(np.asarray(dists.symlog(dists.symexp(y))), np.asarray(y), rtol=1e-5, atol=1e-6)
    assert float(dists.symlog(jnp.float32(0.0))) == 0.0 and float(dists.symexp(jnp.float32(0.0))) == 0.0
    # Odd and monotone.
    np.testing.assert_array_equal(np.asarray(dists.symlog(-x)), -np.asarray(dists.symlog(x)))
    assert np.all(np.diff(np.asarray(dists.symlog(jnp.sort(x)))) >= 0)


# ----------------------------------------------------------------------------------------------------------------------
# Two-hot
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("num", [255, 31])
def test_twohot_encode_round_trips(num):
    bins = dists.twohot_bins(num)
    assert bins.shape == (num,) and bins.dtype == jnp.float32
    w = np.asarray(dists.twohot_encode(jnp.asarray(VALUES), bins))
    assert w.shape == (len(VALUES), num)
    assert np.all(w >= 0)
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-6)
    # At most two non-zero weights, on adjacent bins.
    for row in w:
        nz = np.flatnonzero(row)
        assert 1 <= len(nz) <= 2 and (len(nz) == 1 or nz[1] == nz[0] + 1), row[nz]
    # Decoding: the weighted bin centre is symlog(x); symexp of it is x.
    y = w @ np.asarray(bins, np.float64)
    np.testing.assert_allclose(y, np.sign(VALUES) * np.log1p(np.abs(VALUES.astype(np.float64))), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(dists.symexp(jnp.asarray(y, jnp.float32))), VALUES, rtol=1e-4, atol=1e-6)
    # 0 lands on the centre bin (odd counts), up to the float32 rounding of the bin centres.
    if num % 2:
        assert w[0, num // 2] > 1 - 1e-5
    # twohot_mean of log(two-hot weights) decodes back to x (softmax(log w) = w).
    mean = np.asarray(dists.twohot_mean(jnp.log(jnp.asarray(w)), bins))
    np.testing.assert_allclose(mean, VALUES, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("num", [255, 31])
def test_twohot_zero_logits_predict_exactly_zero(num):
    bins = np.asarray(dists.twohot_bins(num))
    assert bins[num // 2] == 0.0
    np.testing.assert_array_equal(bins, -bins[::-1])
    encoded = np.asarray(dists.twohot_encode(jnp.zeros(()), jnp.asarray(bins)))
    np.testing.assert_array_equal(encoded, np.eye(num)[num // 2])
    assert float(dists.twohot_mean(jnp.zeros((num,)), jnp.asarray(bins))) == 0.0


def test_twohot_out_of_range_goes_to_edge_bins():
    bins = dists.twohot_bins(255)
    w = np.asarray(dists.twohot_encode(jnp.asarray([1e12, -1e12, np.inf, -np.inf], jnp.float32), bins))
    np.testing.assert_array_equal(w[:, -1], [1.0, 0.0, 1.0, 0.0])
    np.testing.assert_array_equal(w[:, 0], [0.0, 1.0, 0.0, 1.0])
    np.testing.assert_allclose(w.sum(-1), 1.0)


def test_twohot_nll_is_minimal_at_the_encoding():
    bins = dists.twohot_bins(31)
    target = jnp.asarray(VALUES[:8])
    w = dists.twohot_encode(target, bins)
    best = dists.twohot_nll(jnp.log(w + 1e-30), target, bins)
    entropy = -jnp.sum(jnp.where(w > 0, w * jnp.log(jnp.maximum(w, 1e-30)), 0.0), -1)
    np.testing.assert_allclose(np.asarray(best), np.asarray(entropy), rtol=1e-4, atol=1e-5)
    other = dists.twohot_nll(jax.random.normal(jax.random.key(0), w.shape), target, bins)
    assert np.all(np.asarray(other) > np.asarray(best))


# ----------------------------------------------------------------------------------------------------------------------
# Categoricals: unimix and straight-through samples
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("unimix", [0.01, 0.1])
def test_unimix_keeps_every_probability_above_floor(unimix):
    classes = 6
    logits = jnp.asarray([[1e3, -1e3, 0.0, -50.0, 20.0, -1e4], [0.0] * 6, [-30.0, 30.0, -30.0, 30.0, -30.0, 30.0]])
    logp = dists.unimix_logits(logits, unimix)
    assert logp.dtype == jnp.float32
    probs = np.exp(np.asarray(logp, np.float64))
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-6)
    assert probs.min() >= unimix / classes * (1 - 1e-6)
    # The mixture of the softmax with the uniform distribution, exactly.
    z = np.asarray(logits, np.float64)
    softmax = np.exp(z - z.max(-1, keepdims=True))
    softmax /= softmax.sum(-1, keepdims=True)
    np.testing.assert_allclose(probs, (1 - unimix) * softmax + unimix / classes, rtol=1e-5)
    # unimix 0 is the plain log-softmax.
    np.testing.assert_allclose(np.asarray(dists.unimix_logits(logits, 0.0)), np.asarray(jax.nn.log_softmax(logits)))


def _probs():
    return np.array([[0.5, 0.25, 0.15, 0.07, 0.03], [0.01, 0.01, 0.01, 0.01, 0.96], [0.2, 0.2, 0.2, 0.2, 0.2]])


def test_onehot_sample_frequencies_match_probabilities():
    probs = _probs()
    n = 40_000
    logp = jnp.broadcast_to(jnp.log(jnp.asarray(probs, jnp.float32))[:, None], (3, n, 5))
    samples = np.asarray(jax.jit(dists.onehot_sample)(jax.random.key(123), logp))
    assert samples.shape == (3, n, 5)
    freq = np.round(samples).mean(1)
    sigma = np.sqrt(probs * (1 - probs) / n)
    assert np.all(np.abs(freq - probs) < 5 * sigma + 1e-9), (freq, probs)
    # Independent draws across the batch: consecutive samples of a uniform categorical agree ~1/5 of the time.
    idx = np.argmax(samples[2], -1)
    assert abs(np.mean(idx[1:] == idx[:-1]) - 0.2) < 5 * np.sqrt(0.16 / n)


def test_onehot_sample_never_picks_zero_probability_classes():
    logp = jnp.log(jnp.asarray([[0.0, 0.5, 0.0, 0.5, 0.0]], jnp.float32))
    samples = np.asarray(dists.onehot_sample(jax.random.key(0), jnp.broadcast_to(logp, (20_000, 5))))
    assert np.all(samples[:, [0, 2, 4]] == 0)


def test_onehot_sample_is_exactly_onehot_in_forward():
    logp = jax.nn.log_softmax(2.0 * jax.random.normal(jax.random.key(0), (4096, 7)))
    for sample in (dists.onehot_sample(jax.random.key(1), logp), dists.onehot_mode(logp)):
        s = np.asarray(sample)
        assert np.all((s == 0) | (s == 1)), f"{np.sum((s != 0) & (s != 1))} entries are neither 0 nor 1"
        np.testing.assert_array_equal(s.sum(-1), 1.0)


def test_onehot_sample_is_onehot_up_to_rounding_and_picks_the_mode():
    logp = jax.nn.log_softmax(2.0 * jax.random.normal(jax.random.key(0), (4096, 7)))
    s = np.asarray(dists.onehot_sample(jax.random.key(1), logp))
    np.testing.assert_array_equal(np.round(s).sum(-1), 1.0)
    np.testing.assert_allclose(s, np.round(s), atol=1.2e-7)
    m = np.asarray(dists.onehot_mode(logp))
    np.testing.assert_array_equal(np.argmax(m, -1), np.argmax(np.asarray(logp), -1))
    np.testing.assert_allclose(m, np.round(m), atol=1.2e-7)


@pytest.mark.parametrize("fn", ["sample", "mode"])
def test_onehot_straight_through_gradient_is_that_of_the_probabilities(fn):
    logits = jax.random.normal(jax.random.key(2), (3, 5))
    w = jax.random.normal(jax.random.key(3), (3, 5))
    pick = (lambda lp: dists.onehot_sample(jax.random.key(4), lp)) if fn == "sample" else dists.onehot_mode
    got = jax.grad(lambda x: jnp.sum(w * pick(jax.nn.log_softmax(x))))(logits)
    want = jax.grad(lambda x: jnp.sum(w * jax.nn.softmax(x)))(logits)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)
    assert np.abs(np.asarray(want)).max() > 1e-3


def test_categorical_kl_and_entropy():
    p = jax.nn.log_softmax(jax.random.normal(jax.random.key(0), (10, 6)))
    q = jax.nn.log_softmax(jax.random.normal(jax.random.key(1), (10, 6)))
    pn, qn = np.exp(np.asarray(p, np.float64)), np.exp(np.asarray(q, np.float64))
    np.testing.assert_allclose(np.asarray(dists.categorical_kl(p, q)), np.sum(pn * np.log(pn / qn), -1), rtol=1e-4)
    np.testing.assert_allclose(np.asarray(dists.categorical_kl(p, p)), 0.0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(dists.categorical_entropy(p)), -np.sum(pn * np.log(pn), -1), rtol=1e-5)


def test_bounded_normal_ranges_and_logp():
    raw = 10.0 * jax.random.normal(jax.random.key(0), (50, 6))
    mean, std = dists.bounded_normal(raw, 0.1, 1.0)
    assert mean.shape == std.shape == (50, 3)
    assert np.all(np.abs(np.asarray(mean)) <= 1.0)
    assert np.all((np.asarray(std) >= 0.1) & (np.asarray(std) <= 1.0))
    x = jax.random.normal(jax.random.key(1), mean.shape)
    m, s, xn = (np.asarray(v, np.float64) for v in (mean, std, x))
    want = np.sum(-0.5 * ((xn - m) / s) ** 2 - np.log(s) - 0.5 * np.log(2 * np.pi), -1)
    np.testing.assert_allclose(np.asarray(dists.normal_logp(x, mean, std)), want, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(np.asarray(dists.normal_entropy(std)), np.sum(0.5 * np.log(2 * np.pi * np.e * s**2), -1),
                               rtol=1e-5)


def test_bernoulli_nll():
    logits = jnp.asarray([-5.0, -0.5, 0.0, 2.0, 30.0])
    for target in (0.0, 1.0):
        z = np.asarray(logits, np.float64)
        want = np.logaddexp(0.0, -z) if target else np.logaddexp(0.0, z)  # −log σ(z), −log(1 − σ(z)) stably
        np.testing.assert_allclose(np.asarray(dists.bernoulli_nll(logits, jnp.full(5, target))), want, rtol=1e-5)


# ----------------------------------------------------------------------------------------------------------------------
# Returns: λ-returns, percentile return scale, discount weights
# ----------------------------------------------------------------------------------------------------------------------


def lambda_returns_loop(reward, cont, value, discount, lam):
    """R_t = r_{t+1} + γ c_{t+1} ((1 − λ) V_{t+1} + λ R_{t+1}), R_H = V_H; reward/cont (H, N), value (H+1, N)."""
    reward, cont, value = (np.asarray(v, np.float64) for v in (reward, cont, value))
    h = reward.shape[0]
    ret = [None] * (h + 1)
    ret[h] = value[h]
    for t in reversed(range(h)):
        ret[t] = reward[t] + discount * cont[t] * ((1 - lam) * value[t + 1] + lam * ret[t + 1])
    return np.stack(ret[:h])


@pytest.mark.parametrize("discount,lam", [(0.997, 0.95), (0.9, 0.0), (0.8, 1.0), (1.0, 0.5)])
def test_lambda_returns_equal_python_loop(discount, lam):
    h, n = 7, 5
    ks = jax.random.split(jax.random.key(0), 3)
    reward = jax.random.normal(ks[0], (h, n))
    cont = (jax.random.uniform(ks[1], (h, n)) > 0.2).astype(jnp.float32) * 0.9
    value = 3.0 * jax.random.normal(ks[2], (h + 1, n))
    got = np.asarray(lambda_returns(reward, cont, value, discount, lam))
    assert got.shape == (h, n)
    np.testing.assert_allclose(got, lambda_returns_loop(reward, cont, value, discount, lam), rtol=1e-5, atol=1e-5)
    if lam == 0.0:  # one-step TD targets
        want = np.asarray(reward) + discount * np.asarray(cont) * np.asarray(value[1:])
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_return_scale_equals_numpy_ema_of_percentiles():
    cfg = BehaviorConfig(retnorm_decay=0.9, retnorm_low=0.05, retnorm_high=0.95)
    state = jnp.zeros((2,), jnp.float32)
    ref = np.zeros(2)
    fn = jax.jit(lambda s, r: return_scale(s, r, cfg))
    for i in range(6):
        returns = (10.0 * (i + 1)) * jax.random.normal(jax.random.key(i), (4, 33)) + i
        state, scale = fn(state, returns)
        flat = np.asarray(returns, np.float64).reshape(-1)
        batch = np.array([np.quantile(flat, 0.05), np.quantile(flat, 0.95)])
        ref = 0.9 * ref + 0.1 * batch
        np.testing.assert_allclose(np.asarray(state), ref, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(float(scale), max(1.0, ref[1] - ref[0]), rtol=1e-5)
    # Small returns: the scale is clipped at 1 (advantages are never blown up).
    _, scale = return_scale(jnp.zeros(2), 1e-3 * jnp.arange(10.0), cfg)
    assert float(scale) == 1.0


def test_discount_weights_equal_cumulative_product():
    h, n, discount = 6, 4, 0.95
    cont = (jax.random.uniform(jax.random.key(0), (h + 1, n)) > 0.25).astype(jnp.float32)
    got = np.asarray(discount_weights(cont, discount))
    c = np.asarray(cont, np.float64)
    want = np.zeros((h, n))
    for t in range(h):
        want[t] = np.prod(discount * c[: t + 1], 0) / discount
    assert got.shape == (h, n)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got[0], c[0])  # w_0 = c_0: a terminal start state gets no weight
