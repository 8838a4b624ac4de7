"""Does a memory run's reward head use what its features hold? The answer's reward at the end of an episode.

Plays `episodes` episodes of the run's own task (the vector `r2i:memory_length/N` or BSuite `memory_len` with one
context bit) side by side with the run's policy ('sample', as in training) up to the query (the episode's last
action), answers **uniformly at random** there (so every cue meets every answer), and filters each whole episode, its
last observation included, through the world model in one `filter` call, as training does. At the last step, where
the answer's reward is predicted, it reports:

* `head_accuracy`: how often the run's reward head's prediction is on the side of the reward received (right or wrong
  answer; 0.5: the head does not know the XOR of cue and answer), and its mean prediction per (cue, answer) pair;
* `cue_from_head_inputs`, `answer_from_head_inputs`: the cue and the answer read from the head's inputs f by a ridge
  probe (benchmarks/cue_probe.py's `probe_accuracy`: standardised features, fitted on half the episodes, accuracy on
  the other half). The reward is their XOR, which a two-layer head computes from both;
* `refit_accuracy`: the run's reward head trained on alone (`refit_head`: 3,000 full-batch updates) on the first
  100, 200, 400, … episodes (up to half of them), accuracy on those and on the held-out second half: whether these
  inputs teach it the XOR once nothing else moves and the reward examples are not rare, and how that grows with the
  episodes; `refit_standardised` the same on the largest set with every feature z-scored, as the ridge probes see them;
* `fresh_head_accuracy`: the same refits from a **freshly drawn** head of the run's architecture (its layers, units,
  bins and output start), held-out accuracy only: whether the features teach the XOR to a head that has not been
  trained on the run's data, against the run's head carrying what it learned;
* `slow_modes_head` (S3M): a freshly drawn head of the same architecture reading only x's modes with half-lives above
  2T (T the episode's steps; Re and Im; benchmarks/ssm_timescales.py's `half_lives`) and the answer (one-hot), held-out
  accuracy: whether the cue in the slow modes alone is enough for the XOR;
* `cue_share`: the share of f's variance, raw as the head's first layer sees it (the probe standardises every
  feature), along the difference of the two cues' means: how loud the cue is among everything else f carries;
  `cue_raw_separation` the gap between the two cues' means along that direction, in within-cue standard deviations.

Probes that read the cue and the answer while the head's predictions do not depend on their XOR say that the world
model's reward loss has not learned a reward that its inputs hold: not its memory, its reward head fails. Written for
issue 11 (docs/notes.md, "At 512 the reward head does not learn what x holds" and "At 512 the features became ready
first, the reward head followed").

    python benchmarks/reward_probe.py RUN_DIR [episodes=400]   # at least 200
"""

from __future__ import annotations

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
from cue_probe import probe_accuracy
from flax import nnx
from query_probe import filter_to_last, flat_features, start_episodes
from ssm_timescales import half_lives

from r2i import allocator, dists
from r2i.envs import make_env
from r2i.worldmodel import reward_head


def episode_length(task: str, options: dict) -> int:
    """The number of actions in an episode of the task (the last one answers the query)."""
    env = make_env(task, 0, **options)
    env.reset()
    steps = 0
    while True:
        steps += 1
        if env.step(np.zeros(env.act_space.size, np.float32))["is_last"]:
            return steps


