"""The world model's loss terms and their declared scales: keys match, a scale weights exactly its term, and a
`model.loss_scales` entry for a term that does not exist is refused when the config is built."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from r2i.config import make_config
from r2i.errors import ConfigError
from r2i.worldmodel import WorldModel, check_scales, weighted_loss


def test_scales_are_declared_for_exactly_the_terms_present():
    cfg = make_config("default", {"model.loss_scales": "{reward: 2.5}", "model.kl_dyn": 0.8}).model
    assert WorldModel.loss_scales(cfg, vector=True, image=False) == {
        "vector": 1.0,
        "reward": 2.5,
        "cont": 1.0,
        "dyn": 0.8,
        "rep": cfg.kl_rep,
    }
    assert set(WorldModel.loss_scales(cfg, vector=False, image=True)) == {"image", "reward", "cont", "dyn", "rep"}


def test_terms_and_scales_must_match():
    terms = {"reward": 0, "cont": 0, "extra": 0}
    with pytest.raises(AssertionError, match=r"terms without a scale \['extra'\], scales without a term \['rep'\]"):
        check_scales(terms, {"reward": 1.0, "cont": 1.0, "rep": 0.1})
    check_scales({"reward": 0}, {"reward": 1.0})


@pytest.mark.parametrize(
    "value,message",
    [
        ("{dyn: 0.8}", "config key 'model.loss_scales' has no term 'dyn'; valid: vector, image, reward, cont"),
        ("{reward: -1}", "config key 'model.loss_scales.reward' must be a finite number >= 0, got -1"),
        ("{cont: .nan}", "config key 'model.loss_scales.cont' must be a finite number >= 0, got nan"),
    ],
)
def test_unknown_or_bad_scale_is_a_config_error(value, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        make_config("default", {"model.loss_scales": value})
    assert "\n" not in str(info.value)


def test_loss_scale_weights_exactly_its_term():
    """Raising one term's scale from 1 to 3 adds exactly 2 × that term's mean to the loss."""
    terms = {k: jax.random.uniform(jax.random.key(i), (2, 5)) for i, k in enumerate(("vector", "reward", "dyn"))}
    scales = {"vector": 1.0, "reward": 1.0, "dyn": 0.5}
    base = weighted_loss(terms, scales)
    np.testing.assert_allclose(base, np.mean(terms["vector"] + terms["reward"] + 0.5 * terms["dyn"]), rtol=1e-6)
    np.testing.assert_allclose(
        weighted_loss(terms, {**scales, "reward": 3.0}) - base, 2.0 * np.mean(terms["reward"]), rtol=1e-5
    )
    with pytest.raises(AssertionError, match=r"scales without a term \['cont'\]"):
        weighted_loss(terms, {**scales, "cont": 1.0})


@pytest.mark.parametrize("sequence", ["s3m", "gru"])
def test_head_inputs_full_reads_the_s5_hidden_state(sequence):
    """`model.head_inputs=full` widens the reward and continue heads by the S5 hidden state and makes their
    predictions depend on it; the default reads (h, z) only, and the GRU (whose hidden state is h) reads (h, z) either
    way."""
    import flax.nnx as nnx
    import jax.numpy as jnp

    from r2i.spaces import ActionSpace, Space

    obs, act = {"vector": Space((3,))}, ActionSpace("discrete", nvec=(2,))
    models = {kind: WorldModel(make_config("tiny", {"model.sequence": sequence, "model.head_inputs": kind}).model,
                               obs, act, dtype=jnp.float32, rngs=nnx.Rngs(0)) for kind in ("output", "full")}
    seq = models["output"].seq
    extra = seq.hidden_size if sequence == "s3m" else 0
    for kind, model in models.items():
        assert model.reward.hidden[0].in_features == seq.deter + seq.z_size + (extra if kind == "full" else 0)
        assert model.cont.hidden[0].in_features == model.reward.hidden[0].in_features
    state = seq.start(seq.filter(seq.initial(1), jnp.ones((1, 1, models["output"].embed_size)),
                                 jnp.eye(2)[None, :1], jnp.ones((1, 1), bool), jax.random.key(0))[1])
    if sequence == "gru":
        return
    # Only the hidden state changes: the default heads cannot see it, the full ones do.
    moved = {**state, "x": state["x"] + 1.0}
    for kind, model in models.items():
        changed = not np.allclose(model.reward_mean(state), model.reward_mean(moved)) or not np.allclose(
            model.cont_prob(state), model.cont_prob(moved))
        assert changed == (kind == "full"), kind


def test_reward_head_output_starts_at_zero_unless_scaled():
    """`model.reward_out_scale=0` (the dataclass default, DreamerV3's) starts the reward head's output kernel at zero,
    so early predictions are exactly 0; a positive scale (the CPU presets' 1) draws it with fan-average variance
    scale·2/(fan_in + fan_out)."""
    import flax.nnx as nnx
    import jax.numpy as jnp

    from r2i.spaces import ActionSpace, Space

    obs, act = {"vector": Space((3,))}, ActionSpace("discrete", nvec=(2,))

    def kernel(scale):
        cfg = make_config("tiny", {"model.reward_out_scale": scale}).model
        return np.asarray(WorldModel(cfg, obs, act, dtype=jnp.float32, rngs=nnx.Rngs(0)).reward.out.kernel[...])

    assert not kernel(0.0).any()
    one, four = kernel(1.0), kernel(4.0)
    fan_in, fan_out = one.shape
    assert 0.7 < one.std() / np.sqrt(2.0 / (fan_in + fan_out)) < 1.1  # a truncated normal's std is ≈ 0.88 of its scale
    np.testing.assert_allclose(four, 2.0 * one, rtol=1e-6)  # same draw, std ∝ √scale
    with pytest.raises(ConfigError, match="reward_out_scale"):
        make_config("tiny", {"model.reward_out_scale": -1.0})


@pytest.mark.parametrize("size", [16, 64])
def test_image_size_sets_the_conv_stages(size):
    """Square power-of-two images of any size ≥ 8 meet the conv stack at a 4×4 grid (log2(S/4) stride-2 stages; 64 →
    DreamerV3's four), and the decoder draws them back at the same size. Abstract: shapes only, nothing is initialised
    or compiled."""
    import flax.nnx as nnx
    import jax.numpy as jnp

    from r2i.nets import image_stages
    from r2i.spaces import ActionSpace, Space

    assert [image_stages(s) for s in (8, 16, 32, 64)] == [1, 2, 3, 4]
    cfg = make_config("tiny", {"model.cnn_depth": 2}).model
    obs, act = {"image": Space((size, size, 3), np.uint8)}, ActionSpace("discrete", nvec=(2,))
    model = nnx.eval_shape(lambda: WorldModel(cfg, obs, act, dtype=jnp.float32, rngs=nnx.Rngs(0)))
    assert len(model.image_encoder.convs) == image_stages(size)
    assert model.image_encoder.out_features == 4 * 4 * 2 * 2 ** (image_stages(size) - 1)
    graph, params = nnx.split(model)
    embed = jax.eval_shape(lambda p, x: nnx.merge(graph, p).encode(x), params,
                           {"image": jax.ShapeDtypeStruct((2, 3, size, size, 3), jnp.uint8)})
    assert embed.shape == (2, 3, model.embed_size)
    drawn = jax.eval_shape(lambda p, f: nnx.merge(graph, p).image_decoder(f), params,
                           jax.ShapeDtypeStruct((2, 3, model.seq.deter + model.seq.z_size), jnp.float32))
    assert drawn.shape == (2, 3, size, size, 3)


@pytest.mark.parametrize("spaces, match", [
    ({"image": (48, 48, 3)}, "power of two"), ({"image": (64, 32, 3)}, "power of two"),
    ({"image": (4, 4, 3)}, "power of two"), ({"a": (16, 16, 3), "b": (64, 64, 1)}, "one size"),
])  # fmt: skip
def test_bad_image_sizes_are_refused_with_the_fix(spaces, match):
    import flax.nnx as nnx
    import jax.numpy as jnp

    from r2i.errors import EnvError
    from r2i.spaces import ActionSpace, Space

    obs = {key: Space(shape, np.uint8) for key, shape in spaces.items()}
    with pytest.raises(EnvError, match=match):
        nnx.eval_shape(lambda: WorldModel(make_config("tiny").model, obs, ActionSpace("discrete", nvec=(2,)),
                                          dtype=jnp.float32, rngs=nnx.Rngs(0)))
