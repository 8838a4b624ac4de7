"""The optimiser: the actor's learning-rate warmup, and that no warmup leaves the optimiser state as it was."""

import jax
import jax.numpy as jnp
import numpy as np

from r2i.agent import make_optimizer
from r2i.config import make_config


def _params():
    kernel = {"kernel": jnp.ones((3, 2))}
    return {"model": dict(kernel), "ssm": {}, "actor": dict(kernel), "critic": dict(kernel)}


def _actor_steps(warmup: int, n: int) -> list[float]:
    """Size of the actor's update at each of n steps under a constant gradient (Adam's direction is then ±1)."""
    cfg = make_config("default", {"optim.actor_warmup": warmup}).optim
    tx, params = make_optimizer(cfg), _params()
    state, grads = tx.init(params), jax.tree.map(jnp.ones_like, params)
    update = jax.jit(tx.update)
    steps = []
    for _ in range(n):
        updates, state = update(grads, state, params)
        steps.append(float(jnp.abs(updates["actor"]["kernel"]).max()))
    return steps


def test_actor_learning_rate_rises_linearly_over_the_warmup_then_stays():
    lr = make_config("default").optim.actor_lr
    steps = _actor_steps(4, 7)
    np.testing.assert_allclose(steps, [0.0, lr / 4, lr / 2, 3 * lr / 4, lr, lr, lr], rtol=1e-4, atol=1e-12)
    np.testing.assert_allclose(_actor_steps(0, 3), [lr] * 3, rtol=1e-4)


def test_no_warmup_keeps_the_optimiser_state_of_older_checkpoints():
    """Checkpoints written before the warmup existed hold no schedule counter: without a warmup there is none."""
    plain = jax.tree.leaves(make_optimizer(make_config("default").optim).init(_params()))
    warm = jax.tree.leaves(make_optimizer(make_config("default", {"optim.actor_warmup": 10}).optim).init(_params()))
    assert len(warm) == len(plain) + 1  # the actor's schedule step count
