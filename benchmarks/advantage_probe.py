"""Probe a memory_length run's checkpoint: where does the actor's advantage favour the action it already prefers?

Loads the run's newest checkpoint (parameters and replay), imagines from `batches` batches of the run's own replay as
the update does, and splits the imagined steps into the answer step (the continue head ends the episode after it) and
the memory steps. For each kind it prints the mean normalised advantage A_t when the sampled action is the actor's
preferred one (argmax π) minus when it is the other, with its standard error, the part of that difference that is
the predicted reward r̂_{t+1}, the actor's logit gap and how often the other action was sampled. Then, from the
replay, the mean reward that followed each answer. Written for docs/notes.md ("The actor locks in on the answer the
world model has seen pay off"):

    python benchmarks/advantage_probe.py RUN_DIR [batches]
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

from r2i import allocator
from r2i.behavior import discount_weights, lambda_returns
from r2i.loop import Trainer
from r2i.rundir import load_config


def imagined(agent, params, batch, key):
    """Imagination as in the update, keeping the actor's raw logits and the sampled action: dict of (H, N) arrays
    ("raw" (H, N, A)), the λ-returns, the values (H + 1, N) and the discount weights (H, N)."""
    cfg = agent.behavior_cfg
    wm, actor, critic = agent.world_model(params), agent.actor(params), agent.critic(params["critic"])
    k_obs, k_img, k_pick = jax.random.split(key, 3)
    _, (_, out, _) = wm.loss(batch, wm.seq.initial(batch["is_first"].shape[0]), k_obs)
    start, cont0 = agent._imagination_starts(wm.seq, out, batch, k_pick)

    def step(state, k):
        k_act, k_dyn = jax.random.split(k)
        features = wm.seq.policy_features(state, agent.policy_inputs)
        action, _, _ = actor(features, k_act)
        nxt = wm.seq.imagine_step(state, action, k_dyn)
        return nxt, {"raw": actor.net(features).astype(jnp.float32), "action": action, "value": critic.mean(features),
                     "reward": wm.reward_mean(nxt), "cont": wm.cont_prob(nxt)}

    last, traj = jax.lax.scan(step, start, jax.random.split(k_img, cfg.horizon))
    value = jnp.concatenate([traj["value"], critic.mean(wm.seq.policy_features(last, agent.policy_inputs))[None]], 0)
    returns = lambda_returns(traj["reward"], traj["cont"], value, cfg.discount, cfg.lam)
    weights = discount_weights(jnp.concatenate([cont0[None], traj["cont"]], 0), cfg.discount)
    return traj, returns, value, weights


def probe(logdir: str, batches: int = 16) -> dict:
    trainer = Trainer(dataclasses.replace(load_config(logdir), logdir=logdir), quiet=True)
    if not trainer.resumed or not trainer.agent.act_space.discrete or trainer.agent.act_space.size != 2:
        raise SystemExit(f"{logdir}: needs a checkpointed run with two discrete actions (r2i:memory_length/N)")
    agent, state = trainer.agent, trainer.state
    scale = max(1.0, float(state.retnorm[1] - state.retnorm[0]))
    run = jax.jit(functools.partial(imagined, agent))
    rng, rows = np.random.default_rng(0), {"memory": [], "answer": []}
    for i in range(batches):
        batch = agent.shard_batch(trainer.replay.sample(trainer.config.run.batch_size, rng))
        traj, returns, value, weights = jax.device_get(run(state.params, batch, jax.random.key(i)))
        advantage, reward = (returns - value[:-1]) / scale, traj["reward"] / scale
        preferred = traj["action"].argmax(-1) == traj["raw"].argmax(-1)
        gap = np.abs(traj["raw"][..., 1] - traj["raw"][..., 0])
        answer = traj["cont"] < 0.5
        for kind, mask in (("memory", ~answer), ("answer", answer)):
            mask = mask & (weights > 1e-3)
            rows[kind].append((advantage[mask & preferred], advantage[mask & ~preferred], reward[mask & preferred],
                               reward[mask & ~preferred], gap[mask]))
    result = {"logdir": logdir, "env_steps": trainer.counters.env_steps, "return_scale": scale}
    for kind, parts in rows.items():
        a_pref, a_other, r_pref, r_other, gap = (np.concatenate([p[j] for p in parts]).astype(np.float64)
                                                 for j in range(5))
        result[kind] = {
            "steps": len(a_pref) + len(a_other), "p_other": round(len(a_other) / max(1, len(a_pref) + len(a_other)), 4),
            "adv_diff": round(a_pref.mean() - a_other.mean(), 4) if len(a_other) and len(a_pref) else None,
            "adv_diff_se": round(float(np.sqrt(a_pref.var() / len(a_pref) + a_other.var() / len(a_other))), 4)
            if len(a_other) > 1 and len(a_pref) > 1 else None,
            "reward_diff": round(r_pref.mean() - r_other.mean(), 4) if len(r_other) and len(r_pref) else None,
            "logit_gap": round(gap.mean(), 2),
        }
    result["replay"] = replay_answers(trainer.replay.state_dict())
    return result


def replay_answers(replay: dict) -> dict:
    """Mean reward after each answer in the replay (the step before each terminal step holds the answer)."""
    reward, action, terminal = replay["data_reward"], replay["data_action"], replay["data_is_terminal"]
    envs, steps = np.nonzero(terminal[:, 1:])
    answers = action[envs, steps].argmax(-1)
    rewards = reward[envs, steps + 1]
    return {f"answer_{a}": {"n": int((answers == a).sum()), "mean_reward": round(float(rewards[answers == a].mean()), 3)
                            if (answers == a).any() else None} for a in (0, 1)}


if __name__ == "__main__":
    allocator.configure()
    print(json.dumps(probe(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 16)))
