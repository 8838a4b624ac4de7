"""Properties of the agent: sequence models (S3M / RSSM-GRU), world-model learning, gradient isolation, policy inputs,
training and acting over observation and action spaces, and the policy carry's reset at episode starts.

All agents are tiny (see TINY) and cached per configuration (`make_agent`), so each compiles `train` / `policy` once.

Tolerances: float32 throughout. The parallel S3M scan and the step loop compute the same sums in a different order,
so they agree to rtol/atol 1e-5 (observed differences are ~1e-7); runs that compute literally the same operations on
the same numbers (an episode after a reset vs. the same episode alone in the same-length window) are compared to 1e-6.
Gradient isolation is exact: the gradients that must vanish are compared with 0, not with a tolerance.

Coverage of spaces: compiling `train` takes ~15–20 s per agent on 2 cores (XLA compile time, whatever the size), so
the train/act cases are a covering set rather than the full product: S3M × vector × continuous, S3M × vector+image ×
MultiDiscrete(3, 2) (with policy_inputs 'full'), GRU × image × Discrete(4). Acting with GRU × vector × continuous is
checked by the carry-reset test, and the gradient-isolation tests differentiate the full loss of S3M × continuous and
GRU × vector × Discrete(4) (every gradient finite).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from r2i import dists
from r2i.agent import GROUPS, Agent, make_optimizer
from r2i.behavior import Actor
from r2i.config import OptimConfig, make_config
from r2i.envs.base import ActionSpace, Space
from r2i.errors import ConfigError

LOSSES = ("model", "actor", "critic")

# The `tiny` preset (every network present, just narrow; reward_bins odd like the default 255, so that the centre bin
# is 0 up to float32 rounding) with the default stack of two S5 layers (a stack, not a single layer, is what these
# tests take through observe, imagine and the update), float32 on any backend, a 4-step horizon and a wider image
# encoder: the sizes these tests had before the preset existed.
TINY = {"model.ssm.layers": 2, "model.dtype": "float32", "behavior.horizon": 4, "model.cnn_depth": 4}

OBS_SPACES = {
    "vector": {"vec": Space((5,))},
    "image": {"image": Space((16, 16, 3), np.uint8)},  # two conv stages: cheap to compile
    "mixed": {"vec": Space((5,)), "image": Space((64, 64, 3), np.uint8)},  # DreamerV3's four stages, every adapter's size
}

ACT_SPACES = {
    "discrete": ActionSpace("discrete", nvec=(4,)),
    "multidiscrete": ActionSpace("discrete", nvec=(3, 2)),
    "continuous": ActionSpace("continuous", dims=2, low=(-1.0, -1.0), high=(1.0, 1.0)),
}


def tiny_config(sequence: str = "s3m", **overrides):
    """Config of the tiny agent; overrides are dotted keys (`policy_inputs="full"` is short for model.policy_inputs)."""
    flat = dict(TINY)
    flat["model.sequence"] = sequence
    for key, value in overrides.items():
        flat[key if "." in key else f"model.{key}"] = value
    return make_config("tiny", flat)


@functools.cache
def _agent(sequence: str, obs: str, act: str, overrides: tuple) -> Agent:
    return Agent.from_config(tiny_config(sequence, **dict(overrides)), OBS_SPACES[obs], ACT_SPACES[act])


@pytest.fixture(scope="module")
def make_agent():
    """make_agent(sequence='s3m', obs='vector', act='discrete', **overrides) → a cached Agent."""

    def make(sequence="s3m", obs="vector", act="discrete", **overrides):
        return _agent(sequence, obs, act, tuple(sorted(overrides.items())))

    return make


def random_obs(obs_space: dict, shape: tuple, rng: np.random.Generator) -> dict:
    """Random observations of every key with leading `shape`: vectors N(0, 2²) float32, images uniform uint8."""
    out = {}
    for key, space in obs_space.items():
        if space.is_image:
            out[key] = rng.integers(0, 256, shape + space.shape, dtype=np.uint8)
        else:
            out[key] = (2.0 * rng.standard_normal(shape + space.shape)).astype(np.float32)
    return out


def random_actions(act_space: ActionSpace, shape: tuple, rng: np.random.Generator) -> np.ndarray:
    """Valid random actions in the agent's format: (*shape, A) float32."""
    flat = [act_space.sample(rng) for _ in range(int(np.prod(shape)))]
    return np.stack(flat).reshape(shape + (act_space.size,)).astype(np.float32)


@pytest.fixture(scope="module")
def make_batch():
    """make_batch(agent, B, T, seed) → a random training batch with episode boundaries inside the windows."""

    def make(agent: Agent, b: int = 2, t: int = 6, seed: int = 0) -> dict:
        rng = np.random.default_rng(seed)
        batch = random_obs(agent.obs_space, (b, t), rng)
        batch["action"] = random_actions(agent.act_space, (b, t), rng)
        batch["reward"] = rng.standard_normal((b, t)).astype(np.float32)
        is_first = rng.random((b, t)) < 0.2
        is_first[:, 0] = True
        is_last = np.concatenate([is_first[:, 1:], np.zeros((b, 1), bool)], 1)
        batch["is_first"] = is_first
        batch["is_last"] = is_last
        batch["is_terminal"] = is_last & (rng.random((b, t)) < 0.5)
        return {k: jnp.asarray(v) for k, v in batch.items()}

    return make


