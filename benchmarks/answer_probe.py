"""Probe a trained memory_length run at its question: what the actor answers and what the world model expects.

For each cue, plays episodes of the run's own task — the built-in `r2i:memory_length/N` (vector) or BSuite's
`memory_len` with one context bit — with action 0 on every step, filters them through the run's world model, and at
the query observation (the last one before the episode ends, where the answer is given) prints:

* how often the greedy answer equals the cue;
* the world model's predicted reward r̂ for each answer (one imagined step from the filtered state);
* the critic's value at the query, the actor's entropy, and its raw logit gap (answer 1 minus answer 0) — a gap far
  beyond what the 1 % unimix lets the behaviour show means the policy gradient through the softmax has vanished.

    python benchmarks/answer_probe.py RUN_DIR [episodes per cue]

Written to tell the two ways `r2i train` failed on its own task apart (docs/notes.md): a world model that has not
learned the cue (r̂ equal for both answers) or an actor that ignores a world model that has.
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np

from r2i import allocator
from r2i.api import load
from r2i.envs import make_env


def correct_answer(env_id: str, first: np.ndarray) -> int:
    """The right answer of an episode, read from its first observation `first` (the `vector` (2 + cues,))."""
    if env_id.startswith("r2i:memory_length/"):
        return int(np.argmax(first[2:]))  # [time, query, one-hot cue]
    return int(first[2] > 0)  # bsuite memory_len: [time, query, 2·bit − 1]; the answer is the bit


def probe(logdir: str, episodes: int = 8) -> list[dict]:
    policy = load(logdir)
    agent, params, config = policy.agent, policy.params, policy.config
    task = config.env.id
    supported = (task.startswith("r2i:memory_length/") and not config.env.options.get("image")) or (
        task.startswith("bsuite:memory_len/") and int(config.env.options.get("num_bits", 1)) == 1)
    if not supported:
        raise SystemExit(f"{logdir}: answer_probe reads runs of the vector r2i:memory_length/N task or of bsuite "
                         f"memory_len with one context bit, not {task} {config.env.options}")
    wm, actor, critic = agent.world_model(params), agent.actor(params), agent.critic(params["critic"])
    env = make_env(config.env.id, 0, **config.env.options)
    cues = env.act_space.nvec[0]
    key = jax.random.key(0)
    out = []
    for cue in range(cues):
        rows = []
        while len(rows) < episodes:
            obs = env.reset()
            if correct_answer(task, obs["vector"]) != cue:
                continue
            carry, query = agent.initial(1), None
            while not obs["is_last"]:
                key, k_obs = jax.random.split(key)
                inputs = {"vector": jnp.asarray(obs["vector"])[None], "is_first": jnp.asarray([bool(obs["is_first"])])}
                carry, query = wm.seq.filter_step(carry, wm.encode(inputs), inputs["is_first"], k_obs)
                action = np.eye(cues, dtype=np.float32)[0]
                carry = {**carry, "a": jnp.asarray(action)[None]}
                obs = env.step(action)
            # `query`: the state at the last observation before the end, on which the answer was given.
            key, k_act = jax.random.split(key)
            features = wm.seq.policy_features(query, agent.policy_inputs)
            greedy, _, entropy = actor(features, k_act, "greedy")
            raw = np.asarray(actor.net(features))[0]
            answers = [wm.seq.imagine_step(query, jnp.eye(cues)[a][None], k_act) for a in range(cues)]
            rows.append([int(np.argmax(np.asarray(greedy)[0])) == cue, *[float(wm.reward_mean(n)[0]) for n in answers],
                         float(critic.mean(features)[0]), float(entropy[0]), float(raw[-1] - raw[0])])
        r = np.array(rows)
        out.append({"cue": cue, "greedy_correct": float(r[:, 0].mean()),
                    **{f"reward_answer{a}": round(float(r[:, 1 + a].mean()), 3) for a in range(cues)},
                    "value": round(float(r[:, 1 + cues].mean()), 3), "entropy": round(float(r[:, 2 + cues].mean()), 3),
                    "logit_gap": round(float(r[:, 3 + cues].mean()), 2)})
    return out


if __name__ == "__main__":
    allocator.configure()
    for line in probe(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 8):
        print(line)
