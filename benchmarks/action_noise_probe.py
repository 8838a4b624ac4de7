"""How loud is the cue at the query, against the noise that the episode's own actions leave in the SSM state?

On the one-bit memory tasks (the vector `r2i:memory_length/N`, BSuite `memory_len`) every observation between the
cue and the query shows only the time, the same in every episode; with the latent read as its probabilities or its
mode (`model.latent_input`), the only inputs that differ between two episodes with the same cue are the actions. A
linear SSM adds every input into its slow modes, so the memory steps' actions, which change nothing in the task, pile
up there as noise around the cue unless the input projection learns to leave them out (a GRU's gate can shut instead).

Plays `episodes` episodes with the run's policy ('sample', as in training), then filters each whole episode through
the world model three times, with three action histories: the policy's own; one episode's actions given to every
episode (`shared`: then nothing but the cue differs between episodes); uniformly random actions (`uniform`, the
most noise an entropy bonus can leave). At the query (the state the actor answers from) it reports for the SSM state
x (Re, Im of every layer) and the sequence model's output h:

* `cue_raw_separation`: the gap between the two cues' mean features along their difference, in within-cue standard
  deviations (benchmarks/reward_probe.py's `cue_axis`): how far apart the two cues sit in what the heads read;
* `cue_probe`: the cue read by a ridge probe (benchmarks/cue_probe.py), which can find a quiet direction that the
  separation above misses;
* `within_cue_spread`: the within-cue standard deviation along that direction. With `shared` actions it is zero up
  to rounding when the actions are the only noise, which the probe checks rather than assumes;
* `x_by_half_life` (the policy's actions): the same separation and probe in the modes of each half-life band, in
  episode lengths T (below T/4, T/4 to T, T to 2T, above 2T; benchmarks/ssm_timescales.py's half-lives): which of the
  state's modes hold the cue;

and `memory_action_frequencies`, how often the policy takes each action on the memory steps (neither the first step
nor the query). `flip_effect` says where that noise comes from: the `shared` history with one step's action changed,
for steps spread over the lags before the query, and how far each change moves x and h at the query, along the cue
direction and in all, in units of the cue's gap (per lag bin). With two actions taken independently with probability
p and 1 − p, p(1 − p) times the sum over every lag of the squared move along the cue is, to first order, the
within-cue variance. Written for issue 11 (docs/notes.md, "The memory steps' actions are the only noise around the
cue").

    python benchmarks/action_noise_probe.py RUN_DIR [episodes=400]
"""

from __future__ import annotations

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
from cue_probe import probe_accuracy
from query_probe import filter_to_last, start_episodes
from reward_probe import cue_axis, episode_length
from ssm_timescales import half_lives

from r2i import allocator


def probe(logdir: str, episodes: int = 400) -> dict:
    policy, envs, obs, cues = start_episodes(logdir, episodes, "action_noise_probe", 30_000)
    agent, params, config = policy.agent, policy.params, policy.config
    if config.model.sequence != "s3m":
        raise SystemExit(f"{logdir}: action_noise_probe reads the SSM state of S3M runs, not {config.model.sequence}")
    length = episode_length(config.env.id, config.env.options)
    vectors, actions, key = [], [], jax.random.key(1)
    carry = agent.initial(episodes)
    for _ in range(length):
        batch = {"vector": np.stack([o["vector"] for o in obs]), "is_first": np.asarray([o["is_first"] for o in obs])}
        key, sub = jax.random.split(key)
        carry, action = agent.act(params, carry, batch, sub)
        action = np.asarray(action)
        vectors.append(batch["vector"])
        actions.append(action)
        obs = [env.step(a) for env, a in zip(envs, action)]
    vectors, actions = np.stack(vectors, 1), np.stack(actions, 1)  # (E, T, F), (E, T, A): T actions, the query last
    is_first = np.zeros(vectors.shape[:2], bool)
    is_first[:, 0] = True
    wm = agent.world_model(params)

    @jax.jit
    def at_query(action):  # the state after the query's observation, as the actor reads it to answer
        last = filter_to_last(wm, jnp.asarray(vectors), action, jnp.asarray(is_first), jax.random.key(2))
        return {"h": last["h"].astype(jnp.float32), "x": wm.seq.flat_hidden(last["x"]), "modes": last["x"]}

    n_actions = actions.shape[-1]
    histories = {
        "policy": actions,
        "shared": np.broadcast_to(actions[:1], actions.shape).copy(),
        "uniform": np.eye(n_actions, dtype=actions.dtype)[
            np.random.default_rng(3).integers(n_actions, size=actions.shape[:2])
        ],
    }
    report = {
        "logdir": logdir,
        "episodes": episodes,
        "steps": length,
        "latent_input": config.model.latent_input,
        "memory_action_frequencies": [round(float(f), 3) for f in actions[:, 1:-1].mean((0, 1))],
    }
    for name, history in histories.items():
        features = jax.device_get(at_query(jnp.asarray(history)))
        modes = features.pop("modes")  # (E, layers, P) complex64
        report[name] = {part: loudness(np.asarray(f, np.float64), cues) for part, f in features.items()}
        if name == "policy":
            policy_features = {part: np.asarray(f, np.float64) for part, f in features.items()}
            report["policy"]["x_by_half_life"] = by_half_life(modes, half_lives(params), length, cues)
    report["flip_effect"] = flip_effect(at_query, histories["shared"], policy_features, cues)
    return report


