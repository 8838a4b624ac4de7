"""Properties of the actor-critic losses in `r2i.behavior` (pure functions of arrays, no networks involved).

Shapes: H = 3 imagination steps, N = 4 starts, K = 31 value bins. Every test runs in well under a second.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r2i import dists
from r2i.behavior import actor_loss, critic_loss, imagination_losses
from r2i.config import BehaviorConfig

H, N, K = 3, 4, 31


def _arrays(seed: int, *shape):
    return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


@pytest.mark.parametrize("reinforce", [True, False])
def test_actor_loss_gradient_raises_logp_of_positive_advantages(reinforce):
    """Gradient descent on the actor loss raises log π(a_t) where the advantage is positive and lowers it where it is
    negative (REINFORCE), or raises the advantage itself (continuous actions: the gradient flows through it), in
    proportion to the weights; the entropy bonus always pushes the entropy up."""
    logp, entropy, advantage = _arrays(0, H, N), jnp.abs(_arrays(1, H, N)), _arrays(2, H, N)
    weights = jax.random.uniform(jax.random.key(3), (H, N), minval=0.1, maxval=1.0)
    eta = 0.01

    def loss(logp, entropy, advantage):
        return actor_loss(logp, entropy, advantage, weights, entropy_scale=eta, reinforce=reinforce)[0]

    g_logp, g_entropy, g_adv = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(logp, entropy, advantage)
    if reinforce:
        np.testing.assert_allclose(g_logp, -weights * advantage / (H * N), rtol=1e-6)
        assert np.all(np.sign(-g_logp) == np.sign(advantage))  # a descent step raises logπ iff A > 0
        np.testing.assert_array_equal(g_adv, 0.0)  # the advantage is a constant for REINFORCE
    else:
        np.testing.assert_array_equal(g_logp, 0.0)
        np.testing.assert_allclose(g_adv, -weights / (H * N), rtol=1e-6)
    np.testing.assert_allclose(g_entropy, -eta * weights / (H * N), rtol=1e-6)


def test_actor_loss_value_and_metrics():
    logp, entropy, advantage = _arrays(0, H, N), jnp.abs(_arrays(1, H, N)), _arrays(2, H, N)
    weights = jnp.ones((H, N))
    loss, metrics = actor_loss(logp, entropy, advantage, weights, entropy_scale=0.5, reinforce=True)
    np.testing.assert_allclose(loss, np.mean(-(logp * advantage + 0.5 * entropy)), rtol=1e-6)
    assert set(metrics) == {"actor/loss", "actor/entropy", "actor/advantage_abs", "actor/logp_adv_corr"}
    np.testing.assert_allclose(metrics["actor/advantage_abs"], np.mean(np.abs(advantage)), rtol=1e-6)
    np.testing.assert_allclose(metrics["actor/logp_adv_corr"],
                               np.corrcoef(np.ravel(logp), np.ravel(advantage))[0, 1], rtol=1e-4, atol=1e-6)
    # Advantages that follow the actor's preference correlate fully; the diagnostic is signed.
    _, same = actor_loss(logp, entropy, 2.0 * logp + 1.0, weights, entropy_scale=0.5, reinforce=True)
    _, opposite = actor_loss(logp, entropy, -logp, weights, entropy_scale=0.5, reinforce=True)
    np.testing.assert_allclose([same["actor/logp_adv_corr"], opposite["actor/logp_adv_corr"]], [1.0, -1.0], rtol=1e-5)


def test_critic_loss_is_minimised_at_the_returns():
    """The critic loss is convex in the logits and its gradient vanishes where the critic predicts the two-hot encoding
    of the λ-returns (whose mean is the return); predicting any other value costs more."""
    returns = 3.0 * _arrays(4, H, N)
    weights = jnp.ones((H, N))
    bins = dists.twohot_bins(K)

    @jax.jit
    def logits_of(value):
        return jnp.log(dists.twohot_encode(value, bins) + 1e-12)

    loss = jax.jit(lambda logits: critic_loss(logits, returns, _arrays(5, H, N), weights, slow_reg=0.0)[0])
    best = logits_of(returns)
    np.testing.assert_allclose(dists.twohot_mean(best, bins), returns, rtol=1e-4, atol=1e-4)
    assert np.abs(np.asarray(jax.jit(jax.grad(loss))(best))).max() < 1e-6
    for delta in (-0.5, -0.05, 0.05, 0.5):
        assert loss(logits_of(returns + delta)) > loss(best)


def test_critic_loss_ignores_zero_weight_steps_and_its_targets_are_constants():
    returns, slow_value = _arrays(6, H, N), _arrays(7, H, N)
    weights = jnp.ones((H, N)).at[2].set(0.0)  # e.g. after a predicted episode end
    logits = _arrays(8, H, N, K)

    def loss(logits, returns, slow_value):
        return critic_loss(logits, returns, slow_value, weights, slow_reg=1.0)[0]

    g_logits, g_returns, g_slow = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(logits, returns, slow_value)
    np.testing.assert_array_equal(g_logits[2], 0.0)
    assert np.abs(np.asarray(g_logits[:2])).max() > 0
    np.testing.assert_array_equal(g_returns, 0.0)
    np.testing.assert_array_equal(g_slow, 0.0)


def test_loss_functions_refuse_mismatched_shapes():
    good = jnp.zeros((H, N))
    with pytest.raises(AssertionError, match=r"actor_loss: .*advantage \(3, 5\).*must all be \(H, N\)"):
        actor_loss(good, good, jnp.zeros((H, N + 1)), good, entropy_scale=0.0, reinforce=True)
    with pytest.raises(AssertionError, match=r"critic_loss: logits \(3, 4\) must be \(H, N, K\)"):
        critic_loss(good, good, good, good, slow_reg=1.0)
    with pytest.raises(AssertionError, match=r"critic_loss: .*returns \(4, 3\)"):
        critic_loss(jnp.zeros((H, N, K)), good.T, good, good, slow_reg=1.0)


def test_imagination_losses_compose_returns_scale_and_both_losses():
    """A trajectory that ends after one step (ĉ_1 = 0): the λ-return is the first reward, the weights vanish from step
    1 on, and with returns inside the return-scale floor (S = 1) the actor's advantage is R_0 − V_0."""
    cfg = BehaviorConfig(retnorm_decay=0.0)  # the scale is this batch's percentile range
    reward = jnp.full((H, N), 0.1).at[0].set(jnp.array([0.1, 0.2, 0.3, 0.4]))
    cont = jnp.zeros((H, N))
    value = jnp.full((H, N), 0.05)
    traj = {
        "reward": reward,
        "cont": cont,
        "value": value,
        "last_value": jnp.zeros((N,)),
        "slow_value": value,
        "logp": jnp.zeros((H, N)),
        "entropy": jnp.zeros((H, N)),
        "critic_logits": jnp.zeros((H, N, K)),
    }
    run = jax.jit(lambda traj, cont0: imagination_losses(traj, cont0, jnp.zeros((2,)), cfg, discrete=False))
    losses, retnorm, metrics = run(traj, jnp.ones((N,)))
    assert set(losses) == {"actor", "critic"}
    assert metrics["actor/return_scale"] == 1.0
    # Only t = 0 has weight (w_0 = 1; w_t = Π γ ĉ_k = 0 after it), so the actor loss is −mean_n(R_0 − V_0) / H.
    np.testing.assert_allclose(losses["actor"], -np.mean(reward[0] - 0.05) / H, rtol=1e-5)
    np.testing.assert_allclose(retnorm, jnp.quantile(reward, jnp.array([cfg.retnorm_low, cfg.retnorm_high])), rtol=1e-5)
    with pytest.raises(AssertionError, match=r"cont0 \(3,\) and last_value \(4,\) must be \(N,\)"):
        run(traj, jnp.ones((3,)))
