"""What a discounting_chain run's agent believes each chain is worth at the episode's first step.

The first action of a bsuite discounting_chain episode picks one of five chains; chain a pays its reward (1, or 1.1 for
the bonus chain) `DISCOUNTING_CHAIN_DELAYS[a]` steps later and nothing else matters. This probe filters the first
observation of an episode through the run's world model, then for each first action a imagines `horizon` steps (the
first action forced to a, the rest from the run's actor, as training imagines) from `starts` copies, and reports per
chain: the reward head's prediction at the step the chain pays (and the largest anywhere along the rollout), the
continue head's product along the rollout, the λ-return of the first step as the training update computes it (the
run's γ and λ, the critic's values), and the critic's value of the state after the first action. With it, the actor's
probability of each first action. Written for issue 11 (docs/notes.md, "The discounting chain at delay 10").

Then, per chain, on a real episode of it (first action a, then uniformly random actions, a draw per copy: they change
nothing in the chain) filtered through the world model as training filters it (`copies` copies): the reward head at the
step the chain pays and summed over the episode (the truth: 1 or 1.1, once), the continue head's smallest value before
the last step, and the critic's value on the posterior states at a few steps against the true discounted value
r·γ^(d−t−1) (0 from the paying step on). Imagination can only be as right as these (docs/notes.md, "The discounting
chain at delay 30").

    python benchmarks/chain_probe.py RUN_DIR [starts=256] [copies=16]
"""

from __future__ import annotations

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

from r2i import allocator
from r2i.api import load
from r2i.behavior import lambda_returns
from r2i.envs import make_env
from r2i.envs.bsuite_env import DISCOUNTING_CHAIN_DELAYS


def probe(logdir: str, starts: int = 256, copies: int = 16) -> dict:
    policy = load(logdir)
    agent, params, config = policy.agent, policy.params, policy.config
    if not config.env.id.removeprefix("bsuite:").startswith("discounting_chain/"):
        raise SystemExit(f"chain_probe: {logdir} trained on {config.env.id}; give it a bsuite:discounting_chain run")
    wm, actor, critic = agent.world_model(params), agent.actor(params), agent.critic(params["critic"])
    seq, cfg = wm.seq, agent.behavior_cfg
    horizon = cfg.horizon
    env = make_env(config.env.id, 0, **config.env.options)
    first = env.reset()
    env.close()
    vector = jnp.asarray(np.repeat(first["vector"][None, None], starts, 0))  # (N, 1, F)
    is_first = jnp.ones((starts, 1), bool)
    n_actions = int(agent.act_space.size)

    @jax.jit
    def rollouts(key):
        embed = wm.encode({"vector": vector, "is_first": is_first})
        _, out = seq.filter(seq.initial(starts), embed, jnp.zeros((starts, 1, n_actions)), is_first, key)
        start = seq.start(out)
        features = seq.policy_features(start, agent.policy_inputs)
        probs = actor.probs(features)[0].mean(0)  # (A,)

        def chain(a, k):
            def step(state, inputs):
                t, k_t = inputs
                k_act, k_dyn = jax.random.split(k_t)
                feats = seq.policy_features(state, agent.policy_inputs)
                act, _, _ = actor(feats, k_act)
                act = jnp.where(t == 0, jax.nn.one_hot(jnp.full((starts,), a), n_actions), act)
                nxt = seq.imagine_step(state, act, k_dyn)
                return nxt, (critic.mean(feats), wm.reward_mean(nxt), wm.cont_prob(nxt))

            last, (value, reward, cont) = jax.lax.scan(step, start, (jnp.arange(horizon), jax.random.split(k, horizon)))
            value = jnp.concatenate([value, critic.mean(seq.policy_features(last, agent.policy_inputs))[None]], 0)
            returns = lambda_returns(reward, cont, value, cfg.discount, cfg.lam)  # (H, N)
            return reward.mean(1), jnp.cumprod(cont, 0).mean(1), returns[0].mean(), value[1].mean()

        per_chain = [chain(a, k) for a, k in zip(range(n_actions), jax.random.split(key, n_actions))]
        return probs, per_chain

    probs, per_chain = rollouts(jax.random.key(7))
    report = {"logdir": logdir, "discount": cfg.discount, "horizon": horizon, "starts": starts, "chains": []}
    for a, (reward, alive, ret, value_after) in enumerate(per_chain):
        delay = DISCOUNTING_CHAIN_DELAYS[a]
        reward = np.asarray(reward)
        report["chains"].append({
            "action": a, "delay": delay, "actor_prob": round(float(probs[a]), 3),
            "reward_at_delay": round(float(reward[delay - 1]), 3) if delay <= horizon else None,
            "reward_max": round(float(reward.max()), 3), "reward_argmax_step": int(reward.argmax()) + 1,
            "cont_product_end": round(float(np.asarray(alive)[-1]), 3),
            "lambda_return_0": round(float(ret), 3), "value_after_first_step": round(float(value_after), 3)})
    report["episodes"] = along_episodes(policy, copies)
    return report


