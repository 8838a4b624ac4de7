"""Actor-critic in imagination (DreamerV3, docs/design.md §6).

Shapes: N imagination starts, H horizon, A action size, F policy-feature size, K value bins.
Time index convention: the trajectory has states s_0 (the start) … s_H; a_t is taken at s_t; r_{t+1}, c_{t+1} are
predicted at s_{t+1}.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from r2i import dists
from r2i.config import BehaviorConfig
from r2i.dists import sg
from r2i.nets import MLP, zeros
from r2i.spaces import ActionSpace


class Actor(nnx.Module):
    """π(a | features): one categorical per sub-action (unimix) or a bounded normal (tanh mean, std ∈ [min, max])."""

    def __init__(self, in_size: int, act_space: ActionSpace, cfg: BehaviorConfig, *, dtype, rngs: nnx.Rngs):
        self.discrete = act_space.discrete
        self.nvec = tuple(act_space.nvec)
        out = act_space.size if self.discrete else 2 * act_space.size
        self.net = MLP(in_size, cfg.actor.layers, cfg.actor.units, out, dtype=dtype, rngs=rngs)
        self.unimix, self.min_std, self.max_std = cfg.actor_unimix, cfg.min_std, cfg.max_std

    def _groups(self, raw: jax.Array) -> list[jax.Array]:
        """Log-probabilities of each sub-action: list of (..., n_i)."""
        splits = jnp.split(raw.astype(jnp.float32), list(np.cumsum(self.nvec)[:-1]), -1)
        return [dists.unimix_logits(s, self.unimix) for s in splits]

    def probs(self, features) -> list[jax.Array]:
        """features: list of (..., F_i) → the probability of every choice of each sub-action, list of (..., n_i)
        float32, the unimix included: what `__call__` samples from (discrete actions; the probes in benchmarks/ read
        it)."""
        if not self.discrete:
            raise ValueError("Actor.probs: the action space is continuous; it has no per-choice probabilities")
        return [jnp.exp(lp) for lp in self._groups(self.net(features))]

    def __call__(self, features, key: jax.Array, mode: str = "sample"):
        """features: list of (..., F_i) → action (..., A) float32, log π(a) (...), entropy (...).

        mode: 'sample' draws (discrete: straight-through one-hot; continuous: reparameterised), 'greedy' takes the most
        likely action. log π is of the stop-gradient action (for REINFORCE).

        Continuous actions come back as a · sg(1 / max(1, |a|)) (DreamerV3 / R2I `rssm.action_clip`): the value of
        clip(a, −1, 1), but a sample outside [−1, 1] still passes a (scaled) gradient to the actor when the dynamics
        read it in imagination, where a hard clip would pass none. The agent hard-clips only what goes to the
        environment and the replay (`Agent.policy`).
        """
        raw = self.net(features)
        if self.discrete:
            groups = self._groups(raw)
            keys = jax.random.split(key, len(groups))
            pick = dists.onehot_sample if mode == "sample" else lambda _, lp: dists.onehot_mode(lp)
            parts = [pick(k, lp) for k, lp in zip(keys, groups)]
            logp = sum(jnp.sum(sg(a) * lp, -1) for a, lp in zip(parts, groups))
            entropy = sum(dists.categorical_entropy(lp) for lp in groups)
            return jnp.concatenate(parts, -1), logp, entropy
        mean, std = dists.bounded_normal(raw, self.min_std, self.max_std)
        action = mean + std * jax.random.normal(key, mean.shape) if mode == "sample" else mean
        action = action * sg(1.0 / jnp.maximum(1.0, jnp.abs(action)))
        return action, dists.normal_logp(sg(action), mean, std), dists.normal_entropy(std)


class Critic(nnx.Module):
    """v(features) as a symlog two-hot distribution over K bins; output layer zero-initialised."""

    def __init__(self, in_size: int, bins: int, cfg: BehaviorConfig, *, dtype, rngs: nnx.Rngs):
        self.net = MLP(in_size, cfg.critic.layers, cfg.critic.units, bins, out_init=zeros, dtype=dtype, rngs=rngs)
        self.bins = bins

    def __call__(self, features) -> jax.Array:
        """features → logits (..., K)."""
        return self.net(features)

    def mean(self, features) -> jax.Array:
        return dists.twohot_mean(self(features), dists.twohot_bins(self.bins))


def imagine(
    frozen, actor: Actor, critic: Critic, frozen_critic: Critic, slow: Critic, start: dict, *, horizon: int, key,
    policy_inputs: str, cont: str = "prob",
):
    """Roll the prior forward for `horizon` steps from every start state, acting with the actor.

    Everything that reads a state (actor, critic, slow critic, reward and continue heads) runs inside the scan, on
    N rows at a time, so the trajectory of states (h, z, x) is never stored and no head runs twice.

    Args:
      frozen: the world model with stop-gradient parameters.
      critic: the critic being trained (its logits at sg(s_t) feed the critic loss).
      frozen_critic: the same critic with stop-gradient parameters (values for continuous actions, see below).
      slow: the slow critic (EMA), the target of the critic's regulariser.
      start: imagination state with leading axis N (see `sequence.py`), already stop-gradient.
      cont: ĉ is the continue head's probability ('prob') or its mode, 0 or 1 ('mode', the official R2I code), in the
        λ-returns and the discount weights alike.
    Returns a dict of (H, N) arrays over t = 0 … H−1 (values at s_t, rewards and continues at s_{t+1}):
      "logp", "entropy" of a_t; "critic_logits" (H, N, K) at sg(s_t); "value" the critic's value of s_t, which
      bootstraps the λ-returns and is the advantage baseline (DreamerV3); "slow_value" the slow critic's;
      "reward" r̂_{t+1}; "cont" ĉ_{t+1}; plus "last_value" (N,), the critic's value of s_H.
    The actor reads sg(s_t), as in DreamerV3. Discrete actions: the dynamics see sg(a_t) (REINFORCE needs no gradient
    through the model, and cutting it keeps the backward pass to the actor and critic) and the values are those of the
    critic's logits, stop-gradient. Continuous actions: the gradient flows from the returns through rewards, continues
    and the (frozen) critic's values into the dynamics and on to the actions.
    """
    seq = frozen.seq

    def value_of(features, logits):
        if actor.discrete:  # the critic's forward pass of the scan, reused
            return dists.twohot_mean(sg(logits), dists.twohot_bins(critic.bins))
        return frozen_critic.mean(features)

    # Rematerialise the actor and critic in the backward pass except their matmul outputs: the element-wise
    # activations (LayerNorm, SiLU) of 15 × N rows would otherwise be kept, several GB at N = 4096.
    @functools.partial(jax.checkpoint, policy=jax.checkpoint_policies.dots_with_no_batch_dims_saveable)
    def learners(features, key_act):
        action, logp, entropy = actor(features, key_act)
        return action, logp, entropy, critic(features)

    def step(state, key_t):
        k_act, k_dyn = jax.random.split(key_t)
        features = seq.policy_features(state, policy_inputs)
        action, logp, entropy, logits = learners([sg(f) for f in features], k_act)
        out = {"logp": logp, "entropy": entropy, "critic_logits": logits, "value": value_of(features, logits),
               "slow_value": slow.mean([sg(f) for f in features])}
        nxt = seq.imagine_step(state, sg(action) if actor.discrete else action, k_dyn)
        out["reward"] = frozen.reward_mean(nxt)
        out["cont"] = frozen.cont_prob(nxt)
        if cont == "mode":
            out["cont"] = (out["cont"] > 0.5).astype(jnp.float32)
        return nxt, out

    last, out = jax.lax.scan(step, start, jax.random.split(key, horizon))
    features = seq.policy_features(last, policy_inputs)
    out["last_value"] = frozen_critic.mean(features if not actor.discrete else [sg(f) for f in features])
    return out


def lambda_returns(reward: jax.Array, cont: jax.Array, value: jax.Array, discount: float, lam: float) -> jax.Array:
    """R_t = r_{t+1} + γ c_{t+1} ((1 − λ) V_{t+1} + λ R_{t+1}),  R_H = V_H.

    reward, cont: (H, N) of r_1 … r_H and c_1 … c_H; value: (H + 1, N) of V_0 … V_H → returns (H, N) of R_0 … R_{H−1}.
    """
    assert reward.shape == cont.shape and value.shape[0] == reward.shape[0] + 1, (
        f"lambda_returns: reward {reward.shape} and cont {cont.shape} must be (H, N), value {value.shape} (H+1, N)"
    )

    def step(next_return, inputs):
        r, c, v = inputs
        ret = r + discount * c * ((1 - lam) * v + lam * next_return)
        return ret, ret

    _, returns = jax.lax.scan(step, value[-1], (reward, cont, value[1:]), reverse=True)
    return returns


def return_scale(state: jax.Array, returns: jax.Array, cfg: BehaviorConfig) -> tuple[jax.Array, jax.Array]:
    """EMA of the return percentiles and the scale S = max(1, EMA(P_high) − EMA(P_low)).

    state: (2,) float32 [low, high] EMA values; returns: any shape → (new state (2,), scale ()).
    """
    flat = returns.reshape(-1).astype(jnp.float32)
    batch = jnp.stack([jnp.quantile(flat, cfg.retnorm_low), jnp.quantile(flat, cfg.retnorm_high)])
    state = cfg.retnorm_decay * state + (1 - cfg.retnorm_decay) * sg(batch)
    return state, jnp.maximum(1.0, state[1] - state[0])


def discount_weights(cont: jax.Array, discount: float) -> jax.Array:
    """w_t = Π_{k≤t} (γ c_k) / γ for t = 0 … H−1 from cont (H + 1, N) of c_0 … c_H → (H, N)."""
    return jnp.cumprod(discount * cont[:-1], 0) / discount


def actor_loss(
    logp: jax.Array, entropy: jax.Array, advantage: jax.Array, weights: jax.Array, *, entropy_scale: float,
    reinforce: bool,
) -> tuple[jax.Array, dict]:
    """L_actor = mean_{t,n} w_t · −(g_t + η H[π(·|s_t)]) with g_t = log π(a_t|s_t) · sg(A_t) (REINFORCE) or A_t.

    logp, entropy: (H, N) float32, log π(a_t|s_t) (of the stop-gradient action) and the entropy at s_t;
    advantage: (H, N) float32 A_t = (R_t − V_t) / S; weights: (H, N) float32 discount weights, stop-gradient.
    reinforce: discrete actions (the score-function estimator; the advantage is a constant). Otherwise (continuous
    actions) the gradient of A_t itself reaches the actor through the imagined dynamics and the λ-returns.
    Returns (loss () float32, metrics {"actor/loss", "actor/entropy", "actor/advantage_abs", "actor/logp_adv_corr"}).
    "actor/logp_adv_corr" is the correlation over the batch between log π(a_t) of the sampled action and A_t: where
    the environment ignores the action it should be near 0; persistently positive means the advantages favour the
    actions the actor already prefers, which drives its entropy down (docs/notes.md, "Where the actor collapses").
    """
    assert logp.ndim == 2 and logp.shape == entropy.shape == advantage.shape == weights.shape, (
        f"actor_loss: logp {logp.shape}, entropy {entropy.shape}, advantage {advantage.shape} and weights "
        f"{weights.shape} must all be (H, N)"
    )
    if reinforce:
        loss = -(logp * sg(advantage) + entropy_scale * entropy)
    else:
        loss = -(advantage + entropy_scale * entropy)
    loss = jnp.mean(weights * loss)
    metrics = {"actor/loss": loss, "actor/entropy": entropy.mean(), "actor/advantage_abs": jnp.abs(advantage).mean(),
               "actor/logp_adv_corr": _correlation(sg(logp), sg(advantage))}
    return loss, metrics


def _correlation(x: jax.Array, y: jax.Array) -> jax.Array:
    """Pearson correlation of two same-shape float32 arrays over all their entries → () float32 (0 if one is constant)."""
    xc, yc = x - x.mean(), y - y.mean()
    return (xc * yc).mean() / (jnp.sqrt((xc**2).mean() * (yc**2).mean()) + 1e-12)


def critic_loss(
    logits: jax.Array, returns: jax.Array, slow_value: jax.Array, weights: jax.Array, *, slow_reg: float
) -> tuple[jax.Array, dict]:
    """L_critic = mean_{t,n} w_t · (−ln p_v(sg(R_t) | s_t) − β_slow ln p_v(sg(v_slow(s_t)) | s_t)).

    logits: (H, N, K) the critic's symlog two-hot logits at sg(s_t); returns: (H, N) float32 λ-returns R_t (target);
    slow_value: (H, N) float32 the slow critic's value of s_t (target of the regulariser, weight β_slow = slow_reg);
    weights: (H, N) float32 discount weights, stop-gradient. Both targets are stop-gradient here.
    Returns (loss () float32, metrics {"critic/loss", "critic/slow_value_mean"}).
    """
    assert logits.ndim == 3 and logits.shape[:2] == returns.shape == slow_value.shape == weights.shape, (
        f"critic_loss: logits {logits.shape} must be (H, N, K) and returns {returns.shape}, slow_value "
        f"{slow_value.shape}, weights {weights.shape} (H, N)"
    )
    bins = dists.twohot_bins(logits.shape[-1])
    loss = dists.twohot_nll(logits, sg(returns), bins) + slow_reg * dists.twohot_nll(logits, sg(slow_value), bins)
    loss = jnp.mean(weights * loss)
    return loss, {"critic/loss": loss, "critic/slow_value_mean": slow_value.mean()}


def imagination_losses(
    traj: dict, cont0: jax.Array, retnorm: jax.Array, cfg: BehaviorConfig, *, discrete: bool
) -> tuple[dict, jax.Array, dict]:
    """Actor and critic losses of an imagined trajectory (DreamerV3's `imag_loss`).

    traj: the dict of `imagine` over N starts ((H, N) arrays, "critic_logits" (H, N, K), "last_value" (N,));
    cont0: (N,) float32 continue flag of the start states (1 − is_terminal); retnorm: (2,) float32 return-percentile
    EMA state (`return_scale`); discrete: the action space is discrete (REINFORCE, see `actor_loss`).
    Returns ({"actor": (), "critic": ()} losses, new retnorm (2,), metrics dict of scalars).
    """
    n = traj["reward"].shape[1]
    assert cont0.shape == (n,) and traj["last_value"].shape == (n,), (
        f"imagination_losses: cont0 {cont0.shape} and last_value {traj['last_value'].shape} must be (N,)=({n},)"
    )
    value = jnp.concatenate([traj["value"], traj["last_value"][None]], 0)
    cont = jnp.concatenate([cont0[None], traj["cont"]], 0)
    returns = lambda_returns(traj["reward"], traj["cont"], value, cfg.discount, cfg.lam)
    weights = sg(discount_weights(cont, cfg.discount))
    retnorm, scale = return_scale(retnorm, returns, cfg)
    advantage = (returns - value[:-1]) / scale
    actor, actor_metrics = actor_loss(traj["logp"], traj["entropy"], advantage, weights, entropy_scale=cfg.entropy,
                                      reinforce=discrete)
    critic, critic_metrics = critic_loss(traj["critic_logits"], returns, traj["slow_value"], weights,
                                         slow_reg=cfg.slow_reg)
    metrics = {
        **actor_metrics,
        "actor/return_scale": scale,
        "actor/return_mean": returns.mean(),
        **critic_metrics,
        "critic/value_mean": value.mean(),
        "imagine/reward_mean": traj["reward"].mean(),
        "imagine/cont_mean": cont.mean(),
    }
    return {"actor": actor, "critic": critic}, retnorm, metrics
