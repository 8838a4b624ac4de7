"""What does a trained memory run know at its question? Probes of a run's checkpoint on its own behaviour.

Plays `episodes` episodes of the run's own task (the vector `r2i:memory_length/N` or BSuite `memory_len` with one
context bit) side by side, acting with the run's policy in `mode` ('sample', as in training, by default) up to the
query observation, where the answer is chosen; filters every episode through the world model in one `filter` call
over the whole window, as in training; and at the query reports:

* `cue_from_*`: a ridge probe of the cue (benchmarks/cue_probe.py's `probe_accuracy`: fitted on half the episodes,
  accuracy on the other half) on each part of the state: `h` (the sequence model's output), `z` (the query step's
  latent; its observation does not show the cue, so ≈ 0.5), `x` (S3M's hidden state of every layer, Re and Im), and
  `actor` (the features the run's actor reads, its `model.policy_inputs`);
* per cue: the world model's predicted reward for each answer (one imagined step from the filtered query state, the
  mean over episodes), and the actor's probability of the right answer (`Actor.probs`, the unimix included: what it
  samples from) and its entropy there.

If the features hold the cue and the rewards tell the answers apart while the actor does not follow, the policy
update is what fails; if the rewards do not depend on the answer, the world model is. Written for issue 11
(docs/notes.md, "What S3M knows at memory length 100").

With `posterior=mode` the filter feeds the sequence model the posterior's mode at every step instead of a sample of
it (training and acting sample): where the cue reads from x much better so, the noise that the sampled latents add at
every memory step (and that the SSM's slow modes sum up) is what hides the cue.

    python benchmarks/query_probe.py RUN_DIR[@STEP] [episodes=400] [mode=sample] [posterior=sample|mode]

`RUN_DIR@STEP` reads the run's checkpoint or snapshot (`run.snapshot_every`) of that env step instead of its newest.
"""

from __future__ import annotations

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
from answer_probe import correct_answer
from cue_probe import probe_accuracy

from r2i import allocator
from r2i.api import load
from r2i.envs import make_env
from r2i.runtime import source_commit


def memory_task(logdir: str, config, probe_name: str) -> str:
    """The run's task id, if it is one the memory probes read (the vector `r2i:memory_length/N`, or BSuite
    `memory_len` with one context bit); otherwise exit with one line that says so."""
    task = config.env.id
    if not (task.startswith("r2i:memory_length/") and not config.env.options.get("image")) and not (
            task.startswith("bsuite:memory_len/") and int(config.env.options.get("num_bits", 1)) == 1):
        raise SystemExit(
            f"{logdir}: {probe_name} reads the vector memory_length / one-bit memory_len tasks, not {task}")
    return task


def start_episodes(logdir: str, episodes: int, probe_name: str, first_seed: int):
    """Load a memory run (`RUN_DIR@STEP`: its checkpoint or snapshot of that env step, `r2i.load`'s `step`) and start
    `episodes` episodes of its task (env seeds first_seed, first_seed + 1, …) → (the loaded policy, envs, first
    observations, each episode's right answer (E,) int)."""
    run, _, step = logdir.partition("@")
    policy = load(run, int(step) if step else None)
    task = memory_task(logdir, policy.config, probe_name)
    envs = [make_env(task, first_seed + i, **policy.config.env.options) for i in range(episodes)]
    obs = [env.reset() for env in envs]
    return policy, envs, obs, np.asarray([correct_answer(task, o["vector"]) for o in obs])


def filter_to_last(wm, vector, action, first, key) -> dict:
    """Filter whole episodes (vector (E, T, F), action (E, T, A), first (E, T) bool) in one window, as training does
    → the state at their last step: "h", "z", "x" (S3M), "zin", each (E, …)."""
    embed = wm.encode({"vector": vector, "is_first": first})
    _, out = wm.seq.filter(wm.seq.initial(vector.shape[0]), embed, action, first, key)
    return {k: v[:, -1] for k, v in out.items() if k in ("h", "z", "x", "zin")}


