"""Can the sequence model alone learn the memory task's reward? A supervised control for `cue_probe.py`.

The reward of `r2i:memory_length/N` under random answers is the XOR of the cue (seen once, at the first step) and the
answer (the last action). `cue_probe.py` shows that the world model learns it slowly with S3M. This script takes the
world model away: a sequence model reads synthetic episodes of T = N + 2 steps and a reward head is trained on the
reward alone, with fresh episodes every update. Inputs per step t (what the world model's sequence input carries):

* the cue one-hot at t = 1 (the world model sees z_0 at t = 1), zeros elsewhere;
* the time-remaining fraction;
* the previous action, one-hot, random at every step (the answer is the action consumed at T − 1);
* `noise=K` > 0: four one-hot categoricals of 16 classes drawn from K classes each (the stochastic latent's spread).

Models: `s3m` = input MLP → `r2i.ssm.S5Stack` (R2I's blocks) → Dense + SiLU; `gru` = input MLP → DreamerV3's
LayerNorm GRU cell (as in `r2i.sequence.RSSM`). Head: one hidden layer of 128 (Dense → LayerNorm → SiLU) and
`head=mse` (one output, squared error against the reward) or `head=twohot` (DreamerV3's 255-bin symlog two-hot
cross-entropy; `out_init=zeros` as the world model's reward head, or `fan_avg`). The loss covers every step (reward 0
before the last). Every 100 updates: accuracy of the sign of the predicted final reward on 2,000 held-out episodes.
One JSON line: the first update with accuracy > 0.9 (`solved_at`, null if none within `updates`).

    python benchmarks/xor_probe.py [model=s3m|gru] [head=mse|twohot] [out_init=zeros|fan_avg] [noise=2] [N=10] \
        [seed=0] [updates=3000] [lr=1e-3] [batch=16]
"""

from __future__ import annotations

import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from r2i import dists
from r2i.nets import MLP, Dense, fan_avg, zeros
from r2i.sequence import gru_gates
from r2i.ssm import S5Stack

DEFAULTS = {"model": "s3m", "head": "mse", "out_init": "zeros", "noise": "2", "N": "10", "seed": "0",
            "updates": "3000", "lr": "1e-3", "batch": "16"}
UNITS, STATE, LAYERS, BLOCKS, BINS = 128, 64, 2, 4, 255  # the default preset's sequence-model sizes


def parse(argv: list[str]) -> dict[str, str]:
    opts = dict(DEFAULTS)
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or key not in DEFAULTS:
            raise SystemExit(f"xor_probe: expected key=value with key in {', '.join(DEFAULTS)}, got {arg!r}")
        opts[key] = value
    for key, choices in (("model", ("s3m", "gru")), ("head", ("mse", "twohot")), ("out_init", ("zeros", "fan_avg"))):
        if opts[key] not in choices:
            raise SystemExit(f"xor_probe: {key} must be one of {', '.join(choices)}, got {opts[key]!r}")
    return opts


def episodes(rng: np.random.Generator, n: int, steps: int, noise: int) -> tuple[np.ndarray, np.ndarray]:
    """n episodes of `steps` steps: inputs (n, T, 5 [+ 64]) float32 and rewards (n, T) float32 (±1 at T − 1)."""
    cue = rng.integers(2, size=n)
    actions = rng.integers(2, size=(n, steps))
    u = np.zeros((n, steps, 5 + (64 if noise else 0)), np.float32)
    u[np.arange(n), 1, cue] = 1.0
    u[:, :, 2] = 1.0 - np.arange(steps) / steps
    u[:, 1:, 3:5] = np.eye(2, dtype=np.float32)[actions[:, : steps - 1]]  # the action taken at t − 1, consumed at t
    if noise:
        u[:, :, 5:] = np.eye(16, dtype=np.float32)[rng.integers(noise, size=(n, steps, 4))].reshape(n, steps, 64)
    reward = np.zeros((n, steps), np.float32)
    reward[:, -1] = np.where(actions[:, steps - 2] == cue, 1.0, -1.0)
    return u, reward


