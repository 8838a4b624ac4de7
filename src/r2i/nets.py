"""Network building blocks (Flax NNX): dense layers over split inputs, MLPs, image encoder and decoder.

Initialisers follow DreamerV3: truncated normal with fan-average variance scaling; output layers of the reward and
value heads start at zero so that early predictions are 0. Kernels are float32; computation runs in `dtype`.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx


def fan_avg_init(scale: float = 1.0):
    """DreamerV3's kernel initialiser: truncated normal with variance scale · 2 / (fan_in + fan_out)."""
    return nnx.initializers.variance_scaling(scale, "fan_avg", "truncated_normal")


fan_avg = fan_avg_init(1.0)
zeros = nnx.initializers.zeros_init()


def as_list(x) -> list[jax.Array]:
    return list(x) if isinstance(x, (list, tuple)) else [x]


class Dense(nnx.Module):
    """y = Σ_i x_i W_i (+ b) for a list of inputs that together have `in_features` channels.

    Taking the inputs as a list instead of one concatenated array saves a copy of large feature tensors (the world
    model's heads read (h, z), the actor (z, x)); the kernel is one (in_features, out) matrix, sliced per part.
    """

    def __init__(self, in_features: int, out: int, *, bias=True, init=fan_avg, dtype=jnp.float32, rngs: nnx.Rngs):
        self.kernel = nnx.Param(init(rngs.params(), (in_features, out), jnp.float32))
        self.bias = nnx.Param(jnp.zeros((out,), jnp.float32)) if bias else None
        self.in_features, self.dtype = in_features, dtype

    def __call__(self, inputs) -> jax.Array:
        parts = as_list(inputs)
        sizes = [p.shape[-1] for p in parts]
        if sum(sizes) != self.in_features:
            raise ValueError(f"Dense expects {self.in_features} input features in total, got parts {sizes}")
        kernel = self.kernel[...].astype(self.dtype)
        out, offset = None, 0
        for part, size in zip(parts, sizes):
            y = part.astype(self.dtype) @ kernel[offset : offset + size]
            out = y if out is None else out + y
            offset += size
        if self.bias is not None:
            out = out + self.bias[...].astype(self.dtype)
        return out


class NormAct(nnx.Module):
    """LayerNorm → SiLU over the last axis."""

    def __init__(self, features: int, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self.norm = nnx.LayerNorm(features, epsilon=1e-3, dtype=dtype, rngs=rngs)

    def __call__(self, x):
        return jax.nn.silu(self.norm(x))


class MLP(nnx.Module):
    """`layers` × (Dense without bias → LayerNorm → SiLU), then an optional output Dense.

    Args:
      in_features: total channels of the (possibly split) input.
      out: size of the output layer, or None for no output layer (the last hidden activation is returned).
      out_init: initialiser of the output kernel (zeros for reward and value heads).
    """

    def __init__(
        self,
        in_features: int,
        layers: int,
        units: int,
        out: int | None = None,
        *,
        out_init=fan_avg,
        dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.hidden = nnx.List()
        self.acts = nnx.List()
        size = in_features
        for _ in range(layers):
            self.hidden.append(Dense(size, units, bias=False, dtype=dtype, rngs=rngs))
            self.acts.append(NormAct(units, dtype=dtype, rngs=rngs))
            size = units
        self.out = Dense(size, out, init=out_init, dtype=dtype, rngs=rngs) if out else None
        self.out_features = out or size

    def __call__(self, inputs) -> jax.Array:
        x = inputs
        for dense, act in zip(self.hidden, self.acts):
            x = act(dense(x))
        if self.out is not None:
            x = self.out(x)
        return x


def _flatten_batch(x: jax.Array, event_dims: int):
    batch = x.shape[:-event_dims]
    return x.reshape((-1,) + x.shape[-event_dims:]), batch


class ImageEncoder(nnx.Module):
    """64×64 images → features: 4 stride-2 convs (d, 2d, 4d, 8d channels), each LayerNorm → SiLU.

    images: (..., 64, 64, C) uint8 → (..., 4·4·8d) in `dtype`.
    """

    def __init__(self, channels: int, depth: int, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self.convs = nnx.List()
        self.acts = nnx.List()
        size = channels
        for i in range(4):
            out = depth * 2**i
            self.convs.append(
                nnx.Conv(size, out, (4, 4), strides=2, padding="SAME", use_bias=False, kernel_init=fan_avg,
                         dtype=dtype, rngs=rngs)
            )
            self.acts.append(NormAct(out, dtype=dtype, rngs=rngs))
            size = out
        self.out_features = 4 * 4 * size
        self.dtype = dtype

    def __call__(self, images: jax.Array) -> jax.Array:
        x, batch = _flatten_batch(images, 3)
        x = x.astype(self.dtype) / 255.0 - 0.5
        for conv, act in zip(self.convs, self.acts):
            x = act(conv(x))
        return x.reshape(batch + (self.out_features,))


class ImageDecoder(nnx.Module):
    """Features → 64×64 images: Dense to 4×4×8d, 3 stride-2 transposed convs (4d, 2d, d) with LayerNorm → SiLU and a
    last transposed conv to C channels.  feat (..., F) → (..., 64, 64, C) float32 in [0, 1] scale (offset 0.5)."""

    def __init__(self, in_features: int, channels: int, depth: int, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self.depth = depth
        self.inp = Dense(in_features, 4 * 4 * 8 * depth, dtype=dtype, rngs=rngs)
        self.convs = nnx.List()
        self.acts = nnx.List()
        size = 8 * depth
        for i in (2, 1, 0):
            out = depth * 2**i
            self.convs.append(
                nnx.ConvTranspose(size, out, (4, 4), strides=(2, 2), padding="SAME", use_bias=False,
                                  kernel_init=fan_avg, dtype=dtype, rngs=rngs)
            )
            self.acts.append(NormAct(out, dtype=dtype, rngs=rngs))
            size = out
        self.last = nnx.ConvTranspose(size, channels, (4, 4), strides=(2, 2), padding="SAME", kernel_init=fan_avg,
                                      dtype=dtype, rngs=rngs)

    def __call__(self, feat: Sequence[jax.Array] | jax.Array) -> jax.Array:
        x = self.inp(feat)
        batch = x.shape[:-1]
        x = x.reshape((-1, 4, 4, 8 * self.depth))
        for conv, act in zip(self.convs, self.acts):
            x = act(conv(x))
        x = self.last(x).astype(jnp.float32) + 0.5
        return x.reshape(batch + x.shape[1:])
