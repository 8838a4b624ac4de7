"""Does imagination stay on the data? The continue head along imagined rollouts of a run's checkpoint.

Plays `episodes` episodes of the run's own task with its policy (mode 'sample', as in training) for `steps` env
steps, filters them through the world model in one window (as in training), and imagines `horizon` steps with the
run's actor from `starts` of the filtered states drawn at random, as the training update does. On these tasks an
episode ends only after its answer, so along a rollout the true continue flag is 1 at almost every step; the report
gives the continue head's mean probability at each imagined step and the fraction of steps below 0.5, for

* `as_trained`: the sequence model reads what the run's `model.latent_input` makes it read in imagination (with
  'probs' or 'mode', the prior's probabilities or mode, while filtering in training it read the posterior's);
* `reads_sample`: the sequence model reads the one-hot sample of the prior instead (what 'sample' runs read), a
  probe only.

For `model.latent_input=sample` runs the two are the same computation. Written for issue 11 (docs/notes.md,
"Imagination leaves the data when S3M reads probabilities").

    python benchmarks/imagine_probe.py RUN_DIR [episodes=64] [steps=0: one episode] [starts=2048] [horizon=15]
"""

from __future__ import annotations

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

from r2i import allocator
from r2i.api import load
from r2i.envs import make_env


def play(agent, params, config, episodes: int, steps: int):
    """(vectors (E, T, F), actions (E, T, A), is_first (E, T), is_terminal (E, T)) of `steps` env steps per env,
    episodes restarting as they end, acting with the policy in 'sample' mode."""
    task = config.env.id
    envs = [make_env(task, 20_000 + i, **config.env.options) for i in range(episodes)]
    obs = [env.reset() for env in envs]
    carry, key = agent.initial(episodes), jax.random.key(3)
    vectors, actions, firsts, terminals = [], [], [], []
    for _ in range(steps):
        batch = {"vector": np.stack([o["vector"] for o in obs]), "is_first": np.asarray([o["is_first"] for o in obs])}
        key, sub = jax.random.split(key)
        carry, action = agent.act(params, carry, batch, sub, "sample")
        vectors.append(batch["vector"])
        firsts.append(batch["is_first"])
        terminals.append(np.asarray([o.get("is_terminal", False) for o in obs]))
        actions.append(np.asarray(action))
        obs = [env.reset() if o["is_last"] else env.step(a) for env, o, a in zip(envs, obs, np.asarray(action))]
    return tuple(np.stack(v, 1) for v in (vectors, actions, firsts, terminals))


def probe(logdir: str, episodes: int = 64, steps: int = 0, starts: int = 2048, horizon: int = 15) -> dict:
    policy = load(logdir)
    agent, params, config = policy.agent, policy.params, policy.config
    if steps <= 0:
        steps = int(config.env.options.get("memory_length", 0)) + 2 if "memory_len" in config.env.id else 512
    vectors, actions, first, terminal = play(agent, params, config, episodes, steps)
    wm, actor = agent.world_model(params), agent.actor(params)
    seq = wm.seq
    trained_input = seq.latent_input

    def rollout(reads: str):
        seq.latent_input = reads  # read at trace time: each variant compiles its own program

        @jax.jit
        def run(vector, action, is_first, key):
            embed = wm.encode({"vector": vector, "is_first": is_first})
            _, out = seq.filter(seq.initial(vector.shape[0]), embed, action, is_first, key)
            start = seq.start(out)
            if reads == "sample":  # the carry of imagine_step reading samples has no "zin"
                start = {k: v for k, v in start.items() if k != "zin"}
            pick = jax.random.permutation(jax.random.key(4), start["z"].shape[0])[:starts]
            state = jax.tree.map(lambda v: v[pick], start)

            def step(state, k):
                k_act, k_dyn = jax.random.split(k)
                act, _, _ = actor(seq.policy_features(state, agent.policy_inputs), k_act)
                nxt = seq.imagine_step(state, act, k_dyn)
                return nxt, wm.cont_prob(nxt)

            _, cont = jax.lax.scan(step, state, jax.random.split(jax.random.key(5), horizon))
            return cont  # (H, N)

        try:
            return np.asarray(run(jnp.asarray(vectors), jnp.asarray(actions), jnp.asarray(first), jax.random.key(2)))
        finally:
            seq.latent_input = trained_input

    report = {"logdir": logdir, "latent_input": trained_input, "episodes": episodes, "steps": steps,
              "starts": starts, "horizon": horizon, "data_cont_mean": round(float(1 - terminal.mean()), 4)}
    for name, reads in (("as_trained", trained_input), ("reads_sample", "sample")):
        cont = rollout(reads)
        report[name] = {"cont_mean": round(float(cont.mean()), 3),
                        "cont_below_half": round(float((cont < 0.5).mean()), 3),
                        "cont_by_step": [round(float(c), 3) for c in cont.mean(1)]}
    return report


if __name__ == "__main__":
    allocator.configure()
    args = sys.argv[1:]
    print(json.dumps(probe(args[0], *(int(a) for a in args[1:]))))