def by_half_life(modes: np.ndarray, half_life: np.ndarray, length: int, cues: np.ndarray) -> dict:
    """modes: (E, layers, P) complex, the SSM state at the query; half_life: (layers, P) steps → the cue's
    separation and ridge probe in the modes of each half-life band, in episode lengths T: below T/4, T/4 to T, T to
    2T, above 2T (a mode above 2T keeps more than 70 % of the cue to the query)."""
    bands = {"<T/4": (0, length / 4), "T/4-T": (length / 4, length), "T-2T": (length, 2 * length),
             ">2T": (2 * length, np.inf)}
    out = {}
    for name, (low, high) in bands.items():
        chosen = (half_life >= low) & (half_life < high)
        if chosen.any():
            f = np.concatenate([modes[:, chosen].real, modes[:, chosen].imag], -1).astype(np.float64)
            gap, _, within = cue_axis(f, cues)
            out[name] = {"modes": int(chosen.sum()), "cue_raw_separation": round(gap / within, 2),
                         "cue_probe": probe_accuracy(f, cues)}
    return out


def flip_effect(at_query, shared: np.ndarray, features: dict, cues: np.ndarray, flips: int = 24) -> dict:
    """How far one memory step's action moves the state at the query, by how long before the query it was taken.

    shared: (E, T, A) one action history given to every episode; features: part → (E, F) at the query with the
    policy's own actions, which give the cue direction. For `flips` steps t spread log-uniformly over the lags
    1 … T − 2 (lag = T − 1 − t: the query's state reads the action of step T − 2 last), the action at t is changed to
    the next one and the episodes filtered again. → per part (x, h) and per lag bin, the mean of |Δ·u| and of ‖Δ‖ over
    the flips and episodes, both in units of the cue's gap ‖mean(cue 1) − mean(cue 0)‖ along u."""
    steps, n_actions = shared.shape[1], shared.shape[2]
    lags = np.unique(np.geomspace(1, steps - 2, flips).round().astype(int))
    base = jax.device_get(at_query(jnp.asarray(shared)))
    axes = {part: cue_axis(f, cues) for part, f in features.items()}
    units = {part: features[part][cues == 1].mean(0) - features[part][cues == 0].mean(0) for part in features}
    moved = {part: {"along_cue": [], "total": []} for part in features}
    for lag in lags:
        flipped = shared.copy()
        t = steps - 1 - lag
        flipped[:, t] = np.roll(shared[:, t], 1, axis=-1)  # one-hot → the next action's one-hot
        state = jax.device_get(at_query(jnp.asarray(flipped)))
        for part in features:
            gap = axes[part][0]
            delta = np.asarray(state[part], np.float64) - np.asarray(base[part], np.float64)
            moved[part]["along_cue"].append(float(np.abs(delta @ (units[part] / gap)).mean() / gap))
            moved[part]["total"].append(float(np.linalg.norm(delta, axis=-1).mean() / gap))
    bins = [(1, 3), (4, 15), (16, 63), (64, 255), (256, steps - 2)]
    out: dict = {"lags": lags.tolist(), "actions": n_actions}
    for part, effect in moved.items():
        out[part] = {}
        for low, high in bins:
            chosen = (lags >= low) & (lags <= high)
            if chosen.any():
                out[part][f"{low}-{high}"] = {
                    k: float(f"{np.mean(np.asarray(v)[chosen]):.3g}") for k, v in effect.items()
                }
    return out


def loudness(features: np.ndarray, cues: np.ndarray) -> dict:
    """features: (E, F) float64 at the query, cues: (E,) 0/1 → separation, ridge probe and within-cue spread."""
    gap, _, within = cue_axis(features, cues)
    return {
        "cue_raw_separation": round(gap / within, 2) if within > 1e-6 * gap else "inf",
        "cue_probe": probe_accuracy(features, cues),
        "within_cue_spread": float(f"{within:.3g}"),
        "cue_gap": float(f"{gap:.3g}"),
    }


if __name__ == "__main__":
    allocator.configure()
    args = sys.argv[1:]
    print(json.dumps(probe(args[0], int(args[1]) if len(args) > 1 else 400)))
