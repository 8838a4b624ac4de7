"""The FLOP counter behind `r2i bench train` (gflop, roofline_fraction), on programs whose FLOPs are known by hand.

Only jaxprs are built (nothing is compiled), so these run in milliseconds.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from jax import lax

from r2i.bench.flops import function_flops

W = jnp.ones((4, 4))


def _rnn_step(h, _):
    return jnp.tanh(W @ h), None  # 2·4·4 = 32 matmul FLOPs, 4 element-wise


def test_matmul_is_two_flops_per_multiply_add():
    flops = function_flops(jnp.matmul, jnp.ones((3, 4)), jnp.ones((4, 5)))
    assert flops == {"matmul": 2 * 3 * 5 * 4, "other": 0, "unknown_loops": 0, "total": 2 * 3 * 5 * 4}
    batched = function_flops(lambda a, b: jnp.einsum("bij,bjk->bik", a, b), jnp.ones((2, 3, 4)), jnp.ones((2, 4, 5)))
    assert batched["matmul"] == 2 * 2 * 3 * 5 * 4


def test_elementwise_ops_count_one_per_output_element_and_layout_ops_none():
    def fn(a, b):
        return (a * b + 1.0).T.reshape(-1)  # mul and add: 12 each; transpose and reshape are free

    assert function_flops(fn, jnp.ones((3, 4)), jnp.ones((3, 4))) == {
        "matmul": 0, "other": 24, "unknown_loops": 0, "total": 24
    }


def test_scan_multiplies_its_body_by_the_trip_count():
    def scan(h):
        return lax.scan(_rnn_step, h, None, length=7)[0]

    flops = function_flops(scan, jnp.ones(4))
    assert (flops["matmul"], flops["other"], flops["unknown_loops"]) == (7 * 32, 7 * 4, 0)

    def nested(h):  # 3 outer steps of 5 inner steps
        return lax.scan(lambda h, _: (lax.scan(_rnn_step, h, None, length=5)[0], None), h, None, length=3)[0]

    flops = function_flops(nested, jnp.ones(4))
    assert (flops["matmul"], flops["other"]) == (15 * 32, 15 * 4)
    assert flops["total"] == flops["matmul"] + flops["other"]


def test_a_while_loop_counts_its_body_once_and_is_reported():
    def loop(h):
        return lax.while_loop(lambda c: c[0] < 10, lambda c: (c[0] + 1, W @ c[1]), (0, h))[1]

    flops = function_flops(loop, jnp.ones(4))
    assert (flops["matmul"], flops["other"], flops["unknown_loops"]) == (32, 1, 1)  # the body's matmul and the +1


def test_cond_counts_the_costlier_branch_and_jit_calls_are_entered():
    def branch(p, h):
        return lax.cond(p, lambda h: W @ h, lambda h: h * 2.0, h)

    flops = function_flops(branch, True, jnp.ones(4))
    assert (flops["matmul"], flops["other"]) == (32, 4)  # the maximum of each kind over the branches
    assert function_flops(jax.jit(jnp.matmul), jnp.ones((3, 4)), jnp.ones((4, 5)))["matmul"] == 120


@pytest.mark.parametrize(
    "lhs, rhs, kwargs, outputs, per_output",
    [
        # NCHW / OIHW, 8×8 → 6×6 (VALID): 1·4·6·6 outputs of 3·3·3 multiply-adds each
        ((1, 3, 8, 8), (4, 3, 3, 3), {"padding": "VALID"}, 4 * 6 * 6, 3 * 3 * 3),
        # two feature groups: each output channel sees 2 of the 4 input channels
        ((1, 4, 8, 8), (6, 2, 3, 3), {"padding": "VALID", "feature_group_count": 2}, 6 * 6 * 6, 2 * 3 * 3),
        # NHWC / HWIO as Flax lays them out, stride 2, SAME: 2·4·4·5 outputs of 3·3·3
        ((2, 8, 8, 3), (3, 3, 3, 5), {"padding": "SAME", "window_strides": (2, 2),
                                      "dimension_numbers": ("NHWC", "HWIO", "NHWC")}, 2 * 4 * 4 * 5, 3 * 3 * 3),
    ],
)
def test_convolution_is_two_flops_per_kernel_tap_and_output(lhs, rhs, kwargs, outputs, per_output):
    kwargs = {"window_strides": (1, 1), **kwargs}

    def conv(x, k):
        return lax.conv_general_dilated(x, k, **kwargs)

    out = jax.eval_shape(conv, jnp.ones(lhs), jnp.ones(rhs))
    assert out.size == outputs
    flops = function_flops(conv, jnp.ones(lhs), jnp.ones(rhs))
    assert (flops["matmul"], flops["other"]) == (2 * outputs * per_output, 0)
