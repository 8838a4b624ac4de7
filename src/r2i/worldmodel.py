"""World model: observation encoder, sequence model (S3M or RSSM-GRU), decoder, reward and continue heads, losses.

Per step (docs/design.md §5):  loss_t = pred_t + β_dyn·max(free, KL[sg(q)‖p]) + β_rep·max(free, KL[q‖sg(p)]),
pred_t = decoder NLL (vector: symlog MSE, images: MSE) + reward two-hot NLL + continue Bernoulli NLL,
with heads reading feat = (h_t, z_t). Each term is weighted by its declared scale (`WorldModel.loss_scales`: the
prediction terms by `model.loss_scales`, default 1, the KL terms by β_dyn, β_rep); terms and scales must match.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from r2i import dists
from r2i.config import LOSS_SCALE_TERMS, ModelConfig
from r2i.dists import sg
from r2i.errors import EnvError
from r2i.nets import MLP, ImageDecoder, ImageEncoder, fan_avg_init, is_image_size, zeros
from r2i.sequence import make_sequence_model
from r2i.spaces import ActionSpace, Space


def reward_head(cfg: ModelConfig, in_features: int, *, dtype=jnp.float32, rngs: nnx.Rngs) -> MLP:
    """The reward head of `model` config `cfg`: (…, in_features) → (…, reward_bins) two-hot logits.

    DreamerV3 starts its output kernel at zero (early predictions exactly 0). Then the reward loss sends no gradient
    into the head's hidden layer or the features until that kernel has grown; a drawn start (`reward_out_scale` > 0)
    sends it from the first update (docs/notes.md, "Two things hold the XOR back")."""
    out_init = zeros if cfg.reward_out_scale == 0 else fan_avg_init(cfg.reward_out_scale)
    return MLP(in_features, cfg.reward_head.layers, cfg.reward_head.units, cfg.reward_bins, out_init=out_init,
               dtype=dtype, rngs=rngs)


class WorldModel(nnx.Module):
    def __init__(
        self, cfg: ModelConfig, obs_space: dict[str, Space], act_space: ActionSpace, *, dtype, rngs: nnx.Rngs
    ):
        self.vector_keys = tuple(sorted(k for k, s in obs_space.items() if not s.is_image))
        self.image_keys = tuple(sorted(k for k, s in obs_space.items() if s.is_image))
        if not self.vector_keys and not self.image_keys:
            raise EnvError("the environment has no observation keys the agent can read")
        sizes = {obs_space[key].shape[:2] for key in self.image_keys}
        for key in self.image_keys:
            height, width = obs_space[key].shape[:2]
            if height != width or not is_image_size(height):
                raise EnvError(f"image observation '{key}' has shape {obs_space[key].shape}; the image encoder needs "
                               "(S, S, C) with S a power of two >= 8 (every adapter's default is 64): resize it in "
                               "the environment adapter")
        if len(sizes) > 1:
            raise EnvError(f"image observations {', '.join(self.image_keys)} have different sizes {sorted(sizes)}; "
                           "the image encoder stacks them along channels: resize them to one size in the adapter")
        self.image_size = sizes.pop()[0] if sizes else 64
        self.vector_shapes = tuple(obs_space[k].shape for k in self.vector_keys)
        self.vector_sizes = tuple(math.prod(shape) for shape in self.vector_shapes)
        self.image_channels = tuple(obs_space[k].shape[2] for k in self.image_keys)
        self.bins = cfg.reward_bins
        self.kl_free = cfg.kl_free
        self.dtype = dtype

        embed = 0
        if self.vector_keys:
            self.vector_encoder = MLP(sum(self.vector_sizes), cfg.encoder.layers, cfg.encoder.units, dtype=dtype,
                                      rngs=rngs)
            embed += self.vector_encoder.out_features
        if self.image_keys:
            self.image_encoder = ImageEncoder(sum(self.image_channels), cfg.cnn_depth, size=self.image_size,
                                              dtype=dtype, rngs=rngs)
            embed += self.image_encoder.out_features
        self.embed_size = embed
        self.seq = make_sequence_model(cfg, embed, act_space.size, dtype=dtype, rngs=rngs)
        feat = cfg.deter + self.seq.z_size
        if self.vector_keys:
            self.vector_decoder = MLP(feat, cfg.decoder.layers, cfg.decoder.units, sum(self.vector_sizes),
                                      dtype=dtype, rngs=rngs)
        if self.image_keys:
            self.image_decoder = ImageDecoder(feat, sum(self.image_channels), cfg.cnn_depth, size=self.image_size,
                                              dtype=dtype, rngs=rngs)
        # The reward and continue heads may also read the S5 hidden state (`model.head_inputs`); the decoders read (h, z).
        self.head_inputs = cfg.head_inputs
        self.mask_cut = cfg.mask_cut_episodes
        head = self.seq.head_feature_size(cfg.head_inputs)
        self.reward = reward_head(cfg, head, dtype=dtype, rngs=rngs)
        self.cont = MLP(head, cfg.cont_head.layers, cfg.cont_head.units, 1, dtype=dtype, rngs=rngs)
        self.scales = self.loss_scales(cfg, bool(self.vector_keys), bool(self.image_keys))

    @staticmethod
    def loss_scales(cfg: ModelConfig, vector: bool, image: bool) -> dict[str, float]:
        """The weight of every loss term this world model has (the decoders only for observation kinds it sees):
        `model.loss_scales` (default 1.0) for the predictions, β_dyn and β_rep for the KL terms."""
        scales = {term: float(cfg.loss_scales.get(term, 1.0)) for term in LOSS_SCALE_TERMS}
        scales.update(dyn=cfg.kl_dyn, rep=cfg.kl_rep)
        for term, present in (("vector", vector), ("image", image)):
            if not present:
                del scales[term]
        return scales

    # -- encoding ------------------------------------------------------------------------------------------------------

    def encode(self, obs: dict) -> jax.Array:
        """obs: vectors (..., d) and images (..., S, S, C) uint8 (S = 64 unless the env draws smaller) → (..., E)."""
        parts = []
        if self.vector_keys:
            parts.append(self.vector_encoder(dists.symlog(self._vectors(obs))))
        if self.image_keys:
            parts.append(self.image_encoder(jnp.concatenate([obs[k] for k in self.image_keys], -1)))
        return parts[0] if len(parts) == 1 else jnp.concatenate(parts, -1)

    def _vectors(self, obs: dict) -> jax.Array:
        """All vector observations flattened and concatenated: (..., Σd) float32."""
        flat = []
        for key, shape in zip(self.vector_keys, self.vector_shapes):
            x = obs[key]
            flat.append(x.reshape(x.shape[: x.ndim - len(shape)] + (-1,)).astype(jnp.float32))
        return flat[0] if len(flat) == 1 else jnp.concatenate(flat, -1)

    # -- heads ---------------------------------------------------------------------------------------------------------

    def reward_mean(self, state: dict) -> jax.Array:
        """Predicted reward (...,) float32 from a model state {"h": (..., D), "z": (..., Z), ("x": S3M's hidden)}."""
        return dists.twohot_mean(self.reward(self.seq.head_features(state, self.head_inputs)),
                                 dists.twohot_bins(self.bins))

    def cont_prob(self, state: dict) -> jax.Array:
        """Predicted continue probability (...,) float32 from a model state (as `reward_mean`)."""
        return jax.nn.sigmoid(self.cont(self.seq.head_features(state, self.head_inputs))[..., 0].astype(jnp.float32))

    # -- loss ----------------------------------------------------------------------------------------------------------

    def loss(self, batch: dict, carry: dict, key: jax.Array):
        """World-model loss over a batch window.

        batch: observation keys (B, T, …), "action" (B, T, A), "reward" (B, T) float32, "is_first", "is_last",
        "is_terminal" (B, T) bool, optionally "seen_start" (B, T) bool (`Replay.sample`; read with
        `model.mask_cut_episodes`). carry: the sequence model's carry (B, …).
        Returns (scalar loss, (new carry, filter outputs, metrics dict of scalars)).
        """
        b, t = batch["is_first"].shape
        assert batch["action"].shape[:2] == (b, t), f"action must be (B, T, A)=({b}, {t}, A), got {batch['action'].shape}"
        assert batch["reward"].shape == (b, t), f"reward must be (B, T)=({b}, {t}), got {batch['reward'].shape}"
        embed = self.encode(batch)
        carry, out = self.seq.filter(carry, embed, batch["action"], batch["is_first"], key)
        h, z = out["h"], out["z"]
        assert h.shape[:2] == (b, t) and z.shape[:2] == (b, t), f"h {h.shape} and z {z.shape} must start with (B, T)"

        terms = {}
        if self.vector_keys:
            target = self._vectors(batch)
            pred = self.vector_decoder([h, z]).astype(jnp.float32)
            terms["vector"] = jnp.sum((pred - dists.symlog(target)) ** 2, -1)
        if self.image_keys:
            target = jnp.concatenate([batch[k] for k in self.image_keys], -1).astype(jnp.float32) / 255.0
            pred = self.image_decoder([h, z])
            terms["image"] = jnp.sum((pred - target) ** 2, (-3, -2, -1))
        head = self.seq.head_features(out, self.head_inputs)
        nll_reward = dists.twohot_nll(self.reward(head), batch["reward"], dists.twohot_bins(self.bins))
        uncut = uncut_steps(batch)
        counted = uncut if self.mask_cut else jnp.ones_like(uncut)
        terms["reward"] = nll_reward
        if self.mask_cut:  # rescaled so that the term keeps its weight among the others: its mean over the uncut steps
            terms["reward"] = jnp.where(uncut, nll_reward, 0.0) / jnp.maximum(uncut.mean(), 1.0 / (b * t))
        cont_target = 1.0 - batch["is_terminal"].astype(jnp.float32)
        terms["cont"] = dists.bernoulli_nll(self.cont(head)[..., 0], cont_target)

        post, prior = out["post"], out["prior"]
        kl_dyn = jnp.sum(dists.categorical_kl(sg(post), prior), -1)
        kl_rep = jnp.sum(dists.categorical_kl(post, sg(prior)), -1)
        terms["dyn"] = jnp.maximum(self.kl_free, kl_dyn)
        terms["rep"] = jnp.maximum(self.kl_free, kl_rep)
        for name, value in terms.items():
            assert value.shape == (b, t), f"world-model loss term '{name}' must be (B, T)=({b}, {t}), got {value.shape}"
        loss = weighted_loss(terms, self.scales)

        metrics = {f"model/loss_{k}": v.mean() for k, v in terms.items()}
        # On sparse tasks the mean hides the rare rewarded steps (1 in 514 at memory length 512): their own mean says
        # whether the head learns them. NaN in a batch without one, which the logger leaves out of its means.
        rewarded = (batch["reward"] != 0) & counted
        count = rewarded.sum()
        metrics.update({
            "model/loss_reward_nonzero": jnp.where(
                count > 0, jnp.sum(jnp.where(rewarded, nll_reward, 0.0)) / jnp.maximum(count, 1), jnp.nan
            ),
            "model/uncut_fraction": uncut.mean(),
            "model/loss": loss,
            "model/kl": kl_dyn.mean(),
            "model/post_entropy": jnp.sum(dists.categorical_entropy(post), -1).mean(),
            "model/prior_entropy": jnp.sum(dists.categorical_entropy(prior), -1).mean(),
        })
        return loss, (carry, out, metrics)


def uncut_steps(batch: dict) -> jax.Array:
    """(B, T) bool: the steps whose episode the window holds from its first step (`batch["seen_start"]`, all True for
    a batch without it, such as a hand-made one)."""
    if "seen_start" not in batch:
        return jnp.ones(batch["is_first"].shape, bool)
    seen = jnp.asarray(batch["seen_start"])
    assert seen.shape == batch["is_first"].shape, f"seen_start {seen.shape} must be (B, T) like is_first"
    return seen.astype(bool)


def weighted_loss(terms: dict, scales: dict) -> jax.Array:
    """Σ_k scale_k · term_k averaged over all steps: terms {name: (B, T)}, scales {name: float}, same keys → () float32."""
    check_scales(terms, scales)
    return sum(scales[k] * v for k, v in terms.items()).mean()


def check_scales(terms: dict, scales: dict) -> None:
    """Every loss term has a declared scale and every scale a term (DreamerV3's check): a term added without a weight,
    or a weight whose term is gone, fails at trace time with the names."""
    assert terms.keys() == scales.keys(), (
        f"world-model loss terms and scales differ: terms without a scale {sorted(terms.keys() - scales.keys())}, "
        f"scales without a term {sorted(scales.keys() - terms.keys())}"
    )
