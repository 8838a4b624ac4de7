"""Does the world model learn the cue of `r2i:memory_length/N` when the answers are random?

Trains the world model alone (no actor) on fixed data collected with random actions — answer 0 with probability
`p0` (0.5: uniform, where the reward is the XOR of cue and answer) — and every `every` updates prints one JSON line:
the reward loss (mean over the last 100 updates; ≈ 0.115 is a coin flip on the answer with the default preset, ≈ 0.07
the solved runs' level) and how well a linear probe reads the cue at the episode's terminal step (ridge regression
fitted on half of ≈ 1,000 held-out episodes, which the world model never trains on, accuracy on the other half) from:

* `h`: the sequence model's output, what the heads read by default (`model.head_inputs=output`);
* `z`: the stochastic latent of that step;
* `x`: the S5 hidden state of every layer, Re and Im (S3M only);

and the answer (the action taken on the query observation, which the world model consumes at the terminal step)
from h and z.

Written for docs/notes.md ("The cue is in the S5 state, not in its output"):

    python benchmarks/cue_probe.py [p0=0.5] [memory_actions=random|fixed] [updates=3000] [every=250] [data=4000] [key=value config overrides]
"""

from __future__ import annotations

import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from r2i import allocator
from r2i.agent import Agent
from r2i.config import make_config
from r2i.envs import VectorDriver, make_specs
from r2i.replay import Replay
from r2i.run import replay_spec


def collect(config, steps: int, p0: float, seed: int, memory_actions: str = "random") -> tuple[list[dict], VectorDriver]:
    """`steps` env steps of random actions (answer 0 with probability p0) from 4 envs: one list of replay rows
    (observation keys, "action") per env, and the envs. With memory_actions="fixed" only the answer (the action on
    the query observation) is random; the N actions before it, which the environment ignores, are all action 0."""
    driver = VectorDriver(make_specs(config.env.id, 4, seed, **config.env.options), False)
    assert driver.act_space.size == 2, f"cue_probe needs 2 actions (2 cues), got {driver.act_space.size}"
    keys = [k for k in replay_spec(driver) if k != "action"]
    rng, streams = np.random.default_rng(seed), [[] for _ in range(4)]
    obs = driver.reset()
    for _ in range(steps // 4):
        answer = (rng.random(4) >= p0).astype(int)
        if memory_actions == "fixed":
            answer = np.where(obs["vector"][:, 1] > 0.5, answer, 0)
        action = np.eye(2, dtype=np.float32)[answer]
        for i, stream in enumerate(streams):
            stream.append({**{k: obs[k][i] for k in keys}, "action": action[i]})
        obs = driver.step(action)
    return streams, driver


def fill_replay(config, streams: list[list[dict]]) -> Replay:
    replay = Replay({k: (np.shape(v), np.asarray(v).dtype) for k, v in streams[0][0].items()},
                    max(len(streams[0]), config.run.batch_length) * len(streams), len(streams), config.run.batch_length,
                    config.seed)
    for t in range(len(streams[0])):
        replay.add({k: np.stack([s[t][k] for s in streams]) for k in streams[0][0]})
    return replay


def episode_batch(streams: list[list[dict]]) -> dict:
    """Every complete episode of the streams (each once), stacked: {key: (E, T, …)}. Episodes of memory_length all
    have the same length."""
    episodes = []
    for stream in streams:
        starts = [t for t, row in enumerate(stream) if row["is_first"]]
        for a, b in zip(starts, starts[1:]):
            if stream[b - 1]["is_terminal"]:
                episodes.append(stream[a:b])
    assert len({len(e) for e in episodes}) == 1, "episodes of different lengths"
    return {k: np.stack([np.stack([row[k] for row in e]) for e in episodes]) for k in episodes[0][0]}


def probe_accuracy(features: np.ndarray, cue: np.ndarray) -> float:
    """Ridge regression of ±1 cue on standardised features, fitted on the first half, accuracy on the second."""
    x = features.astype(np.float64)
    x = np.c_[(x - x.mean(0)) / (x.std(0) + 1e-6), np.ones(len(x))]
    y, n = cue * 2.0 - 1.0, len(x) // 2
    w = np.linalg.solve(x[:n].T @ x[:n] + 10.0 * np.eye(x.shape[1]), x[:n].T @ y[:n])
    return round(float(np.mean(np.sign(x[n:] @ w) == y[n:])), 3)


def main(argv: list[str]) -> None:
    allocator.configure()
    over = dict(a.split("=", 1) for a in argv if "=" in a)
    p0, updates = float(over.pop("p0", 0.5)), int(over.pop("updates", 3000))
    every, steps = int(over.pop("every", 250)), int(over.pop("data", 4000))
    memory_actions = over.pop("memory_actions", "random")
    if memory_actions not in ("random", "fixed"):
        raise SystemExit(f"cue_probe: memory_actions must be random or fixed, got {memory_actions!r}")
    config = make_config(over.pop("preset", "default"), over)
    streams, driver = collect(config, steps, p0, config.seed, memory_actions)
    replay = fill_replay(config, streams)
    held_out = episode_batch(collect(config, 12_000, p0, config.seed + 1000, memory_actions)[0])  # unseen episodes, each once
    agent = Agent.from_config(config, driver.obs_space, driver.act_space)
    state = agent.init(jax.random.key(config.seed))
    batch_size = config.run.batch_size

    def wm_loss(params, batch, key):
        wm = agent.world_model(params)
        loss, (_, out, metrics) = wm.loss(batch, wm.seq.initial(batch["is_first"].shape[0]), key)
        return loss, (out, metrics)

    @jax.jit
    def update(state, batch, key):
        (_, (_, metrics)), grads = jax.value_and_grad(wm_loss, has_aux=True)(state.params, batch, key)
        step, opt_state = agent.tx.update(grads, state.opt_state, state.params)
        return state.replace(params=optax.apply_updates(state.params, step), opt_state=opt_state), metrics

    @jax.jit
    def features(params, batch, key):
        """Features at each episode's terminal step (the batch's last): {"h": (E, D), "z": (E, Z), "x": (E, 2·L·P)}."""
        out = wm_loss(params, batch, key)[1][0]
        parts = {"h": out["h"][:, -1], "z": out["z"][:, -1].reshape(out["z"].shape[0], -1)}
        if "x" in out:
            x = out["x"][:, -1].reshape(out["x"].shape[0], -1)
            parts["x"] = jnp.concatenate([x.real, x.imag], -1)
        return parts

    def probe(params) -> dict:
        cue = np.argmax(held_out["vector"][:, 0, 2:], -1)
        answer = np.argmax(held_out["action"][:, -2], -1)  # taken on the query observation, consumed at the last step
        parts = features(params, held_out, jax.random.key(7))
        return {"episodes": len(cue),
                **{f"cue_from_{n}": probe_accuracy(np.asarray(v), cue) for n, v in sorted(parts.items())},
                **{f"answer_from_{n}": probe_accuracy(np.asarray(parts[n]), answer) for n in ("h", "z")}}

    key, losses, start = jax.random.key(config.seed + 100), [], time.time()
    print(json.dumps({"p0": p0, "memory_actions": memory_actions, "overrides": over, "update": 0, **probe(state.params)}), flush=True)
    for u in range(1, updates + 1):
        key, k = jax.random.split(key)
        state, metrics = update(state, replay.sample(batch_size), k)
        losses.append(float(metrics["model/loss_reward"]))
        if u % every == 0:
            print(json.dumps({"update": u, "reward_loss": round(float(np.mean(losses[-100:])), 4),
                              **probe(state.params), "wall_s": round(time.time() - start)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
