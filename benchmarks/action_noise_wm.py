"""Does the memory steps' action noise keep the world model from learning the cue? A controlled test at one length.

The probes of the masked S3M run that failed memory length 1,024 (docs/notes.md, "Masked S3M at 1,024") found the cue
in its state when every episode was given the same actions, and buried when each had its policy's own near-uniform
memory-step actions. This script takes the RL loop away: a run's config (the failed run's, or any memory_len run's)
trains from scratch on episodes of a scripted behaviour, and the only difference between two invocations is how the
behaviour acts on the memory steps, where the environment ignores the action:

* `--memory-p0 0.5`: uniform random actions (what entropy 1e-2 keeps the actor at);
* `--memory-p0 1.0`: always action 0 (no action noise).

At the answer step (the (N+1)-th action) both answer 0 with probability `--answer-p0` (0.8 by default), so that the
reward depends on the cue to first order (an unbiased answer makes it the XOR of cue and answer; docs/notes.md, "The
actor locks in"). Episodes are collected and replayed as the run trains (its train ratio, windows and masking); the
actor and critic train too but never act. Every `--every` updates the world model is probed on held-out episodes of the
same behaviour, never trained on (uncut rewarded steps, `cut_probe.predicted_reward`): how often the reward head's sign
matches the reward, and its gap towards the right answer when the other answer is swapped in. One JSON line each:

    python benchmarks/action_noise_wm.py RUN_DIR [key=value …] --memory-p0 0.5 [--answer-p0 0.8] [--updates 1500]
        [--every 250] [--seed 0] [--logdir DIR] [--probe-batches 64] [--probe-env-steps 48000]

RUN_DIR is only read (its config.yaml, changed by any key=value given after it). The training writes to a temporary
directory deleted at the end, or with `--logdir DIR` to DIR, checkpointed when `--updates` is reached or at a SIGTERM:
run again with a larger `--updates` and it resumes (parameters, optimiser, replay and counters; its envs start new
episodes, the held-out ones are collected again from the same seed).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import sys
import tempfile

import jax
import numpy as np
from cut_probe import mean3, predicted_reward, rewarded_steps

from r2i import allocator
from r2i import config as cfgmod
from r2i.clocks import Stopwatch
from r2i.errors import ConfigError
from r2i.loop import Trainer
from r2i.metrics import Aggregator
from r2i.replay import Replay
from r2i.rundir import load_config
from r2i.runtime import device_description, source_commit
from r2i.signals import GracefulExit


class Scripted:
    """The behaviour, in the place of the trainer's policy (`trainer._act`): per env, the step index since its episode
    began picks the answer step (index N)."""

    def __init__(self, trainer: Trainer, memory_length: int, memory_p0: float, answer_p0: float, seed: int):
        self.trainer, self.n = trainer, memory_length
        self.memory_p0, self.answer_p0 = memory_p0, answer_p0
        self.rng = np.random.default_rng(seed)
        self.index = np.zeros(trainer.driver.num_envs, np.int64)

    def __call__(self, mode: str = "sample") -> np.ndarray:
        """One-hot actions (E, 2) float32 for the envs' current observations (their is_first (E,) bool)."""
        self.index = np.where(self.trainer.obs["is_first"], 0, self.index + 1)
        p0 = np.where(self.index == self.n, self.answer_p0, self.memory_p0)
        space = self.trainer.driver.act_space
        return np.stack([space.encode(np.array([int(self.rng.random() >= p)])) for p in p0])


def step(trainer: Trainer) -> None:
    """One env step of every env with the trainer's (scripted) actions, stored in its replay."""
    trainer._policy_step()
    trainer._collect_step()


