"""A scan whose parameter gradient is computed after the loop, in one pass over all steps.

JAX's transpose of `jax.lax.scan(step, ...)` adds every step's gradient with respect to the parameters the step closes
over into a loop carry. At batch 1 each of those is a 1-row outer product, which XLA's CPU backend runs slowly: the GRU
world model's filter over a window of 2,048 steps at B = 1 took 454 ms of CPU time forward and backward, against 58 ms
for the gradient with respect to its inputs alone (and B = 2 over 512 steps took 45 ms where B = 1 took 113 ms).

`adjoint_scan` computes the same gradient in two passes instead (the adjoint method):

1. a reverse loop that carries only the state's cotangent λ_t (the *adjoint*: dL/dc_t, from the outputs of step t and
   of every later step) and stores it per step, differentiating each step with respect to its state and inputs only;
2. one vector-Jacobian product of the step, vmapped over time, with respect to the parameters, at the states the
   forward loop stored and with the stored adjoints as cotangents: Σ_t (∂step/∂θ)ᵀ (λ_t, ȳ_t), where every weight's
   gradient is a single (T·B)-row matmul.

Both are exact (no truncation, no approximation): the result equals `jax.lax.scan`'s gradient up to float rounding.
The forward pass is the plain scan; the backward pass recomputes each step once in the reverse loop and once, batched,
in the second pass. That recomputation is what it costs: measured on one core (CPU time of the GRU filter's forward and
backward pass), B = 1: 454 → 181 ms over 2,048 steps and 113 → 42 ms over 512; but B = 2 over 512 steps 45 → 66 ms
and B = 16 over 256 steps 79 → 144 ms. The GRU world model therefore uses it at batch 1 only.

Both of its loops are unrolled (`UNROLL` steps per loop iteration), which at B = 1, where a step is a few small
kernels, made the update faster. Measured on one core (CPU time of the GRU's whole update,
`python benchmarks/filter_unroll.py`, benchmarks/results/filter_unroll.jsonl): unrolled 8×, B 1 × T 2,048 −11 %
(341 → 302 ms), B 1 × T 4,096 −12 % (613 → 538 ms), with bitwise the same parameters; 16× was slower than 8× in a
first run. JAX's own scan at B = 2 × T 512 (the plain scan) did not gain (4×: −5 %, 8×: +30 %, one run), so it keeps
one step per iteration.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import numpy as np

Step = Callable[[Any, Any, Any, Any], tuple[Any, Any]]
UNROLL = 8  # steps per loop iteration in both of the adjoint scan's loops (measured above)


def _zero_cotangent(x):
    """The cotangent of a non-differentiable leaf: float0 zeros for integer and boolean arrays."""
    return np.zeros(np.shape(x), jax.dtypes.float0)


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def adjoint_scan(step: Step, params, carry, xs, consts):
    """`jax.lax.scan(lambda c, x: step(params, c, *x), carry, (xs, consts))` with the parameter gradient summed after
    the loop.

    step: (params, carry, x_t, const_t) → (carry, y_t), a pure function (params: any pytree of float arrays).
    carry: pytree of float arrays (B, …); xs: pytree of float arrays (T, B, …), differentiated; consts: pytree of
    integer, boolean or PRNG-key arrays with T leading (episode starts (T, B), one key per step (T,)), not
    differentiated (their cotangents are float0 zeros).
    Returns (carry_T, ys) with ys stacked over T, as `jax.lax.scan` does.
    """
    carry, (ys, _) = _forward(step, params, carry, xs, consts)
    return carry, ys


def _forward(step: Step, params, carry, xs, consts):
    """The plain scan, also returning the state each step started from (T, B, …)."""

    def body(c, inputs):
        x_t, k_t = inputs
        c_next, y_t = step(params, c, x_t, k_t)
        return c_next, (y_t, c)

    return jax.lax.scan(body, carry, (xs, consts), unroll=UNROLL)


def _adjoint_scan_fwd(step: Step, params, carry, xs, consts):
    carry_t, (ys, starts) = _forward(step, params, carry, xs, consts)
    return (carry_t, ys), (params, starts, xs, consts)


def _adjoint_scan_bwd(step: Step, residuals, cotangents):
    params, starts, xs, consts = residuals
    ct_carry, ct_ys = cotangents

    def reverse(adjoint, inputs):
        start, x_t, k_t, ct_y = inputs
        _, vjp = jax.vjp(lambda c, x: step(params, c, x, k_t), start, x_t)
        ct_start, ct_x = vjp((adjoint, ct_y))
        return ct_start, (adjoint, ct_x)  # `adjoint` here: dL/d(the state step t returned)

    ct_carry0, (adjoints, ct_xs) = jax.lax.scan(reverse, ct_carry, (starts, xs, consts, ct_ys), reverse=True,
                                             unroll=UNROLL)

    def all_steps(p):
        return jax.vmap(lambda c, x, k: step(p, c, x, k))(starts, xs, consts)

    _, vjp_params = jax.vjp(all_steps, params)
    (ct_params,) = vjp_params((adjoints, ct_ys))
    return ct_params, ct_carry0, ct_xs, jax.tree.map(_zero_cotangent, consts)


adjoint_scan.defvjp(_adjoint_scan_fwd, _adjoint_scan_bwd)


def plain_scan(step: Step, params, carry, xs, consts):
    """The same computation through `jax.lax.scan` and JAX's own transpose: the reference `adjoint_scan` is tested
    against."""
    return jax.lax.scan(lambda c, inputs: step(params, c, *inputs), carry, (xs, consts))
