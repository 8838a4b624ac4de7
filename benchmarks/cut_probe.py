"""Probe a memory_length run's checkpoint: what its reward head predicts where a training window cut the episode.

A window of the replay starts at a random step, so the episode it starts in is cut: its steps are filtered from the
initial state, without the cue the episode showed before the window (`seen_start` False; `model.mask_cut_episodes`).
Loads the run's newest checkpoint (parameters and replay), samples `batches` training batches from the run's own
replay as the update does, filters them with the world model and, at every rewarded step (the answer's ±1), compares
the reward head's prediction r̂ with the reward, separately for the cut episodes and the others: how many there are,
how often sign(r̂) = sign(r), the mean r̂·r and the mean |r̂|; then the same prediction had the other answer been
given (its reward would be −r), the gap between the two towards the right answer, and the actor's probability of
the right answer at the answer step. On the cut steps the cue is not in the state, so a head
that reads the cue has nothing to go on there: anything above chance is the head recalling those episodes from what
else the window shows. Written for docs/notes.md ("Windows cut episodes"):

    python benchmarks/cut_probe.py RUN_DIR [batches] [fresh_env_steps]

With `fresh_env_steps` > 0 the batches come from new episodes instead: the checkpoint's policy first acts for that many
env steps in the run's training envs (sampling, as training collects), into an empty replay of the run's size that
takes the place of the run's own, and the probe reads windows of those episodes alone (docs/notes.md, "Train ratio
128": is the actor as right on new episodes as on the ones it was trained on?). Nothing is trained or saved.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys

import jax
import numpy as np

from r2i import allocator
from r2i.loop import Trainer
from r2i.replay import Replay
from r2i.rundir import load_config
from r2i.runtime import source_commit


def predicted_reward(agent, params, batch, key):
    """The reward head's mean prediction on a replay batch, filtered as in the update: (B, T) float32 with the
    replay's actions, and (B, T) float32 with the action before every rewarded step swapped for the other one (the
    answer not given; each episode ends at its rewarded step, so nothing else changes)."""
    wm = agent.world_model(params)
    _, (_, out, _) = wm.loss(batch, wm.seq.initial(batch["is_first"].shape[0]), key)
    answer = jax.numpy.roll(batch["reward"] != 0, -1, axis=1)[..., None]  # the step whose action is the answer
    swapped = batch | {"action": jax.numpy.where(answer, 1.0 - batch["action"], batch["action"])}
    _, (_, out_swapped, _) = wm.loss(swapped, wm.seq.initial(batch["is_first"].shape[0]), key)
    probs = agent.actor(params).probs(wm.seq.policy_features(out, agent.policy_inputs))[0]  # (B, T, 2)
    right = jax.numpy.where(batch["reward"][:, 1:, None] > 0, batch["action"][:, :-1], 1.0 - batch["action"][:, :-1])
    p_right = jax.numpy.pad(jax.numpy.sum(probs[:, :-1] * right, -1), ((0, 0), (1, 0)))  # at the reward's index
    return wm.reward_mean(out), wm.reward_mean(out_swapped), p_right


def mean3(values: np.ndarray) -> float | None:
    """The mean rounded to 3 decimals; None for no values."""
    return round(float(np.mean(values)), 3) if len(values) else None


def collect_fresh(trainer: Trainer, env_steps: int) -> None:
    """Replace the trainer's replay with one holding only `env_steps` new env steps of its policy (sampled actions)."""
    trainer.replay = Replay(trainer.replay.spec, trainer.config.replay.capacity, trainer.config.env.num_envs,
                            trainer.config.run.batch_length, trainer.config.seed + 1)
    for _ in range(-(-env_steps // trainer.global_envs)):
        trainer._policy_step()
        trainer._collect_step()
    if not trainer.replay.ready(trainer.config.run.batch_size):
        raise SystemExit(f"{env_steps} fresh env steps do not fill a window of {trainer.config.run.batch_length} in "
                         "every env; collect more")


def rewarded_steps(trainer: Trainer, run, replay: Replay, batches: int) -> dict[str, np.ndarray]:
    """The rewarded steps of `batches` windows sampled from `replay` (seeded, so the same windows every call), split
    into the episodes a window saw start ("uncut") and the others ("cut"): per kind an (n, 4) float64 array of the
    reward head's prediction, its prediction with the other answer, the reward and the actor's probability of the right
    answer. `run` is `predicted_reward` jitted for the trainer's agent."""
    agent, rng, parts = trainer.agent, np.random.default_rng(0), {"uncut": [], "cut": []}
    for i in range(batches):
        batch = replay.sample(trainer.config.run.batch_size, rng)
        out = jax.device_get(run(trainer.state.params, agent.shard_batch(batch), jax.random.key(i)))
        pred, other, p_right = map(np.asarray, out)
        rewarded = batch["reward"] != 0
        rewarded[:, 0] = False  # no answer before a window's first step
        for kind, where in (("uncut", rewarded & batch["seen_start"]), ("cut", rewarded & ~batch["seen_start"])):
            parts[kind].append(np.stack([pred[where], other[where], batch["reward"][where], p_right[where]], -1))
    return {kind: np.concatenate(rows).astype(np.float64) for kind, rows in parts.items()}


def probe(logdir: str, batches: int = 64, fresh_env_steps: int = 0) -> dict:
    trainer = Trainer(dataclasses.replace(load_config(logdir), logdir=logdir), quiet=True)
    if not trainer.resumed:
        raise SystemExit(f"{logdir}: needs a checkpointed run")
    checkpoint_step = trainer.counters.env_steps  # collecting fresh episodes counts on
    if fresh_env_steps:
        collect_fresh(trainer, fresh_env_steps)
    run = jax.jit(functools.partial(predicted_reward, trainer.agent))
    parts = rewarded_steps(trainer, run, trainer.replay, batches)
    result = {"logdir": logdir, "commit": source_commit(), "env_steps": checkpoint_step,
              "fresh_env_steps": fresh_env_steps, "batches": batches,
              "batch": [trainer.config.run.batch_size, trainer.config.run.batch_length]}
    total = sum(len(pr) for pr in parts.values())
    for kind, pr in parts.items():
        pred, other, reward, p_right = pr[:, 0], pr[:, 1], pr[:, 2], pr[:, 3]
        result[kind] = {
            "rewarded_steps": len(pr), "share": round(len(pr) / max(1, total), 3),
            "sign_accuracy": mean3(np.sign(pred) == np.sign(reward)),
            "mean_pred_times_reward": mean3(pred * reward), "mean_abs_pred": mean3(np.abs(pred)),
            # With the other answer the reward is −r: a head that reads cue and answer predicts −r there, one that
            # recalls the episode predicts r again; answer_gap > 0 is the actor's advantage towards the right answer.
            "other_answer_pred_times_reward": mean3(other * reward),
            "answer_gap": mean3((pred - other) * np.sign(reward)),
            # The actor at the answer step: its probability of the right answer, and how often it is the likelier one.
            "actor_p_right": mean3(p_right), "actor_right_likelier": mean3(p_right > 0.5),
        }
    return result


if __name__ == "__main__":
    allocator.configure()
    print(json.dumps(probe(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 64,
                           int(sys.argv[3]) if len(sys.argv) > 3 else 0)))