class Probe(nnx.Module):
    def __init__(self, opts: dict[str, str], inputs: int, rngs: nnx.Rngs):
        self.model, self.head_kind = opts["model"], opts["head"]
        self.inp = MLP(inputs, 1, UNITS, rngs=rngs)
        if self.model == "s3m":
            self.stack = S5Stack(UNITS, STATE, LAYERS, blocks=BLOCKS, rngs=rngs)
            self.out = Dense(UNITS, UNITS, rngs=rngs)
        else:
            self.gru = Dense(2 * UNITS, 3 * UNITS, bias=False, rngs=rngs)
            self.gru_norm = nnx.LayerNorm(3 * UNITS, epsilon=1e-3, rngs=rngs)
        init = zeros if opts["out_init"] == "zeros" else fan_avg
        self.head = MLP(UNITS, 1, 128, BINS if self.head_kind == "twohot" else 1, out_init=init, rngs=rngs)

    def sequence(self, u: jax.Array) -> jax.Array:
        """u (B, T, I) → h (B, T, UNITS)."""
        x = self.inp(u)
        if self.model == "s3m":
            first = jnp.zeros(u.shape[:2], bool).at[:, 0].set(True)
            _, y = self.stack(self.stack.initial(u.shape[0]), x, first)
            return jax.nn.silu(self.out(y))

        def step(h, x_t):
            h = gru_gates(self.gru_norm(self.gru([x_t, h])), h)
            return h, h

        _, hs = jax.lax.scan(step, jnp.zeros((u.shape[0], UNITS)), jnp.moveaxis(x, 1, 0))
        return jnp.moveaxis(hs, 0, 1)

    def loss(self, u: jax.Array, reward: jax.Array) -> jax.Array:
        out = self.head(self.sequence(u))
        if self.head_kind == "twohot":
            return dists.twohot_nll(out, reward, dists.twohot_bins(BINS)).mean()
        return ((out[..., 0] - reward) ** 2).mean()

    def predict_final(self, u: jax.Array) -> jax.Array:
        out = self.head(self.sequence(u))[:, -1]
        return dists.twohot_mean(out, dists.twohot_bins(BINS)) if self.head_kind == "twohot" else out[..., 0]


def main(argv: list[str]) -> dict:
    opts = parse(argv)
    steps, noise, seed = int(opts["N"]) + 2, int(opts["noise"]), int(opts["seed"])
    rng = np.random.default_rng(seed)
    held_u, held_r = episodes(np.random.default_rng(10_000 + seed), 2000, steps, noise)
    probe = Probe(opts, held_u.shape[-1], nnx.Rngs(seed))
    optimizer = nnx.Optimizer(probe, optax.adam(float(opts["lr"])), wrt=nnx.Param)

    @nnx.jit
    def train(probe, optimizer, u, reward):
        loss, grads = nnx.value_and_grad(lambda p: p.loss(u, reward))(probe)
        optimizer.update(probe, grads)
        return loss

    @nnx.jit
    def accuracy(probe, u, reward):
        return jnp.mean(jnp.sign(probe.predict_final(u)) == reward[:, -1])

    start, solved, history = time.perf_counter(), None, []
    for update in range(1, int(opts["updates"]) + 1):
        train(probe, optimizer, *map(jnp.asarray, episodes(rng, int(opts["batch"]), steps, noise)))
        if update % 100 == 0:
            history.append(round(float(accuracy(probe, jnp.asarray(held_u), jnp.asarray(held_r))), 2))
            if history[-1] > 0.9:
                solved = update
                break
    return {**opts, "solved_at": solved, "accuracy_every_100": history[-10:],
            "wall_s": round(time.perf_counter() - start, 1)}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
