"""Distributions used by the world model and the actor-critic, as small pure functions over arrays.

Shapes: `...` is any batch shape (e.g. (B, T) or (N,)); C classes, K bins, A action size.
All log-probabilities and losses are computed in float32.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# The one stop-gradient shorthand of the package: the world model, actor-critic and agent import it from here.
sg = jax.lax.stop_gradient


def symlog(x: jax.Array) -> jax.Array:
    """sign(x)·log(1 + |x|)."""
    return jnp.sign(x) * jnp.log1p(jnp.abs(x))


def symexp(x: jax.Array) -> jax.Array:
    """Inverse of symlog: sign(x)·(exp|x| − 1)."""
    return jnp.sign(x) * jnp.expm1(jnp.abs(x))


# ----------------------------------------------------------------------------------------------------------------------
# Categorical with uniform mixture and straight-through samples
# ----------------------------------------------------------------------------------------------------------------------


def unimix_logits(logits: jax.Array, unimix: float) -> jax.Array:
    """Log-probabilities of (1 − u)·softmax(logits) + u/C.  logits: (..., C) → (..., C) float32."""
    logits = logits.astype(jnp.float32)
    if unimix <= 0:
        return jax.nn.log_softmax(logits, -1)
    probs = jax.nn.softmax(logits, -1)
    probs = (1 - unimix) * probs + unimix / logits.shape[-1]
    return jnp.log(probs)


def onehot_sample(key: jax.Array, logp: jax.Array) -> jax.Array:
    """Straight-through one-hot sample: forward a one-hot, backward the gradient of the probabilities.

    logp: (..., C) normalised log-probabilities → (..., C) float32.
    Sampled by inverting the CDF with one uniform number per categorical (the Gumbel-max trick needs C of them; on a
    CPU the random bits dominated the imagination step), with the cumulative sum as a small matmul.
    """
    probs = jnp.exp(logp.astype(jnp.float32))
    classes = logp.shape[-1]
    # Full precision: TF32 / bfloat16 matmul passes on accelerators would perturb the sampling probabilities.
    cdf = jnp.matmul(probs, jnp.triu(jnp.ones((classes, classes), jnp.float32)), precision=jax.lax.Precision.HIGHEST)
    u = jax.random.uniform(key, logp.shape[:-1] + (1,), jnp.float32) * cdf[..., -1:]
    index = jnp.sum(cdf < u, -1)
    onehot = jax.nn.one_hot(index, classes, dtype=jnp.float32)
    return onehot + (probs - sg(probs))  # parenthesised: (1 + p) - p is not exactly 1 in float32


def onehot_mode(logp: jax.Array) -> jax.Array:
    """Most likely class as a one-hot (straight-through like `onehot_sample`)."""
    onehot = jax.nn.one_hot(jnp.argmax(logp, -1), logp.shape[-1], dtype=jnp.float32)
    probs = jnp.exp(logp)
    return onehot + (probs - sg(probs))


def categorical_entropy(logp: jax.Array) -> jax.Array:
    """(..., C) → (...)."""
    return -jnp.sum(jnp.exp(logp) * logp, -1)


def categorical_kl(logp: jax.Array, logq: jax.Array) -> jax.Array:
    """KL[p ‖ q] of categoricals given normalised log-probabilities (..., C) → (...)."""
    return jnp.sum(jnp.exp(logp) * (logp - logq), -1)


# ----------------------------------------------------------------------------------------------------------------------
# Symlog two-hot (reward and value)
# ----------------------------------------------------------------------------------------------------------------------


def twohot_bins(num: int = 255, low: float = -20.0, high: float = 20.0) -> jax.Array:
    """(K,) float32 bin centres in symlog space, exactly symmetric around an exact 0 (K odd, low = −high), so that a
    zero-initialised head predicts exactly 0."""
    if num % 2 == 0 or low != -high:
        raise ValueError(f"two-hot bins must be an odd number symmetric around 0, got {num} on [{low}, {high}]")
    half = np.linspace(low, 0.0, (num + 1) // 2)
    return jnp.asarray(np.concatenate([half, -half[-2::-1]]), jnp.float32)


def twohot_encode(x: jax.Array, bins: jax.Array) -> jax.Array:
    """Two-hot weights of symlog(x) on `bins`: (...) → (..., K) float32, rows sum to 1, out-of-range → edge bin."""
    y = jnp.clip(symlog(x.astype(jnp.float32)), bins[0], bins[-1])
    above = jnp.clip(jnp.searchsorted(bins, y, side="right"), 1, bins.shape[0] - 1)
    below = above - 1
    lo, hi = bins[below], bins[above]
    w_hi = (y - lo) / (hi - lo)
    k = bins.shape[0]
    return jax.nn.one_hot(below, k) * (1 - w_hi)[..., None] + jax.nn.one_hot(above, k) * w_hi[..., None]


def twohot_mean(logits: jax.Array, bins: jax.Array) -> jax.Array:
    """Expected value: symexp(Σ softmax(logits)·bins).  logits: (..., K) → (...) float32.

    The sum pairs each negative bin with its mirror image, Σ_{i<K/2} (p_i − p_{K−1−i})·bins_i, so equal probabilities
    on mirrored bins (e.g. zero logits) cancel exactly.
    """
    probs = jax.nn.softmax(logits.astype(jnp.float32), -1)
    half = bins.shape[0] // 2
    return symexp(jnp.sum((probs[..., :half] - probs[..., ::-1][..., :half]) * bins[:half], -1))


def twohot_nll(logits: jax.Array, target: jax.Array, bins: jax.Array) -> jax.Array:
    """−log p(target) under the two-hot categorical: logits (..., K), target (...) → (...)."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), -1)
    return -jnp.sum(twohot_encode(target, bins) * logp, -1)


# ----------------------------------------------------------------------------------------------------------------------
# Bernoulli (continue flag) and bounded normal (continuous actions)
# ----------------------------------------------------------------------------------------------------------------------


def bernoulli_nll(logits: jax.Array, target: jax.Array) -> jax.Array:
    """−log p(target ∈ {0, 1}) for logits (...) → (...)."""
    logits = logits.astype(jnp.float32)
    return -(target * jax.nn.log_sigmoid(logits) + (1 - target) * jax.nn.log_sigmoid(-logits))


def bounded_normal(raw: jax.Array, min_std: float, max_std: float) -> tuple[jax.Array, jax.Array]:
    """Mean tanh(μ) ∈ (−1, 1) and std ∈ [min_std, max_std] from raw outputs (..., 2A) → ((..., A), (..., A))."""
    raw = raw.astype(jnp.float32)
    mu, s = jnp.split(raw, 2, -1)
    std = (max_std - min_std) * jax.nn.sigmoid(s + 2.0) + min_std
    return jnp.tanh(mu), std


def normal_logp(x: jax.Array, mean: jax.Array, std: jax.Array) -> jax.Array:
    """Σ over the last axis of log N(x; mean, std): (..., A) → (...)."""
    z = (x - mean) / std
    return jnp.sum(-0.5 * z**2 - jnp.log(std) - 0.5 * jnp.log(2 * jnp.pi), -1)


def normal_entropy(std: jax.Array) -> jax.Array:
    """(..., A) → (...)."""
    return jnp.sum(0.5 * jnp.log(2 * jnp.pi * jnp.e) + jnp.log(std), -1)
