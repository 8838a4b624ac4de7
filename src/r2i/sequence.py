"""Sequence models behind one interface: S3M (R2I's S5 stack) and RSSM-GRU (DreamerV3's baseline).

Both offer the functions below; every step-like one takes and returns the carry first, `(carry, …) → (carry, out)` as
`jax.lax.scan` does. *Filtering* is inferring the posterior states from the observations so far (DreamerV3 calls it
`observe`; in r2i `observe` is the environment adapters' word for building an observation); *imagining* steps the
prior without observations.

* `initial(batch)` → carry, the recurrent state between calls: {"z": (B, Z), "a": (B, A), plus "x": (B, N, P) complex64
  for S3M or "h": (B, D) for the GRU}. `z` and `a` are the previous latent and action; `z` as the sequence model reads
  it (`model.latent_input`: the one-hot sample, with 'probs' the probabilities it was drawn from, with 'mode' the
  one-hot of their most likely class).
* `filter(carry, embed, action, is_first, key)` over a window: embed (B, T, E), action (B, T, A) with a_t taken at
  obs_t (the model consumes a_{t−1}), is_first (B, T) → (carry, out) with out = {"h": (B, T, D), "z": (B, T, Z),
  "post": (B, T, S, C) and "prior": (B, T, S, C) log-probabilities, "x" (S3M only): (B, T, N, P)}.
  S3M runs it in parallel over T (the posterior depends on the observation only); the GRU runs a scan.
* `filter_step(carry, embed, is_first, key, sample=True)` for acting, one step: embed (B, E), is_first (B,) →
  (carry, out) with out = {"h", "z", ("x")}; z is a sample of the posterior, or its mode with sample=False (the
  deterministic evaluation). The caller writes the chosen action into carry["a"].
* `start(out)` → imagination state {"h": (N, D), "z": (N, Z), ("x": (N, N_l, P))} from filter outputs flattened;
  with `model.latent_input=probs` or `mode` filter outputs and imagination states also hold "zin" (…, Z): the
  latent's probabilities or mode, which the next step reads instead of the sample z.
* `imagine_step(state, action, key)` → next state from the prior: state as from `start`, action (N, A).
* `policy_features(state, kind)` → list of arrays that the actor and critic read (see `feature_size`).
* `head_features(state, kind)` → list of arrays that the reward and continue heads read (see `head_feature_size`).

At an episode start (is_first_t) the model starts from its initial state, identically in `filter` and
`filter_step` and therefore in training and acting: S3M replaces the previous latent and action by zeros and the
SSM state by x_init (inside the scan); the GRU uses DreamerV3's initial state (h0, the prior's mode at h0, action 0).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from r2i import dists, scan_grad
from r2i.config import ModelConfig
from r2i.nets import MLP, Dense
from r2i.ssm import S5Stack


def _mask(x: jax.Array, is_first: jax.Array) -> jax.Array:
    """Zero x (..., F) where is_first (...) is set."""
    return jnp.where(is_first[..., None], jnp.zeros_like(x), x)


def _shift(first: jax.Array, seq: jax.Array) -> jax.Array:
    """(B, F) and (B, T, F) → (B, T, F): [first, seq_0, …, seq_{T−2}], the previous element of every step."""
    return jnp.concatenate([first[:, None].astype(seq.dtype), seq[:, :-1]], 1)


class _Latent(nnx.Module):
    """Shared pieces: the categorical latent and the prior head p(ẑ | h)."""

    def _init_latent(self, cfg: ModelConfig, dtype, rngs):
        self.stoch, self.classes, self.unimix = cfg.stoch, cfg.classes, cfg.unimix
        self.latent_input = cfg.latent_input
        self.z_size = cfg.stoch * cfg.classes
        self.deter = cfg.deter
        self.prior_net = MLP(cfg.deter, 1, cfg.hidden, self.z_size, dtype=dtype, rngs=rngs)

    def _logp(self, logits: jax.Array) -> jax.Array:
        """(..., S·C) → (..., S, C) float32 log-probabilities with unimix."""
        logits = logits.reshape(logits.shape[:-1] + (self.stoch, self.classes))
        return dists.unimix_logits(logits, self.unimix)

    def _sample(self, key, logp: jax.Array, sample: bool = True) -> jax.Array:
        """(..., S, C) → (..., S·C) straight-through one-hot sample, or the one-hot mode with sample=False."""
        z = dists.onehot_sample(key, logp) if sample else dists.onehot_mode(logp)
        return z.reshape(z.shape[:-2] + (self.z_size,))

    def prior(self, h: jax.Array) -> jax.Array:
        return self._logp(self.prior_net(h))

    def _as_input(self, z: jax.Array, logp: jax.Array) -> jax.Array:
        """What the next step reads of a latent: z (..., Z) itself, or with `latent_input='probs'` the probabilities
        of logp (..., S, C) it was drawn from, or with 'mode' the one-hot of their most likely class (straight-through),
        flattened to (..., Z) float32."""
        if self.latent_input == "probs":
            return jnp.exp(logp).reshape(z.shape)
        if self.latent_input == "mode":
            return self._sample(None, logp, sample=False)
        return z

    def _with_input(self, state: dict, z_in: jax.Array) -> dict:
        """state plus "zin" when the next step does not read the sample (so that the sample-reading default keeps its
        pytrees)."""
        return {**state, "zin": z_in} if self.latent_input != "sample" else state

    def start(self, out: dict) -> dict:
        """Imagination starts from filter outputs (B, T, …): every state key ("h", "z", S3M's "x", "zin") flattened to
        (B·T, …); the posterior and prior log-probabilities are not part of a state."""
        return {k: v.reshape((-1,) + v.shape[2:]) for k, v in out.items() if k not in ("post", "prior")}

    def _read(self, state: dict) -> jax.Array:
        """The previous latent as the next step reads it, from an imagination state."""
        return state["zin"] if self.latent_input != "sample" else state["z"]


class S3M(_Latent):
    """R2I's sequence model: posterior q(z_t | o_t), u_t = MLP(z_{t−1}, a_{t−1}), S5 stack, h_t = SiLU(Dense(y_t))."""

    def __init__(self, cfg: ModelConfig, embed_size: int, act_size: int, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self._init_latent(cfg, dtype, rngs)
        ssm = cfg.ssm
        self.act_size = act_size
        self.posterior_net = MLP(embed_size, 1, cfg.hidden, self.z_size, dtype=dtype, rngs=rngs)
        self.inp = MLP(self.z_size + act_size, 1, ssm.units, dtype=dtype, rngs=rngs)
        self.stack = S5Stack(
            ssm.units, ssm.state, ssm.layers, blocks=ssm.blocks, discretization=ssm.discretization,
            learned_init=ssm.learned_init, dt_min=ssm.dt_min, dt_max=ssm.dt_max, method=ssm.method,
            c_init=ssm.c_init, dtype=dtype, rngs=rngs,
        )
        self.out = Dense(ssm.units, cfg.deter, dtype=dtype, rngs=rngs)
        self.hidden_size = 2 * ssm.layers * ssm.state

    def initial(self, batch: int) -> dict:
        return {
            "x": self.stack.initial(batch),
            "z": jnp.zeros((batch, self.z_size), jnp.float32),
            "a": jnp.zeros((batch, self.act_size), jnp.float32),
        }

    def _input(self, z_prev, a_prev, is_first):
        return self.inp([_mask(z_prev, is_first), _mask(a_prev, is_first)])

    def filter(self, carry, embed, action, is_first, key):
        post = self._logp(self.posterior_net(embed))
        z = self._sample(key, post)
        z_in = self._as_input(z, post)
        u = self._input(_shift(carry["z"], z_in), _shift(carry["a"], action), is_first)
        x, y = self.stack(carry["x"], u, is_first)
        h = jax.nn.silu(self.out(y))
        out = self._with_input({"h": h, "z": z, "post": post, "prior": self.prior(h), "x": x}, z_in)
        new = {"x": x[:, -1], "z": z_in[:, -1].astype(jnp.float32), "a": action[:, -1].astype(jnp.float32)}
        return new, out

    def filter_step(self, carry, embed, is_first, key, sample: bool = True):
        post = self._logp(self.posterior_net(embed))
        z = self._sample(key, post, sample)
        u = self._input(carry["z"], carry["a"], is_first)
        x, y = self.stack.step(carry["x"], u, is_first)
        h = jax.nn.silu(self.out(y))
        return {"x": x, "z": self._as_input(z, post), "a": carry["a"]}, {"h": h, "z": z, "x": x}

    def imagine_step(self, state, action, key):
        u = self.inp([self._read(state), action])
        no_reset = jnp.zeros(u.shape[:1], bool)
        x, y = self.stack.step(state["x"], u, no_reset)
        h = jax.nn.silu(self.out(y))
        prior = self.prior(h)
        z = self._sample(key, prior)
        return self._with_input({"h": h, "z": z, "x": x}, self._as_input(z, prior))

    def feature_size(self, kind: str) -> int:
        return self.z_size + {"output": self.deter, "hidden": self.hidden_size, "full": self.deter + self.hidden_size}[
            kind
        ]

    def policy_features(self, state, kind: str) -> list[jax.Array]:
        """'output': [z, h]; 'hidden': [z, x]; 'full': [z, h, x] with x = (Re x, Im x) of all layers, flattened."""
        if kind == "output":
            return [state["z"], state["h"]]
        x = self.flat_hidden(state["x"])
        return [state["z"], x] if kind == "hidden" else [state["z"], state["h"], x]

    def head_features(self, state, kind: str) -> list[jax.Array]:
        """The world model's reward and continue heads' inputs: 'output' [h, z]; 'full' [h, z, x] (x as above)."""
        if kind == "output":
            return [state["h"], state["z"]]
        return [state["h"], state["z"], self.flat_hidden(state["x"])]

    def head_feature_size(self, kind: str) -> int:
        return self.deter + self.z_size + (self.hidden_size if kind == "full" else 0)

    def flat_hidden(self, x: jax.Array) -> jax.Array:
        """x: (..., layers, P) complex64 → (..., hidden_size) float32, the Re and Im parts of every layer's state."""
        return jnp.concatenate([x.real, x.imag], -1).reshape(x.shape[:-2] + (self.hidden_size,))


def gru_gates(parts: jax.Array, h: jax.Array) -> jax.Array:
    """DreamerV3's GRU update from the normalised gate pre-activations parts (B, 3D) = [reset, candidate, update] and
    the previous state h (B, D) → (B, D) float32; the update gate starts biased towards keeping h (σ(u − 1))."""
    reset, cand, update = jnp.split(parts.astype(jnp.float32), 3, -1)
    cand = jnp.tanh(jax.nn.sigmoid(reset) * cand)
    update = jax.nn.sigmoid(update - 1.0)
    return update * cand + (1 - update) * h


class RSSM(_Latent):
    """DreamerV3's recurrent state-space model with a LayerNorm GRU: h_t = GRU(h_{t−1}, MLP(z_{t−1}, a_{t−1})),
    posterior q(z_t | h_t, o_t), prior p(ẑ_t | h_t). Sequential by construction (the posterior reads h_t).
    An episode starts from DreamerV3's initial state (h0 = tanh of a learned vector or zeros, z0 = the prior's mode
    at h0, previous action zeros)."""

    def __init__(self, cfg: ModelConfig, embed_size: int, act_size: int, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self._init_latent(cfg, dtype, rngs)
        self.act_size = act_size
        self.inp = MLP(self.z_size + act_size, 1, cfg.hidden, dtype=dtype, rngs=rngs)
        self.gru = Dense(cfg.hidden + cfg.deter, 3 * cfg.deter, bias=False, dtype=dtype, rngs=rngs)
        self.gru_norm = nnx.LayerNorm(3 * cfg.deter, epsilon=1e-3, dtype=dtype, rngs=rngs)
        self.posterior_net = MLP(cfg.deter + embed_size, 1, cfg.hidden, self.z_size, dtype=dtype, rngs=rngs)
        self.learned_initial = cfg.learned_initial_gru
        if self.learned_initial:
            self.h0 = nnx.Param(jnp.zeros((cfg.deter,), jnp.float32))
        self.hidden_size = cfg.deter
        self.dtype = dtype

    def initial(self, batch: int) -> dict:
        return {
            "h": jnp.zeros((batch, self.deter), jnp.float32),
            "z": jnp.zeros((batch, self.z_size), jnp.float32),
            "a": jnp.zeros((batch, self.act_size), jnp.float32),
        }

    def _h0(self, batch: int) -> jax.Array:
        if self.learned_initial:
            return jnp.broadcast_to(jnp.tanh(self.h0[...]), (batch, self.deter))
        return jnp.zeros((batch, self.deter), jnp.float32)

    def _cell(self, h: jax.Array, z: jax.Array, a: jax.Array) -> jax.Array:
        """GRU with LayerNorm over the gates (DreamerV3): h (B, D), z (B, Z), a (B, A) → (B, D) float32."""
        return gru_gates(self.gru_norm(self.gru([self.inp([z, a]), h])), h)

    def _reset(self, carry, is_first):
        """At episode starts: h = h0, z = the mode of the prior at h0, a = 0 (DreamerV3's initial state)."""
        h0 = self._h0(1)
        prior0 = self.prior(h0)
        z0 = self._as_input(dists.onehot_mode(prior0).reshape(1, self.z_size), prior0)
        h = jnp.where(is_first[:, None], h0, carry["h"])
        z = jnp.where(is_first[:, None], z0, carry["z"])
        return h, z, _mask(carry["a"], is_first)

    def filter_step(self, carry, embed, is_first, key, sample: bool = True):
        h = self._cell(*self._reset(carry, is_first))
        post = self._logp(self.posterior_net([h, embed]))
        z = self._sample(key, post, sample)
        return {"h": h, "z": self._as_input(z, post), "a": carry["a"]}, {"h": h, "z": z}

    def filter(self, carry, embed, action, is_first, key):
        graph, params = nnx.split(self)

        def step(params, carry, inputs, consts):
            model = nnx.merge(graph, params)
            embed_t, action_t = inputs
            first_t, key_t = consts
            h = model._cell(*model._reset(carry, first_t))
            post = model._logp(model.posterior_net([h, embed_t]))
            z = model._sample(key_t, post)
            return {"h": h, "z": model._as_input(z, post), "a": action_t}, (h, z, post)

        keys = jax.random.split(key, embed.shape[1])
        inputs = (jnp.swapaxes(embed, 0, 1), jnp.swapaxes(action, 0, 1).astype(jnp.float32))
        consts = (jnp.swapaxes(is_first, 0, 1), keys)
        # At batch 1 JAX's transpose of the scan spends most of the backward pass adding per-step weight gradients
        # (1-row outer products); the adjoint scan sums them after the loop (r2i.scan_grad). At batch ≥ 2 the plain
        # transpose is the faster of the two, so it stays.
        scan = scan_grad.adjoint_scan if embed.shape[0] == 1 else scan_grad.plain_scan
        carry, (h, z, post) = scan(step, params, carry, inputs, consts)
        h, z, post = (jnp.swapaxes(v, 0, 1) for v in (h, z, post))
        return carry, self._with_input({"h": h, "z": z, "post": post, "prior": self.prior(h)}, self._as_input(z, post))

    def imagine_step(self, state, action, key):
        h = self._cell(state["h"], self._read(state), action)
        prior = self.prior(h)
        z = self._sample(key, prior)
        return self._with_input({"h": h, "z": z}, self._as_input(z, prior))

    def feature_size(self, kind: str) -> int:
        return self.z_size + self.deter

    def policy_features(self, state, kind: str) -> list[jax.Array]:
        """The GRU's hidden state is h itself, so every kind reads [z, h]."""
        return [state["z"], state["h"]]

    def head_features(self, state, kind: str) -> list[jax.Array]:
        """The GRU's hidden state is h itself, so every kind reads [h, z]."""
        return [state["h"], state["z"]]

    def head_feature_size(self, kind: str) -> int:
        return self.deter + self.z_size


def make_sequence_model(cfg: ModelConfig, embed_size: int, act_size: int, *, dtype, rngs: nnx.Rngs):
    if cfg.sequence == "s3m":
        return S3M(cfg, embed_size, act_size, dtype=dtype, rngs=rngs)
    if cfg.sequence == "gru":
        return RSSM(cfg, embed_size, act_size, dtype=dtype, rngs=rngs)
    raise ValueError(f"model.sequence must be 's3m' or 'gru', got {cfg.sequence!r}")