def flat_features(features: list) -> jax.Array:
    """A list of (E, …) feature arrays → (E, F) float32, for the ridge probes."""
    return jnp.concatenate([f.reshape(f.shape[0], -1).astype(jnp.float32) for f in features], -1)


def probe(logdir: str, episodes: int = 400, mode: str = "sample", posterior: str = "sample") -> dict:
    if posterior not in ("sample", "mode"):
        raise SystemExit(f"posterior must be 'sample' or 'mode', got {posterior!r}")
    policy, envs, obs, cues = start_episodes(logdir, episodes, "query_probe", 10_000)
    agent, params = policy.agent, policy.params
    vectors, actions, key = [], [], jax.random.key(1)
    carry = agent.initial(episodes)
    while True:  # act until the query observation: the step after which every episode ends
        batch = {"vector": np.stack([o["vector"] for o in obs]), "is_first": np.asarray([o["is_first"] for o in obs])}
        key, sub = jax.random.split(key)
        carry, action = agent.act(params, carry, batch, sub, mode)
        vectors.append(batch["vector"])
        actions.append(np.asarray(action))
        obs = [env.step(a) for env, a in zip(envs, np.asarray(action))]
        last = np.asarray([o["is_last"] for o in obs])
        if last.any():
            if not last.all():
                raise SystemExit("query_probe needs episodes of one length")
            break
    vectors, actions = np.stack(vectors, 1), np.stack(actions, 1)  # (E, T) up to and including the query
    e, t = vectors.shape[:2]
    is_first = np.zeros((e, t), bool)
    is_first[:, 0] = True
    wm, actor = agent.world_model(params), agent.actor(params)
    if posterior == "mode":  # the filter's latents: the posterior's mode instead of a sample (a probe, not training)
        sample = wm.seq._sample
        wm.seq._sample = lambda key, logp, _=True: sample(key, logp, False)
    answers = agent.act_space.nvec[0]

    @jax.jit
    def at_query(vector, action, first, key):
        query = filter_to_last(wm, vector, action, first, key)
        features = wm.seq.policy_features(query, agent.policy_inputs)
        rewards = jnp.stack([wm.reward_mean(wm.seq.imagine_step(query, jnp.eye(answers)[a][None].repeat(
            vector.shape[0], 0), key)) for a in range(answers)], -1)
        return query, flat_features(features), actor.probs(features)[0], rewards

    query, features, probs, rewards = jax.device_get(
        at_query(jnp.asarray(vectors), jnp.asarray(actions), jnp.asarray(is_first), jax.random.key(2)))
    parts = {"h": query["h"], "z": query["z"], "actor": features}
    if "x" in query:
        x = np.asarray(query["x"]).reshape(e, -1)
        parts["x"] = np.concatenate([x.real, x.imag], -1)
    per_cue = {}
    for cue in range(answers):
        rows = cues == cue
        p = probs[rows]
        per_cue[f"cue{cue}"] = {
            "episodes": int(rows.sum()),
            **{f"reward_answer{a}": round(float(rewards[rows, a].mean()), 3) for a in range(answers)},
            "p_right": round(float(p[:, cue].mean()), 3),
            "entropy": round(float(-(p * np.log(np.maximum(p, 1e-12))).sum(-1).mean()), 3),
        }
    return {"logdir": logdir, "commit": source_commit(), "policy_inputs": agent.policy_inputs, "posterior": posterior,
            "episodes": e, "query_step": t - 1,
            **{f"cue_from_{k}": probe_accuracy(np.asarray(v, np.float64), cues) for k, v in parts.items()}, **per_cue}


if __name__ == "__main__":
    allocator.configure()
    args = sys.argv[1:]
    print(json.dumps(probe(args[0], int(args[1]) if len(args) > 1 else 400, args[2] if len(args) > 2 else "sample",
                           args[3] if len(args) > 3 else "sample")))