def along_episodes(policy, copies: int = 16) -> list[dict]:
    """Each chain's real episode through the world model: reward, continue and critic heads on posterior states."""
    agent, params, config = policy.agent, policy.params, policy.config
    wm, critic = agent.world_model(params), agent.critic(params["critic"])
    seq, discount = wm.seq, agent.behavior_cfg.discount
    n_actions = int(agent.act_space.size)

    @jax.jit
    def heads(vector, is_first, taken, key):
        """vector (N, T, F), is_first (N, T), taken (N, T, A) → critic, reward and continue heads (T,), mean over N."""
        embed = wm.encode({"vector": vector, "is_first": is_first})
        _, out = seq.filter(seq.initial(copies), embed, taken, is_first, key)
        state = seq.start(out)  # (N·T, …)
        value = critic.mean(seq.policy_features(state, agent.policy_inputs))
        return [x.reshape(is_first.shape).mean(0) for x in (value, wm.reward_mean(state), wm.cont_prob(state))]

    rows = []
    for a, delay in enumerate(DISCOUNTING_CHAIN_DELAYS):
        env = make_env(config.env.id, 0, **config.env.options)
        obs, actions = [env.reset()], []
        while not obs[-1]["is_last"]:  # the env's episode: a, then any actions (the same observations follow)
            actions.append(a if not actions else 0)
            obs.append(env.step(np.eye(n_actions, dtype=np.float32)[actions[-1]]))
        env.close()
        steps = len(obs)
        paid = float(obs[delay]["reward"])
        vector = jnp.asarray(np.repeat(np.stack([o["vector"] for o in obs])[None], copies, 0))  # (N, T, F)
        is_first = jnp.zeros((copies, steps), bool).at[:, 0].set(True)
        # The action taken after each observation (the last observation has none: zeros): a, then uniformly random
        # ones, a draw per copy. They change nothing in the chain but are the sequence model's inputs, and the runs'
        # actors are near uniform after the first step (their entropy ≈ 1.5 of ln 5 = 1.61).
        later = np.random.default_rng(a).integers(n_actions, size=(copies, len(actions) - 1))
        taken = np.zeros((copies, steps, n_actions), np.float32)
        taken[:, 0, a] = 1.0
        taken[np.arange(copies)[:, None], np.arange(1, len(actions))[None], later] = 1.0

        value, reward, cont = (np.asarray(x) for x in heads(vector, is_first, jnp.asarray(taken), jax.random.key(a)))
        truth = [paid * discount ** (delay - t - 1) if t < delay else 0.0 for t in range(steps)]
        at = sorted({t for t in (1, delay // 2, delay - 1, delay, steps - 1) if 0 < t < steps})
        rows.append({
            "action": a, "delay": delay, "reward_paid": round(paid, 3),
            "reward_head_at_delay": round(float(reward[delay]), 3),
            "reward_head_episode_sum": round(float(reward[1:].sum()), 3),
            "cont_min_before_last": round(float(cont[1:-1].min()), 3),
            "value_vs_truth": {t: [round(float(value[t]), 3), round(truth[t], 3)] for t in at}})
    return rows


if __name__ == "__main__":
    allocator.configure()
    args = sys.argv[1:]
    if not 1 <= len(args) <= 3:
        raise SystemExit("usage: python benchmarks/chain_probe.py RUN_DIR [starts=256] [copies=16]")
    print(json.dumps(probe(args[0], *(int(a) for a in args[1:])), indent=1))
