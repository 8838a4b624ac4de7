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


def is_image_size(size: int) -> bool:
    """Whether the conv encoder and decoder take `size`×`size` images: a power of two ≥ 8."""
    return size >= 8 and not size & (size - 1)


def image_stages(size: int) -> int:
    """Stride-2 stages between a `size`×`size` image and the 4×4 grid the conv nets meet in the middle: log2(size/4).

    64 → 4 (DreamerV3's encoder and decoder), 16 → 2, 8 → 1. `size` must be a power of two ≥ 8.
    """
    if not is_image_size(size):
        raise ValueError(f"image size must be a power of two >= 8 (e.g. 64), got {size}")
    return size.bit_length() - 3


class ImageEncoder(nnx.Module):
    """Square images → features: k = log2(size/4) stride-2 convs (d, 2d, …, 2^(k-1)·d channels), each LayerNorm →
    SiLU, down to a 4×4 grid. At size 64 (every adapter's default) these are DreamerV3's 4 convs (d, 2d, 4d, 8d).

    images: (..., size, size, C) uint8 → (..., 4·4·2^(k-1)·d) in `dtype`.
    """

    def __init__(self, channels: int, depth: int, *, size: int = 64, dtype=jnp.float32, rngs: nnx.Rngs):
        self.convs = nnx.List()
        self.acts = nnx.List()
        width = channels
        for i in range(image_stages(size)):
            out = depth * 2**i
            self.convs.append(
                nnx.Conv(width, out, (4, 4), strides=2, padding="SAME", use_bias=False, kernel_init=fan_avg,
                         dtype=dtype, rngs=rngs)
            )
            self.acts.append(NormAct(out, dtype=dtype, rngs=rngs))
            width = out
        self.out_features = 4 * 4 * width
        self.dtype = dtype

    def __call__(self, images: jax.Array) -> jax.Array:
        x, batch = _flatten_batch(images, 3)
        x = x.astype(self.dtype) / 255.0 - 0.5
        for conv, act in zip(self.convs, self.acts):
            x = act(conv(x))
        return x.reshape(batch + (self.out_features,))


class ImageDecoder(nnx.Module):
    """Features → square images, the encoder mirrored: Dense to 4×4×2^(k-1)·d, k - 1 stride-2 transposed convs
    (…, 2d, d) with LayerNorm → SiLU and a last transposed conv to C channels (k = log2(size/4); at size 64: 8d, then
    4d, 2d, d, as in DreamerV3).  feat (..., F) → (..., size, size, C) float32 in [0, 1] scale (offset 0.5)."""

    def __init__(self, in_features: int, channels: int, depth: int, *, size: int = 64, dtype=jnp.float32,
                 rngs: nnx.Rngs):
        stages = image_stages(size)
        self.width = depth * 2 ** (stages - 1)
        self.inp = Dense(in_features, 4 * 4 * self.width, dtype=dtype, rngs=rngs)
        self.convs = nnx.List()
        self.acts = nnx.List()
        width = self.width
        for i in reversed(range(stages - 1)):
            out = depth * 2**i
            self.convs.append(
                nnx.ConvTranspose(width, out, (4, 4), strides=(2, 2), padding="SAME", use_bias=False,
                                  kernel_init=fan_avg, dtype=dtype, rngs=rngs)
            )
            self.acts.append(NormAct(out, dtype=dtype, rngs=rngs))
            width = out
        self.last = nnx.ConvTranspose(width, channels, (4, 4), strides=(2, 2), padding="SAME", kernel_init=fan_avg,
                                      dtype=dtype, rngs=rngs)

    def __call__(self, feat: Sequence[jax.Array] | jax.Array) -> jax.Array:
        x = self.inp(feat)
        batch = x.shape[:-1]
        x = x.reshape((-1, 4, 4, self.width))
        for conv, act in zip(self.convs, self.acts):
            x = act(conv(x))
        x = self.last(x).astype(jnp.float32) + 0.5
        return x.reshape(batch + x.shape[1:])