def perturb(tree, key, scale=0.1):
    """Add N(0, scale²) noise to every leaf: zero-initialised heads, x_init and h0 become non-trivial."""
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(
        treedef, [x + scale * jax.random.normal(k, x.shape, x.dtype) for x, k in zip(leaves, keys)]
    )


def leaves_with_paths(tree):
    return [(jax.tree_util.keystr(path), leaf) for path, leaf in jax.tree_util.tree_leaves_with_path(tree)]


def assert_trees_close(a, b, rtol, atol, what=""):
    ta, tb = jax.tree.structure(a), jax.tree.structure(b)
    assert ta == tb, f"{what}: structures differ: {ta} vs {tb}"
    for (path, x), (_, y) in zip(leaves_with_paths(a), leaves_with_paths(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol, err_msg=f"{what}{path}")


# ----------------------------------------------------------------------------------------------------------------------
# Sequence models: parallel filter vs. filter_step; episode isolation inside a window
# ----------------------------------------------------------------------------------------------------------------------

B, T = 3, 12


def _seq_agent(make_agent, sequence):
    # learned_init: the S3M resets to a learned x_init (made non-zero by `perturb`), not to zeros.
    if sequence == "s3m":
        return make_agent("s3m", "vector", "continuous", **{"model.ssm.learned_init": True})
    return make_agent("gru", "vector", "continuous")  # learned_initial_gru is on by default


@pytest.fixture(scope="module", params=["s3m", "gru"])
def seq_setup(request, make_agent):
    """Agent, perturbed parameters (non-zero x_init / h0, non-zero heads) and the embedding size."""
    agent = _seq_agent(make_agent, request.param)
    params = perturb(agent.init(jax.random.key(0)).params, jax.random.key(1), 0.3)
    wm = agent.world_model(params)
    assert wm.seq.learned_initial if request.param == "gru" else wm.seq.stack.blocks[0].ssm.learned_init
    return agent, params, wm.embed_size


def random_carry(agent, batch, seed):
    """A plausible non-zero carry: complex S5 states, GRU state in (−1, 1), one-hot latents, valid actions."""
    rng = np.random.default_rng(seed)
    carry = {}
    for key, value in agent.initial(batch).items():
        if key == "x":
            carry[key] = jnp.asarray(rng.standard_normal(value.shape) + 1j * rng.standard_normal(value.shape),
                                     jnp.complex64)
        elif key == "h":
            carry[key] = jnp.tanh(jnp.asarray(rng.standard_normal(value.shape), jnp.float32))
        elif key == "z":
            cfg = agent.model_cfg
            idx = rng.integers(0, cfg.classes, (batch, cfg.stoch))
            carry[key] = jax.nn.one_hot(idx, cfg.classes).reshape(batch, -1)
        elif key == "a":
            carry[key] = jnp.asarray(random_actions(agent.act_space, (batch,), rng))
        else:
            raise AssertionError(f"unexpected carry key {key}")
    return carry


def window(agent, embed_size, seed, t=T):
    """Random embeddings (B, t, E), actions (B, t, A) and episode starts: row 0 starts at 0 and 6, row 1 continues
    the carry without resets, row 2 has consecutive starts at 3 and 4 and another at 9."""
    rng = np.random.default_rng(seed)
    embed = jnp.asarray(rng.standard_normal((B, t, embed_size)), jnp.float32)
    action = jnp.asarray(random_actions(agent.act_space, (B, t), rng))
    is_first = np.zeros((B, t), bool)
    is_first[0, [0, 6]] = True
    is_first[2, [3, 4, 9]] = True
    return embed, action, jnp.asarray(is_first)


def seq_fns(agent):
    """Fresh jitted filter / filter_step (traced at first call, so a monkeypatched sampler is picked up)."""

    @jax.jit
    def window(params, carry, embed, action, is_first, key):
        return agent.world_model(params).seq.filter(carry, embed, action, is_first, key)

    @jax.jit
    def step(params, carry, embed, is_first, key):
        seq = agent.world_model(params).seq
        carry, out = seq.filter_step(carry, embed, is_first, key)
        return carry, {**out, "prior": seq.prior(out["h"])}

    return window, step


def deterministic_sampler(monkeypatch):
    """Replace the latent sampler by the mode (still straight-through), so that z no longer depends on the key."""
    monkeypatch.setattr(dists, "onehot_sample", lambda key, logp: dists.onehot_mode(logp))


@pytest.mark.parametrize("sampler", ["random", "mode"])
def test_filter_equals_filter_step(seq_setup, sampler, monkeypatch):
    """The window version (S3M: parallel over T) equals stepping `filter_step`, including mid-window resets.

    The two versions draw their latent samples from differently shaped random numbers, so the samples cannot be
    compared directly. 'random': the real sampler; after every step the test writes the window version's sample z_t
    (and the action a_t, as the acting loop does) into the step carry, so that both versions consume the same z_{t−1}
    and everything that does not depend on the sample itself — h_t, the per-layer S5 states x_t, the prior p(·|h_t)
    and the final carry — must agree. 'mode': the sampler is replaced by the mode in both versions (inside this test
    only), so the samples z_t are deterministic and are compared too, with no substitution.
    """
    agent, params, embed_size = seq_setup
    if sampler == "mode":
        deterministic_sampler(monkeypatch)
    filter_window, step = seq_fns(agent)
    embed, action, is_first = window(agent, embed_size, 0)
    carry0 = random_carry(agent, B, 1)
    carry_w, out = filter_window(params, carry0, embed, action, is_first, jax.random.key(2))
    assert out["h"].shape == (B, T, agent.model_cfg.deter)
    assert out["post"].shape == out["prior"].shape == (B, T, agent.model_cfg.stoch, agent.model_cfg.classes)

    carry = carry0
    keys = jax.random.split(jax.random.key(3), T)
    for t in range(T):
        carry, o = step(params, carry, embed[:, t], is_first[:, t], keys[t])
        names = ["h", "prior"] + (["x"] if "x" in out else []) + (["z"] if sampler == "mode" else [])
        for name in names:
            np.testing.assert_allclose(np.asarray(o[name]), np.asarray(out[name][:, t]), rtol=1e-5, atol=1e-5,
                                       err_msg=f"{name} at t={t}")
        # The step's own sample is a one-hot per latent (up to the straight-through rounding).
        cfg = agent.model_cfg
        np.testing.assert_array_equal(np.round(np.asarray(o["z"])).reshape(B, cfg.stoch, cfg.classes).sum(-1), 1.0)
        z = out["z"][:, t] if sampler == "random" else carry["z"]
        carry = {**carry, "z": z, "a": action[:, t]}
    assert_trees_close(carry, carry_w, 1e-5, 1e-5, "final carry")
    # Not vacuous: the carry matters for row 1 (no reset) — a different carry changes its outputs.
    _, other = filter_window(params, random_carry(agent, B, 7), embed, action, is_first, jax.random.key(2))
    assert np.abs(np.asarray(other["h"][1]) - np.asarray(out["h"][1])).max() > 1e-3


@pytest.mark.parametrize("sequence,reads", [("s3m", "probs"), ("gru", "probs"), ("s3m", "mode"), ("gru", "mode")])
def test_latent_input_probs_keeps_the_sampling_noise_out_of_the_recurrent_state(make_agent, sequence, reads):
    """`model.latent_input=probs` (or `mode`): the sequence model reads the latent's probabilities (or their one-hot
    mode), so filtering (window and step alike, resets included) and imagining give recurrent states that do not
    depend on the sampling key, while the samples z, which the heads read, still do; with 'sample' (DreamerV3, R2I)
    the state depends on the key."""
    state = ["h"] + (["x"] if sequence == "s3m" else [])
    for latent_input in ("sample", reads):
        agent = make_agent(sequence, "vector", "discrete", **{"model.latent_input": latent_input})
        params = perturb(agent.init(jax.random.key(0)).params, jax.random.key(1), 0.3)
        filter_window, step = seq_fns(agent)
        embed, action, is_first = window(agent, agent.world_model(params).embed_size, 0)
        (carry_a, out_a), (_, out_b) = (filter_window(params, agent.initial(B), embed, action, is_first,
                                                      jax.random.key(k)) for k in (2, 3))
        assert np.abs(np.asarray(out_a["z"]) - np.asarray(out_b["z"])).max() > 0.5  # the samples differ
        differs = max(np.abs(np.asarray(out_a[n]) - np.asarray(out_b[n])).max() for n in state)
        assert (differs < 1e-6) == (latent_input == reads), f"{latent_input}: the filtered state differs by {differs}"
    zin = np.asarray(out_a["zin"]).reshape(B, T, -1, agent.model_cfg.classes)
    np.testing.assert_allclose(zin.sum(-1), 1.0, rtol=1e-5)
    if reads == "mode":  # the posterior's most likely class, one-hot
        assert set(np.unique(zin)) <= {0.0, 1.0}
        post = np.asarray(out_a["post"])
        np.testing.assert_array_equal(zin.argmax(-1), post.argmax(-1))
    carry = agent.initial(B)  # acting steps equal the window, with no sample written back into the carry
    for t in range(T):
        carry, o = step(params, carry, embed[:, t], is_first[:, t], jax.random.key(100 + t))
        for name in state:
            np.testing.assert_allclose(np.asarray(o[name]), np.asarray(out_a[name][:, t]), rtol=1e-5, atol=1e-5,
                                       err_msg=f"{name} at t={t}")
        carry = {**carry, "a": action[:, t]}
    assert_trees_close(carry, carry_a, 1e-5, 1e-5, "final carry")

    @jax.jit
    def dream(params, out, key):
        seq = agent.world_model(params).seq
        start = seq.start(out)
        return start, seq.imagine_step(start, jnp.zeros((start["h"].shape[0], agent.act_space.size)), key)

    (start, first), (_, second) = (dream(params, out_a, jax.random.key(k)) for k in (4, 5))
    assert set(first) == set(start) and "zin" in start
    for name in state:
        np.testing.assert_allclose(np.asarray(first[name]), np.asarray(second[name]), atol=1e-6)


def _second_episode_names(out):
    return ["h", "z", "post", "prior"] + (["x"] if "x" in out else [])


def test_second_episode_in_window_equals_episode_alone(seq_setup, monkeypatch):
    """A window holding two episodes gives the second exactly the outputs of running it alone from a fresh window.

    The latent sampler is replaced by the mode (inside this test only): a window of another length draws other random
    numbers, so only a deterministic sampler makes the two runs comparable. The next test covers the real sampler.
    """
    agent, params, embed_size = seq_setup
    deterministic_sampler(monkeypatch)
    filter_window, _ = seq_fns(agent)
    embed, action, _ = window(agent, embed_size, 4)
    s = 5
    is_first = jnp.zeros((B, T), bool).at[:, 0].set(True).at[:, s].set(True)
    _, out = filter_window(params, random_carry(agent, B, 5), embed, action, is_first, jax.random.key(6))
    alone_first = jnp.zeros((B, T - s), bool).at[:, 0].set(True)
    _, alone = filter_window(params, random_carry(agent, B, 8), embed[:, s:], action[:, s:], alone_first, jax.random.key(9))
    for name in _second_episode_names(out):
        np.testing.assert_allclose(np.asarray(out[name][:, s:]), np.asarray(alone[name]), rtol=1e-6, atol=1e-6,
                                   err_msg=name)


def test_second_episode_ignores_first_episode_with_real_sampler(seq_setup):
    """With the real sampler and the same key and window length, the second episode's outputs do not depend on the
    first episode (other observations, actions and initial carry) at all."""
    agent, params, embed_size = seq_setup
    filter_window, _ = seq_fns(agent)
    embed, action, _ = window(agent, embed_size, 10)
    embed2, action2, _ = window(agent, embed_size, 11)
    s = 5
    # Rows 1 and 2 continue their (different) carries before the episode start at s.
    is_first = jnp.zeros((B, T), bool).at[0, 0].set(True).at[:, s].set(True)
    embed2 = embed2.at[:, s:].set(embed[:, s:])
    action2 = action2.at[:, s:].set(action[:, s:])
    key = jax.random.key(12)
    _, out = filter_window(params, random_carry(agent, B, 13), embed, action, is_first, key)
    _, out2 = filter_window(params, random_carry(agent, B, 14), embed2, action2, is_first, key)
    for name in _second_episode_names(out):
        np.testing.assert_allclose(np.asarray(out[name][:, s:]), np.asarray(out2[name][:, s:]), rtol=1e-6, atol=1e-6,
                                   err_msg=name)
    # Not vacuous: the first episodes differ.
    assert np.abs(np.asarray(out["h"][:, :s]) - np.asarray(out2["h"][:, :s])).max() > 1e-3


# ----------------------------------------------------------------------------------------------------------------------
# Policy inputs
# ----------------------------------------------------------------------------------------------------------------------

# Sizes chosen pairwise different so that a mixed-up term shows: Z = 3·5 = 15, deter 12, 2·layers·P = 2·2·6 = 24.
SIZES = {"deter": 12, "stoch": 3, "classes": 5, "model.ssm.state": 6, "model.ssm.layers": 2, "model.ssm.blocks": 2}
EXPECTED = {
    ("s3m", "output"): 15 + 12,
    ("s3m", "hidden"): 15 + 24,
    ("s3m", "full"): 15 + 12 + 24,
    ("gru", "output"): 15 + 12,
    ("gru", "hidden"): 15 + 12,
    ("gru", "full"): 15 + 12,
}


@pytest.mark.parametrize("sequence,kind", sorted(EXPECTED))
def test_policy_inputs_feed_the_documented_size(make_agent, sequence, kind):
    agent = make_agent(sequence, "vector", "discrete", policy_inputs=kind, **SIZES)
    size = EXPECTED[(sequence, kind)]
    assert agent.feature_size == size
    params = agent.abstract_state().params
    assert params["actor"]["net"]["hidden"][0]["kernel"].shape == (size, 16)
    assert params["critic"]["net"]["hidden"][0]["kernel"].shape == (size, 16)

    # The features actually built from filter, filter_step and imagine_step states have that size.
    def features(params):
        wm = agent.world_model(params)
        seq, key = wm.seq, jax.random.key(0)
        embed = jnp.zeros((2, 3, wm.embed_size))
        is_first = jnp.ones((2, 3), bool)
        _, out = seq.filter(seq.initial(2), embed, jnp.zeros((2, 3, agent.act_space.size)), is_first, key)
        start = seq.start(out)
        nxt = seq.imagine_step(start, jnp.zeros((6, agent.act_space.size)), key)
        _, step = seq.filter_step(seq.initial(2), embed[:, 0], is_first[:, 0], key)
        return [seq.policy_features(s, kind) for s in (start, nxt, step)]

    for feats, n in zip(jax.eval_shape(features, params), (6, 6, 2)):
        assert sum(f.shape[-1] for f in feats) == size
        assert all(f.shape[:-1] == (n,) for f in feats)


# ----------------------------------------------------------------------------------------------------------------------
# World-model learning on a deterministic synthetic task
# ----------------------------------------------------------------------------------------------------------------------


def synthetic_batch(agent, b=8, t=12):
    """A fixed batch: the first observation shows a cue c ∈ {0..3} (one-hot in dims 0–3), dim 4 is a clock
    cos(0.7t); from step 4 on the reward is c − 1.5, i.e. it depends on an observation several steps earlier."""
    cue = np.arange(b) % 4
    obs = np.zeros((b, t, 5), np.float32)
    obs[np.arange(b), 0, cue] = 1.0
    obs[:, :, 4] = np.cos(0.7 * np.arange(t))
    reward = np.where(np.arange(t)[None] >= 4, cue[:, None] - 1.5, 0.0).astype(np.float32)
    is_first = np.zeros((b, t), bool)
    is_first[:, 0] = True
    batch = {
        "vec": obs,
        "action": random_actions(agent.act_space, (b, t), np.random.default_rng(0)),
        "reward": reward,
        "is_first": is_first,
        "is_last": np.zeros((b, t), bool),
        "is_terminal": np.zeros((b, t), bool),
    }
    return {k: jnp.asarray(v) for k, v in batch.items()}


@pytest.mark.parametrize("sequence,act", [("s3m", "continuous"), ("gru", "discrete")])
def test_world_model_loss_falls_on_synthetic_task(make_agent, sequence, act):
    agent = make_agent(sequence, "vector", act)
    params = agent.init(jax.random.key(0)).params
    wm_params = {"model": params["model"], "ssm": params["ssm"]}
    batch = synthetic_batch(agent)
    opt = optax.adam(3e-3)

    @jax.jit
    def update(wm_params, opt_state, key):
        def loss_fn(p):
            wm = agent.world_model(p)
            loss, (_, _, metrics) = wm.loss(batch, wm.seq.initial(batch["is_first"].shape[0]), key)
            return loss, metrics

        (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(wm_params)
        updates, opt_state = opt.update(grads, opt_state, wm_params)
        return optax.apply_updates(wm_params, updates), opt_state, metrics

    opt_state = opt.init(wm_params)
    history = []
    for i in range(100):
        wm_params, opt_state, metrics = update(wm_params, opt_state, jax.random.key(i))
        history.append({k: float(v) for k, v in metrics.items()})
    first, last = history[0], {k: np.mean([h[k] for h in history[-10:]]) for k in history[0]}
    assert all(np.isfinite(v) for h in history for v in h.values())
    assert last["model/loss"] < first["model/loss"] / 3, (first, last)
    assert last["model/loss_reward"] < first["model/loss_reward"] / 2, (first, last)
    assert last["model/loss_vector"] < first["model/loss_vector"] / 5, (first, last)


def test_reward_loss_on_rewarded_steps_is_their_mean_and_missing_without_one(make_agent):
    """`model/loss_reward_nonzero` is the two-hot loss averaged over the steps with a nonzero reward only (a sparse
    task's rare rewards, which the mean over all steps hides); a batch without one gives NaN, which the logger drops."""
    from r2i.metrics import to_scalars

    agent = make_agent("s3m", "vector", "discrete")
    params = agent.init(jax.random.key(0)).params
    wm = agent.world_model({"model": params["model"], "ssm": params["ssm"]})
    batch = synthetic_batch(agent)
    initial = wm.seq.initial(batch["is_first"].shape[0])
    _, (_, out, metrics) = wm.loss(batch, initial, jax.random.key(0))
    nll = dists.twohot_nll(wm.reward(wm.seq.head_features(out, wm.head_inputs)), batch["reward"],
                           dists.twohot_bins(wm.bins))
    rewarded = np.asarray(batch["reward"]) != 0
    assert 0 < rewarded.sum() < rewarded.size
    np.testing.assert_allclose(metrics["model/loss_reward_nonzero"], np.asarray(nll)[rewarded].mean(), rtol=1e-5)
    _, (_, _, metrics) = wm.loss(batch | {"reward": jnp.zeros_like(batch["reward"])}, initial, jax.random.key(0))
    assert np.isnan(metrics["model/loss_reward_nonzero"])
    assert "model/loss_reward_nonzero" not in to_scalars(metrics) and "model/loss_reward" in to_scalars(metrics)


# ----------------------------------------------------------------------------------------------------------------------
# Gradient isolation
# ----------------------------------------------------------------------------------------------------------------------


@pytest.fixture(
    scope="module", params=[("s3m", "continuous"), ("gru", "discrete")], ids=["s3m-continuous", "gru-discrete"]
)
def loss_setup(request, make_agent, make_batch):
    """Perturbed parameters (so that no path is zero by initialisation: reward/value heads start at zero) and one
    jitted function: loss weights w → (the three losses, gradient of Σ w_k·loss_k w.r.t. all parameter groups)."""
    sequence, act = request.param
    agent = make_agent(sequence, "vector", act)
    state = agent.init(jax.random.key(0))
    params = perturb(state.params, jax.random.key(1))
    slow = perturb(state.params["critic"], jax.random.key(2))
    retnorm = jnp.asarray([-1.0, 2.0], jnp.float32)
    batch = make_batch(agent, 2, 6, seed=3)
    key = jax.random.key(4)

    @jax.jit
    def losses_and_grad(params, weights):
        def total(p):
            losses, _, _ = agent.loss_terms(p, slow, retnorm, batch, key)
            return sum(weights[k] * losses[k] for k in LOSSES), losses

        grads, losses = jax.grad(total, has_aux=True)(params)
        return losses, grads

    def only(name):
        return {k: jnp.float32(k == name) for k in LOSSES}

    grads = {k: losses_and_grad(params, only(k))[1] for k in LOSSES}
    losses = lambda p: losses_and_grad(p, only("model"))[0]  # noqa: E731
    return agent, params, grads, losses


# For each loss, the groups its gradient must not reach. The world model's groups ("model", "ssm") are reached only
# by the model loss; the actor's only by the actor loss; the critic's only by the critic loss.
ISOLATED = {"actor": ("model", "ssm", "critic"), "critic": ("model", "ssm", "actor"), "model": ("actor", "critic")}
REACHED = {"actor": ("actor",), "critic": ("critic",), "model": ("model", "ssm")}


@pytest.mark.parametrize("loss", LOSSES)
def test_gradient_isolation(loss_setup, loss):
    agent, params, grads, _ = loss_setup
    g = grads[loss]
    assert set(g) == set(GROUPS)
    for group in ISOLATED[loss]:
        for path, leaf in leaves_with_paths(g[group]):
            assert np.all(np.asarray(leaf) == 0), f"{loss} loss has a gradient on {group}{path}"
    for group in REACHED[loss]:
        leaves = jax.tree.leaves(g[group])
        if group == "ssm" and agent.model_cfg.sequence == "gru":
            assert not leaves  # the GRU has no SSM parameters
            continue
        assert all(np.all(np.isfinite(np.asarray(x))) for x in leaves)
        assert max(float(jnp.abs(x).max()) for x in leaves) > 0, f"{loss} loss has no gradient on {group}"


def test_isolated_losses_still_depend_on_the_other_groups(loss_setup):
    """The zero gradients above come from stop-gradients, not from independence: the actor and critic losses change
    when the world model changes, and the critic loss when the actor changes (it reads the imagined states)."""
    _, params, _, losses = loss_setup
    base = {k: float(v) for k, v in losses(params).items()}
    for groups, affected in [(("model", "ssm"), ("actor", "critic")), (("actor",), ("critic",))]:
        changed = dict(params)
        for i, group in enumerate(groups):
            changed[group] = perturb(params[group], jax.random.key(10 + i), 0.3)
        new = losses(changed)
        for name in affected:
            assert abs(float(new[name]) - base[name]) > 1e-6 * max(1.0, abs(base[name])), (groups, name)


# ----------------------------------------------------------------------------------------------------------------------
# Optimiser: weight decay
# ----------------------------------------------------------------------------------------------------------------------

LR, WD = 1e-2, 0.1


@pytest.fixture(scope="module")
def decay_updates(make_agent):
    """Updates of `make_optimizer` with weight decay for all-zero gradients: what remains is the decay alone (Adam's
    step is 0 for a zero gradient)."""
    params = make_agent("s3m", "vector", "continuous").init(jax.random.key(0)).params
    params = perturb(params, jax.random.key(1))  # no zero kernels
    tx = make_optimizer(OptimConfig(weight_decay=WD, model_lr=LR, ssm_lr=LR, actor_lr=LR, critic_lr=LR))
    grads = jax.tree.map(jnp.zeros_like, params)
    updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
    return params, updates


def _kernel(path):
    return "kernel" in path


def test_weight_decay_only_on_world_model_kernels(decay_updates):
    """Decay applies to the world model's kernels, never to SSM parameters, biases or LayerNorm scales."""
    params, updates = decay_updates
    for path, u in leaves_with_paths(updates["model"]):
        assert np.any(np.asarray(u) != 0) == _kernel(path), path
    for path, u in leaves_with_paths(updates["ssm"]):
        assert np.all(np.asarray(u) == 0), path


def test_weight_decay_is_decoupled_adamw(decay_updates):
    """AdamW: θ ← θ − lr·(adam_step + wd·θ); with a zero gradient the update of a kernel is −lr·wd·θ."""
    params, updates = decay_updates
    for (path, u), (_, p) in zip(leaves_with_paths(updates["model"]), leaves_with_paths(params["model"])):
        if _kernel(path):
            np.testing.assert_allclose(np.asarray(u), -LR * WD * np.asarray(p), rtol=1e-5, err_msg=path)


# ----------------------------------------------------------------------------------------------------------------------
# Training and acting over observation and action spaces
# ----------------------------------------------------------------------------------------------------------------------

CASES = [
    ("s3m", "vector", "continuous", {}),
    ("s3m", "mixed", "multidiscrete", {"policy_inputs": "full"}),
    ("gru", "image", "discrete", {}),
]
CASE_IDS = [f"{s}-{o}-{a}" for s, o, a, _ in CASES]


@pytest.fixture(scope="module", params=CASES, ids=CASE_IDS)
def trained(request, make_agent, make_batch):
    """An agent, its initial state, and the state and metrics after each of 3 train steps on random batches."""
    sequence, obs, act, overrides = request.param
    agent = make_agent(sequence, obs, act, **overrides)
    init = agent.init(jax.random.key(0))
    state, metrics = jax.tree.map(jnp.copy, init), []  # train donates its state
    for i in range(3):
        state, m = agent.train(state, make_batch(agent, 2, 6, seed=i), jax.random.key(100 + i))
        metrics.append(jax.device_get(m))
    return agent, init, state, metrics


def test_train_steps_give_finite_metrics(trained):
    agent, _, state, metrics = trained
    for m in metrics:
        assert bool(m["train/finite"])
        for name, value in m.items():
            assert np.all(np.isfinite(np.asarray(value))), name
        for name in ("model/loss", "actor/loss", "critic/loss", "model/grad_norm", "actor/grad_norm",
                     "critic/grad_norm"):
            assert name in m
    assert int(state.step) == 3
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(state.params))


def _zero_head_hidden(agent, group, path):
    """Hidden layers behind a zero-initialised output layer (the critic; the reward head when
    `model.reward_out_scale=0`): no gradient in the first update."""
    if group == "model":
        return agent.model_cfg.reward_out_scale == 0 and path.startswith("['reward']") and "['out']" not in path
    return group == "critic" and "['out']" not in path


def test_train_step_changes_every_group(trained, make_batch):
    """One update moves every parameter of the world model (incl. the SSM for S3M), the actor and the critic, and the
    slow critic — except the hidden layers behind a zero-initialised output layer (the critic's; the reward head's
    only with `model.reward_out_scale=0`: the tiny preset draws it, so its hidden layers must move too)."""
    agent, init, _, _ = trained
    state, _ = agent.train(jax.tree.map(jnp.copy, init), make_batch(agent, 2, 6, seed=42), jax.random.key(7))
    for group in GROUPS:
        before, after = leaves_with_paths(init.params[group]), leaves_with_paths(state.params[group])
        if group == "ssm" and agent.model_cfg.sequence == "gru":
            assert not before
            continue
        assert before, group
        for (path, a), (_, b) in zip(before, after):
            changed = not np.array_equal(np.asarray(a), np.asarray(b))
            assert changed or _zero_head_hidden(agent, group, path), f"{group}{path} did not change"
    assert any(not np.array_equal(np.asarray(a), np.asarray(b))
               for a, b in zip(jax.tree.leaves(init.slow_critic), jax.tree.leaves(state.slow_critic)))


def check_actions(agent, action):
    action = np.asarray(action)
    space = agent.act_space
    assert action.dtype == np.float32 and action.shape[-1] == space.size
    if space.discrete:
        for part in np.split(action, np.cumsum(space.nvec)[:-1], -1):
            assert np.all((part == 0) | (part == 1)), part
            np.testing.assert_array_equal(part.sum(-1), 1.0)
    else:
        assert np.all(np.isfinite(action)) and np.all(np.abs(action) <= 1.0)


def obs_step(agent, n, rng, first):
    obs = random_obs(agent.obs_space, (n,), rng)
    obs["is_first"] = np.full((n,), first)
    return obs


def test_act_returns_valid_actions_and_carry(trained):
    agent, _, state, _ = trained
    n = 3
    rng = np.random.default_rng(0)
    carry = agent.initial(n)
    ref = jax.tree.map(lambda x: (x.shape, x.dtype), carry)
    for t in range(4):
        obs = obs_step(agent, n, rng, t == 0)
        obs.update(reward=np.zeros(n, np.float32), is_last=np.zeros(n, bool), log_extra=np.ones(n, np.float32))
        carry, action = agent.act(state.params, carry, obs, jax.random.key(t))
        assert action.shape == (n, agent.act_space.size)
        check_actions(agent, action)
        assert jax.tree.structure(carry) == jax.tree.structure(agent.initial(n))
        assert jax.tree.map(lambda x: (x.shape, x.dtype), carry) == ref
        np.testing.assert_array_equal(np.asarray(carry["a"]), np.asarray(action))


def test_deterministic_mode_draws_nothing_and_greedy_draws_the_latent(trained):
    """'deterministic' acting is a function of the observations alone (the key is ignored); 'greedy' still samples the
    posterior latent, so its carry depends on the key; an unknown mode is a clear error."""
    agent, _, state, _ = trained
    params = perturb(state.params, jax.random.key(3))  # spread the posterior so that draws differ
    obs = obs_step(agent, 4, np.random.default_rng(1), True)

    def step(mode, seed):
        return agent.act(params, agent.initial(4), obs, jax.random.key(seed), mode)

    (carry_a, action_a), (carry_b, action_b) = step("deterministic", 0), step("deterministic", 1)
    assert_trees_close(carry_a, carry_b, 0, 0, "deterministic carry")
    np.testing.assert_array_equal(np.asarray(action_a), np.asarray(action_b))
    greedy = [step("greedy", s)[0]["z"] for s in range(2)]
    assert not np.array_equal(np.asarray(greedy[0]), np.asarray(greedy[1])), "greedy mode should sample the latent"
    with pytest.raises(ConfigError, match="mode must be one of"):
        step("argmax", 0)


# ----------------------------------------------------------------------------------------------------------------------
# The policy carry resets at episode starts
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sequence,act", [("s3m", "continuous"), ("gru", "continuous")])
def test_policy_carry_resets_at_episode_start(make_agent, sequence, act):
    agent = make_agent(sequence, "vector", act)
    params = perturb(agent.init(jax.random.key(0)).params, jax.random.key(1))
    n, rng = 4, np.random.default_rng(0)
    # Arbitrary history: 6 steps, with an episode start in the middle for some envs.
    carry = agent.initial(n)
    for t in range(6):
        obs = obs_step(agent, n, rng, t == 0)
        obs["is_first"] = obs["is_first"] | (rng.random(n) < 0.3)
        carry, _ = agent.act(params, carry, obs, jax.random.key(100 + t))
    history = carry
    episode = [obs_step(agent, n, rng, t == 0) for t in range(5)]
    keys = [jax.random.key(200 + t) for t in range(5)]

    def run(carry, episode):
        actions, carries = [], []
        for obs, key in zip(episode, keys):
            carry, action = agent.act(params, carry, obs, key)
            check_actions(agent, action)
            actions.append(np.asarray(action))
            carries.append(carry)
        return actions, carries

    after_history, carries = run(history, episode)
    fresh, fresh_carries = run(agent.initial(n), episode)
    for t, (a, b) in enumerate(zip(after_history, fresh)):
        np.testing.assert_array_equal(a, b, err_msg=f"actions differ at step {t}")
    for t, (a, b) in enumerate(zip(carries, fresh_carries)):
        assert_trees_close(a, b, 0, 0, f"carry at step {t}")
    # Not vacuous: without the episode-start flag the history does change the carry.
    no_reset = [{**episode[0], "is_first": np.zeros(n, bool)}] + episode[1:]
    _, carries_nr = run(history, no_reset)
    _, fresh_nr = run(agent.initial(n), no_reset)
    diff = max(float(np.abs(np.asarray(x) - np.asarray(y)).max())
               for x, y in zip(jax.tree.leaves(carries_nr[0]), jax.tree.leaves(fresh_nr[0])))
    assert diff > 1e-3


def test_chunked_imagination_equals_one_rollout(make_agent, make_batch, monkeypatch):
    """behavior.imag_chunk only changes how the starts are scheduled: with deterministic sampling, the losses and
    metrics equal those of one rollout over all starts (the actor's discrete sample and the latents are the modes)."""
    deterministic_sampler(monkeypatch)
    monkeypatch.setattr(Actor, "__call__", _greedy_actor(Actor.__call__))
    whole = make_agent("s3m", "vector", "discrete")
    chunked = make_agent("s3m", "vector", "discrete", **{"behavior.imag_chunk": 4})
    state = whole.init(jax.random.key(0))
    params = perturb(state.params, jax.random.key(1))
    batch = make_batch(whole, 2, 6, seed=5)  # 12 starts = 3 chunks of 4
    retnorm = jnp.zeros((2,), jnp.float32)
    out = [jax.jit(a._loss_terms)(params, params["critic"], retnorm, batch, jax.random.key(2)) for a in (whole, chunked)]
    (losses_a, retnorm_a, metrics_a), (losses_b, retnorm_b, metrics_b) = out
    assert_trees_close(losses_a, losses_b, rtol=1e-5, atol=1e-6, what="losses")
    assert_trees_close(metrics_a, metrics_b, rtol=1e-5, atol=1e-6, what="metrics")
    np.testing.assert_allclose(np.asarray(retnorm_a), np.asarray(retnorm_b), rtol=1e-5, atol=1e-6)


def _greedy_actor(call):
    """The actor's call with mode='greedy' forced (imagination samples otherwise)."""
    return lambda self, features, key, mode="sample": call(self, features, key, "greedy")


def cut_batch(agent, b=8, t=12, cut=5):
    """`synthetic_batch` with each window's first `cut` steps marked as an episode the window's start cut into."""
    seen = np.arange(t)[None, :].repeat(b, 0) >= cut
    return synthetic_batch(agent, b, t) | {"seen_start": jnp.asarray(seen)}


def test_masked_reward_loss_is_the_mean_over_uncut_steps(make_agent):
    """With `model.mask_cut_episodes` the reward term is the two-hot loss averaged over the steps whose episode the
    window holds from its start (the cut ones count for nothing), and `loss_reward_nonzero` counts only those; without
    the flag `seen_start` changes nothing."""
    masked = make_agent("s3m", "vector", "discrete", mask_cut_episodes=True)
    params = masked.init(jax.random.key(0)).params
    wm = masked.world_model({"model": params["model"], "ssm": params["ssm"]})
    batch = cut_batch(masked)
    initial = wm.seq.initial(batch["is_first"].shape[0])
    _, (_, out, metrics) = wm.loss(batch, initial, jax.random.key(0))
    nll = np.asarray(dists.twohot_nll(wm.reward(wm.seq.head_features(out, wm.head_inputs)), batch["reward"],
                                      dists.twohot_bins(wm.bins)))
    seen = np.asarray(batch["seen_start"])
    np.testing.assert_allclose(metrics["model/loss_reward"], nll[seen].mean(), rtol=1e-5)
    rewarded = seen & (np.asarray(batch["reward"]) != 0)
    np.testing.assert_allclose(metrics["model/loss_reward_nonzero"], nll[rewarded].mean(), rtol=1e-5)
    np.testing.assert_allclose(metrics["model/uncut_fraction"], seen.mean())

    plain = make_agent("s3m", "vector", "discrete")
    wm = plain.world_model({"model": params["model"], "ssm": params["ssm"]})  # same sizes: the same parameters fit
    _, (_, _, with_seen) = wm.loss(batch, initial, jax.random.key(0))
    _, (_, _, without) = wm.loss(synthetic_batch(plain), initial, jax.random.key(0))
    np.testing.assert_allclose(with_seen["model/loss_reward"], nll.mean(), rtol=1e-5)
    np.testing.assert_allclose(with_seen["model/loss"], without["model/loss"], rtol=1e-6)


@pytest.mark.parametrize("starts", [0, 16, 80])
def test_masked_imagination_starts_come_from_uncut_steps(make_agent, starts):
    """Imagination starts are drawn from the uncut steps first (16 or 56 of the 56 uncut ones); a cut step that still
    starts (all 96 starts, or 80 > 56) has cont0 = 0, so its trajectory weighs nothing in the actor and critic losses."""
    agent = make_agent("s3m", "vector", "discrete", mask_cut_episodes=True,
                       **{"behavior.imag_starts": starts, "run.batch_size": 8, "run.batch_length": 12})
    params = agent.init(jax.random.key(0)).params
    wm = agent.world_model(params)
    batch = cut_batch(agent)
    b, t = batch["is_first"].shape
    _, (_, out, _) = wm.loss(batch, wm.seq.initial(b), jax.random.key(0))
    out = out | {"z": out["z"].at[..., 0].set(jnp.arange(b * t, dtype=out["z"].dtype).reshape(b, t))}  # tag steps
    start, cont0 = agent._imagination_starts(wm.seq, out, batch, jax.random.key(1))
    index = np.asarray(start["z"][:, 0]).astype(int)
    uncut = np.asarray(batch["seen_start"]).reshape(-1)
    n = starts or b * t
    assert index.shape == (n,) and len(set(index)) == n
    assert uncut[index].sum() == min(n, uncut.sum())  # every uncut step before any cut one
    np.testing.assert_array_equal(np.asarray(cont0), uncut[index].astype(np.float32))