def probe(logdir: str, episodes: int = 400) -> dict:
    if episodes < 200:
        raise SystemExit(f"reward_probe needs at least 200 episodes (100 to refit the head on), got {episodes}")
    policy, envs, obs, cues = start_episodes(logdir, episodes, "reward_probe", 20_000)
    agent, params, config = policy.agent, policy.params, policy.config
    task = config.env.id
    n_answers = int(agent.act_space.nvec[0])
    answers = np.random.default_rng(0).integers(n_answers, size=episodes)
    length = episode_length(task, config.env.options)
    vectors, actions, key = [], [], jax.random.key(1)
    carry = agent.initial(episodes)
    for step in range(length):  # act with the policy; at the query, the last action, answer at random
        batch = {"vector": np.stack([o["vector"] for o in obs]), "is_first": np.asarray([o["is_first"] for o in obs])}
        key, sub = jax.random.split(key)
        carry, action = agent.act(params, carry, batch, sub)
        action = np.array(action)  # a writable copy
        if step == length - 1:
            action = np.eye(n_answers, action.shape[1], dtype=action.dtype)[answers]
        vectors.append(batch["vector"])
        actions.append(action)
        obs = [env.step(a) for env, a in zip(envs, action)]
    if not all(o["is_last"] for o in obs):
        raise SystemExit("reward_probe needs episodes of one length")
    vectors.append(np.stack([o["vector"] for o in obs]))  # the last observation, where the reward arrives
    actions.append(np.zeros_like(actions[-1]))  # never read: the filter reads the action before each step
    reward = np.asarray([o["reward"] for o in obs], np.float32)
    vectors, actions = np.stack(vectors, 1), np.stack(actions, 1)  # (E, T + 1)
    is_first = np.zeros(vectors.shape[:2], bool)
    is_first[:, 0] = True
    wm = agent.world_model(params)

    @jax.jit
    def at_reward(vector, action, first, key):
        last = filter_to_last(wm, vector, action, first, key)
        return wm.reward_mean(last), flat_features(wm.seq.head_features(last, wm.head_inputs)), last.get("x")

    predicted, features, modes = jax.device_get(
        at_reward(jnp.asarray(vectors), jnp.asarray(actions), jnp.asarray(is_first), jax.random.key(2))
    )
    middle = (reward.max() + reward.min()) / 2  # between the right answer's reward and the wrong one's
    inputs, lr = np.asarray(features, np.float32), config.optim.model_lr  # what the head reads, for its refits
    features = np.asarray(features, np.float64)  # for the probes
    pairs = {
        f"cue{c}_answer{a}": round(float(predicted[(cues == c) & (answers == a)].mean()), 3)
        for c in range(n_answers)
        for a in range(n_answers)
    }
    sizes = [n for n in (100, 200, 400, 800, 1600) if n <= episodes // 2]
    bins = dists.twohot_bins(wm.bins)

    def fresh(width: int):  # a newly drawn head of the run's architecture for `width` input features
        return reward_head(config.model, width, rngs=nnx.Rngs(3))

    refit = {str(n): refit_head(wm.reward, inputs, reward, middle, lr, n, bins) for n in sizes}
    # the same with every feature z-scored on the training episodes, as the ridge probes see them
    mean, std = inputs[: sizes[-1]].mean(0), inputs[: sizes[-1]].std(0) + 1e-6
    standardised = (inputs - mean) / std
    refit_standardised = {str(sizes[-1]): refit_head(wm.reward, standardised, reward, middle, lr, sizes[-1], bins)}
    fresh_refit = {str(n): refit_head(fresh(inputs.shape[1]), inputs, reward, middle, lr, n, bins)["held_out"]
                   for n in sizes}
    slow = {}
    if modes is not None:  # S3M: x's modes (E, layers, P) complex
        chosen = half_lives(params) > 2 * length
        slow_inputs = np.concatenate(
            [modes[:, chosen].real, modes[:, chosen].imag, np.eye(n_answers, dtype=np.float32)[answers]], -1
        ).astype(np.float32)
        slow = {"slow_modes": int(chosen.sum())} | {
            str(n): refit_head(fresh(slow_inputs.shape[1]), slow_inputs, reward, middle, lr, n, bins)["held_out"]
            for n in sizes
        }
    return {
        "logdir": logdir,
        "head_inputs": wm.head_inputs,
        "episodes": episodes,
        "steps": int(vectors.shape[1]),
        "reward_mean": round(float(reward.mean()), 3),
        "head_accuracy": round(float(np.mean((predicted > middle) == (reward > middle))), 3),
        "cue_from_head_inputs": probe_accuracy(features, cues),
        "answer_from_head_inputs": probe_accuracy(features, answers),
        **cue_loudness(features, cues),
        "head_mean_prediction": pairs,
        "refit_accuracy": refit,
        "refit_standardised": refit_standardised,
        "fresh_head_accuracy": fresh_refit,
        **({"slow_modes_head": slow} if slow else {}),
    }


def refit_head(
    head: nnx.Module,
    features: np.ndarray,
    reward: np.ndarray,
    middle: float,
    lr: float,
    train: int,
    bins: jax.Array,
    updates: int = 3000,
) -> dict:
    """Train a reward head (the run's, or a fresh one; its module is left as it was) alone on the first `train`
    episodes' last steps (features (E, F) float32, reward (E,)): full batches, the two-hot loss over `bins`, Adam at
    the world model's learning rate, `updates` updates. → accuracy (the prediction's side of `middle`) on those
    episodes and on the held-out second half."""
    graph, state = nnx.split(head)
    half = len(features) // 2
    if train > half:
        raise ValueError(f"refit_head: {train} training episodes would overlap the held-out half ({half})")
    train_x, train_r = jnp.asarray(features[:train]), jnp.asarray(reward[:train])
    optimiser = optax.adam(lr)

    @jax.jit
    def update(state, opt_state):
        def loss(st):
            return dists.twohot_nll(nnx.merge(graph, st)(train_x), train_r, bins).mean()

        grads = jax.grad(loss)(state)
        changes, opt_state = optimiser.update(grads, opt_state, state)
        return optax.apply_updates(state, changes), opt_state

    opt_state = optimiser.init(state)
    for _ in range(updates):
        state, opt_state = update(state, opt_state)
    predict = jax.jit(lambda x: dists.twohot_mean(nnx.merge(graph, state)(x), bins))

    def accuracy(x, r):
        return round(float(np.mean((np.asarray(predict(jnp.asarray(x))) > middle) == (r > middle))), 3)

    return {"train": accuracy(features[:train], reward[:train]), "held_out": accuracy(features[half:], reward[half:])}


def cue_axis(features: np.ndarray, cues: np.ndarray) -> tuple[float, np.ndarray, float]:
    """features: (E, F) float64 raw, cues: (E,) 0/1 → (gap, proj, within): the distance between the two cues' mean
    features, every episode's features projected on the unit direction between those means (E,), and the within-cue
    standard deviation along it."""
    u = features[cues == 1].mean(0) - features[cues == 0].mean(0)
    gap = float(np.linalg.norm(u))
    proj = features @ (u / (gap + 1e-12))
    return gap, proj, float(np.sqrt((np.var(proj[cues == 1]) + np.var(proj[cues == 0])) / 2))


def cue_loudness(features: np.ndarray, cues: np.ndarray) -> dict:
    """features: (E, F) float64 raw (no standardisation), cues: (E,) 0/1, along u, the unit difference of the two cues'
    mean features → "cue_share": the share of the features' total variance along u; "cue_raw_separation": d′ of the
    cue along u, the gap between the cue means over the within-cue standard deviation."""
    gap, proj, within = cue_axis(features, cues)
    return {
        "cue_share": round(float(np.var(proj) / (np.var(features, 0).sum() + 1e-12)), 4),
        "cue_raw_separation": round(gap / (within + 1e-12), 2),
    }


if __name__ == "__main__":
    allocator.configure()
    args = sys.argv[1:]
    print(json.dumps(probe(args[0], int(args[1]) if len(args) > 1 else 400)))