def held_out(trainer: Trainer, behaviour: Scripted, env_steps: int, seed: int) -> Replay:
    """A replay of `env_steps` new env steps of `behaviour`, collected in place of the trainer's own replay and
    behaviour (which, with its counters, are as they were afterwards)."""
    own, cfg, counted = (trainer.replay, trainer._act), trainer.config, dataclasses.replace(trainer.counters)
    trainer.replay = Replay(own[0].spec, cfg.replay.capacity, cfg.env.num_envs, cfg.run.batch_length, seed)
    trainer._act = behaviour
    try:
        for _ in range(-(-env_steps // trainer.global_envs)):
            step(trainer)
        if not trainer.replay.ready(cfg.run.batch_size):
            raise SystemExit(
                f"--probe-env-steps {env_steps} does not fill a window of {cfg.run.batch_length} in "
                "every env; give more"
            )
        return trainer.replay
    finally:
        (trainer.replay, trainer._act), trainer.counters = own, counted


def probe(trainer: Trainer, run, replay: Replay, batches: int) -> dict:
    """The reward head on held-out windows' uncut rewarded steps (`cut_probe.rewarded_steps`)."""
    pred, other, reward, _ = rewarded_steps(trainer, run, replay, batches)["uncut"].T
    return {
        "rewarded_steps": len(reward),
        "sign_accuracy": mean3(np.sign(pred) == np.sign(reward)),
        "answer_gap": mean3((pred - other) * np.sign(reward)),
        "mean_abs_pred": mean3(np.abs(pred)),
    }


def main(args: argparse.Namespace) -> None:
    try:
        base = cfgmod.apply_overrides(load_config(args.run_dir), cfgmod.parse_overrides(args.overrides))
        cfgmod.validate(base)
    except ConfigError as err:
        raise SystemExit(f"action_noise_wm: {err}") from None
    memory_length = int(base.env.options.get("memory_length", 0))
    if not base.env.id.startswith("bsuite:memory_len") or memory_length < 1:
        raise SystemExit(f"{args.run_dir}: not a bsuite memory_len run (env.id {base.env.id})")
    with contextlib.ExitStack() as stack:
        logdir = args.logdir or stack.enter_context(tempfile.TemporaryDirectory(prefix="action_noise_wm-"))
        config = dataclasses.replace(base, logdir=str(logdir), seed=args.seed)
        trainer = Trainer(config, quiet=True)  # resumes a --logdir that holds a checkpoint
        stack.callback(trainer.close)
        # New episodes everywhere: the behaviour counts steps from an episode's start (a resumed run's envs are
        # restored mid-episode).
        trainer.obs = trainer.driver.reset()
        run = jax.jit(functools.partial(predicted_reward, trainer.agent))
        trainer._act = Scripted(trainer, memory_length, args.memory_p0, args.answer_p0, args.seed)
        test_behaviour = Scripted(trainer, memory_length, args.memory_p0, args.answer_p0, args.seed + 1000)
        test = held_out(trainer, test_behaviour, args.probe_env_steps, args.seed + 1000)
        trainer.obs = trainer.driver.reset()  # new episodes: the behaviour counts steps from their starts
        common = {
            "bench": "action_noise_wm",
            "run": args.run_dir,
            "memory_length": memory_length,
            "memory_p0": args.memory_p0,
            "answer_p0": args.answer_p0,
            "seed": args.seed,
            "batch": [config.run.batch_size, config.run.batch_length],
            "train_ratio": config.run.train_ratio,
            "device": device_description(),
            "commit": source_commit(),
            "overrides": args.overrides,
        }
        c = trainer.counters
        while not trainer._training_starts():
            step(trainer)
        trainer._train_metrics = Aggregator("train")  # what run() sets up for _update
        trainer._watch = Stopwatch(c.wall_s)
        with GracefulExit() as stop:  # a SIGTERM ends the update and, with --logdir, checkpoints it
            while c.updates < args.updates and not stop.requested:
                step(trainer)
                for _ in range(trainer.should_train(trainer.global_envs)):
                    trainer._update()
                    if c.updates % args.every == 0:
                        row = {
                            "updates": c.updates,
                            "env_steps": c.env_steps,
                            "wall_s": round(trainer._watch.seconds()),
                        }
                        print(
                            json.dumps({**common, **row, **probe(trainer, run, test, args.probe_batches)}), flush=True
                        )
            if args.logdir:
                trainer._checkpoint()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a memory_len run whose config.yaml is used (only read)")
    parser.add_argument(
        "overrides", nargs="*", help="config changes to the run's, key=value (e.g. model.ssm.dt_min=1e-4)"
    )
    parser.add_argument("--memory-p0", type=float, required=True, help="P(action 0) on the memory steps")
    parser.add_argument("--answer-p0", type=float, default=0.8, help="P(action 0) at the answer step")
    parser.add_argument("--updates", type=int, default=1500, help="train until this many updates")
    parser.add_argument("--every", type=int, default=250, help="updates between probes")
    parser.add_argument("--seed", type=int, default=0, help="seed of the training, the envs and the behaviour")
    parser.add_argument("--probe-batches", type=int, default=64, help="held-out windows per probe")
    parser.add_argument("--logdir", help="keep the training here and resume it (default: a temporary directory)")
    parser.add_argument("--probe-env-steps", type=int, default=48000, help="env steps of held-out episodes")
    allocator.configure()
    main(parser.parse_args(sys.argv[1:]))
