"""`r2i bench scan`: the reset-aware linear recurrence, associative vs sequential, forward and forward+backward.

One JSON line per (method, B, T, P, mode), then one summary line per (B, T, P, mode) with the speed ratio
associative / sequential (> 1 means the sequential scan is faster).
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp

from r2i import ssm
from r2i.bench.common import compile_and_time, emit
from r2i.runtime import device_description

METHODS = ("sequential", "associative")


def _inputs(b: int, t: int, p: int):
    keys = jax.random.split(jax.random.PRNGKey(0), 5)
    lam = jnp.exp(jax.lax.complex(-jnp.exp(jax.random.normal(keys[0], (p,))) * 0.01, jax.random.normal(keys[1], (p,))))
    bu = jax.lax.complex(jax.random.normal(keys[2], (b, t, p)), jax.random.normal(keys[3], (b, t, p)))
    is_first = jax.random.uniform(keys[4], (b, t)) < 1.0 / 128
    x_carry = jnp.zeros((b, p), jnp.complex64)
    x_init = jnp.zeros((p,), jnp.complex64)
    return lam.astype(jnp.complex64), bu.astype(jnp.complex64), is_first, x_carry, x_init


def _function(method: str, mode: str):
    def forward(lam, bu, is_first, x_carry, x_init):
        return ssm.linear_recurrence(lam, bu, is_first, x_carry, x_init, method=method)

    if mode == "forward":
        return jax.jit(forward)

    def loss(lam, bu, is_first, x_carry, x_init):
        return jnp.sum(jnp.abs(forward(lam, bu, is_first, x_carry, x_init)) ** 2)

    return jax.jit(jax.grad(loss, argnums=(0, 1, 3, 4)))


def run(batch: list[int], length: list[int], state: list[int], repeats: int, methods=METHODS) -> None:
    device = device_description()
    for b, t, p in itertools.product(batch, length, state):
        args = _inputs(b, t, p)
        for mode in ("forward", "forward+backward"):
            medians = {}
            for method in methods:
                compile_s, median_s, _ = compile_and_time(_function(method, mode), args, repeats)
                medians[method] = median_s
                emit(dict(bench="scan", method=method, mode=mode, B=b, T=t, P=p, device=device,
                          median_ms=round(median_s * 1e3, 3), compile_s=round(compile_s, 3), repeats=repeats))
            if len(medians) == 2:
                emit(dict(bench="scan", summary="associative_over_sequential", mode=mode, B=b, T=t, P=p,
                          device=device, ratio=round(medians["associative"] / medians["sequential"], 3),
                          default=ssm.default_method()))
