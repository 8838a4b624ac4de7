"""The training loop: act, store, train at the train ratio, and log, evaluate and checkpoint when their clocks say so.

Glossary (the units every counter and config field uses):

* **env step** — one call of one environment's `step`; `run.steps`, `run.prefill`, `run.log_every` and
  `run.eval_every` count env steps summed over all training envs (4 envs stepping once = 4 env steps).
* **policy step** — one call of the agent's policy for all envs at once (= env steps / env.num_envs). With
  `env.options.action_repeat` = k, one env step covers k frames of the underlying environment (Atari: 4, DMC: 2).
* **update** — one call of `Agent.train` on a batch of B sequences of L steps.
* **replayed step** — one of the B·L steps an update trains on; `run.train_ratio` = replayed steps per env step, so
  updates per env step = train_ratio / (B·L).

Each policy step runs, in this order: act (random actions during `run.prefill`), store the step in the replay, step
the envs, count the finished episodes, then the updates the train ratio owes (`clocks.Ratio`, from the prefill on and
once the replay holds a batch), a log line every `run.log_every` env steps and an evaluation round every
`run.eval_every` (`clocks.Every`), and a checkpoint every `run.checkpoint_every` seconds (`clocks.EverySeconds`).
Each log line carries the share of its interval's wall clock each phase took (`time/act`, `time/env`, `time/replay`,
`time/train`, `time/eval`, `time/checkpoint`, `time/other`; `clocks.PhaseTimer`): where a run's time goes, e.g. how
much acting and evaluation cost at a low train ratio.

Resume: the run directory (`r2i.rundir`) holds `config.yaml` and `checkpoints/`. Re-running with the same logdir
restores the agent (parameters, optimiser states, slow critic, return-normaliser state), the replay buffer, counters,
the clocks' state (the train ratio's fractional credit, the next log and evaluation steps), the RNGs, the acting carry
and — for environments that implement `get_state`, as the built-in ones do — the environments themselves, so the
resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from r2i import config as cfgmod
from r2i import distributed as dist
from r2i.agent import Agent, check_batch_divides
from r2i.clocks import Every, EverySeconds, PhaseTimer, Ratio, Stopwatch
from r2i.config import Config
from r2i.console import Progress, postfix
from r2i.envs import VectorDriver, make_specs
from r2i.errors import TrainingDivergedError
from r2i.evaluation import evaluate
from r2i.metrics import METRICS_FILE, Aggregator, MetricsLogger
from r2i.preflight import check_replay_memory, replay_spec, stored_steps
from r2i.replay import Replay, human_bytes
from r2i.replay_disk import make_replay
from r2i.rundir import (
    CHECKPOINTS,
    SNAPSHOTS,
    check_resume_config,
    counter_scores,
    prepare_logdir,
    stop_met,
    write_config,
)
from r2i.runlock import RunLock
from r2i.signals import GracefulExit

OBS_PREFIX = "driver_obs_"  # the envs' current observations, saved beside the replay arrays
# The clocks' state, saved among the checkpoint's counters under the names checkpoints have always used:
# counter name -> (Trainer attribute holding the clock, the clock's state attribute).
CLOCKS = {"train_credit": ("should_train", "credit"), "next_log": ("should_log", "next"),
          "next_eval": ("should_eval", "next")}
# Clocks added since: saved after the progress counters, so that the keys of older checkpoints keep their order.
LATER_CLOCKS = {"next_snapshot": ("should_snapshot", "next")}


@dataclass
class Counters:
    """Progress that a checkpoint restores (with the clocks' state, see `CLOCKS`)."""

    env_steps: int = 0
    policy_steps: int = 0
    updates: int = 0
    episodes: int = 0
    wall_s: float = 0.0  # training wall clock over all sessions
    recent_success: list = field(default_factory=list)
    # `run.stop_metric` of the latest evaluation round (None before one, or for an env that reports none). With
    # `run.stop_at_success` a resumed run whose latest round met it is solved and trains no further: a run stopped
    # between its solving round and its final evaluation used to train on past its solving step.
    last_eval_score: float | None = None
    # The same score of the latest rounds (at most `EVAL_SCORES_KEPT`, newest last), for `run.stop_rounds`.
    eval_scores: list = field(default_factory=list)


EVAL_SCORES_KEPT = 32  # run.stop_rounds is at most this
# The loop's timed phases (`PhaseTimer`): the policy's forward pass, stepping the envs and counting finished episodes
# (with env.parallel, time the envs ran beside the updates is not waited for), adding and sampling replay, updates,
# evaluation rounds and checkpoints.
PHASES = ("act", "env", "replay", "train", "eval", "checkpoint")


class Trainer:
    """Owns the envs, replay, agent state, counters and clocks of one run. `run()` trains until `run.steps`.

    The run directory is locked (`RunLock`) from construction until `close()`: a second trainer on the same logdir
    is refused with the holder's pid and host. If construction fails, a logdir it created is removed again.
    """

    def __init__(self, config: Config, *, force: bool = False, quiet: bool = False):
        self.config = config
        self.logdir = Path(config.logdir)
        self.quiet = quiet or not dist.is_main()
        self.driver = self.logger = self.replay = None
        created = prepare_logdir(self.logdir)
        self._lock = RunLock(self.logdir)
        try:
            if jax.process_index() == 0:  # in a multi-host run the hosts share the directory; the first one locks it
                self._lock.acquire()
            self._build(config, force)
        except BaseException:
            self.close()
            if created is not None:  # everything in it was written by this failed start
                shutil.rmtree(created, ignore_errors=True)
            raise

    def _build(self, config: Config, force: bool) -> None:
        check_resume_config(config, force)
        env, run = config.env, config.run
        check_batch_divides(run.batch_size, len(jax.devices()))  # before any env process is started
        # With several processes (r2i.distributed) each steps its own envs into its own replay shard; counters count
        # the env steps of all of them.
        self.global_envs = env.num_envs * dist.process_count()
        self.driver = VectorDriver(make_specs(env.id, env.num_envs, dist.env_seed(config.seed, env.num_envs),
                                              **env.options), env.parallel)
        spec = replay_spec(self.driver)
        check_replay_memory(spec, config)
        self.agent = Agent.from_config(config, self.driver.obs_space, self.driver.act_space)
        self.replay = make_replay(dataclasses.replace(config, seed=dist.local_seed(config.seed)), spec, env.num_envs,
                                  dist.local_dir(self.logdir))
        self.checkpointer = dist.ProcessCheckpointer(self.logdir / CHECKPOINTS, keep=2)
        self.snapshots = dist.ProcessCheckpointer(self.logdir / SNAPSHOTS, keep=None) if run.snapshot_every else None
        self.counters = Counters()
        self.should_train = Ratio(run.train_ratio, run.batch_size * run.batch_length)
        self.should_log = Every(run.log_every)
        self.should_eval = Every(run.eval_every)
        self.should_snapshot = Every(run.snapshot_every)
        self.rng = np.random.default_rng(dist.local_seed(config.seed))  # prefill actions
        self.key = jax.random.key(config.seed)
        self.state = None
        self._said_no_stop_metric = False
        self._timer = PhaseTimer(PHASES)  # restarted by run(); here so that a probe may step the loop's parts alone
        self.carry = None
        self.obs = None
        self.episodes = Aggregator("episode")  # its running per-env returns are part of a checkpoint
        meta = self._restore()
        self.resumed = meta is not None
        # A resumed run's logs continue from its checkpoint: what was logged after it (by a killed process, or before
        # a resume from an older checkpoint) is rolled back, so no step is logged twice.
        # A fresh start drops the logs of an earlier attempt that died before its first checkpoint.
        rollback = self.counters.env_steps if self.resumed else -1 if (self.logdir / METRICS_FILE).exists() else None
        if dist.is_main():
            self.logger = MetricsLogger(self.logdir, rollback_to=rollback,
                                        rollback_bytes=(meta or {}).get("metrics_bytes"))
            write_config(config)  # only once the run could be built (and restored)
        else:
            self.logger = dist.NullLogger()

    # -- keys and state --------------------------------------------------------------------------------------------

    def _next_key(self) -> jax.Array:
        self.key, key = jax.random.split(self.key)
        return key

    def _counters_state(self) -> dict:
        """The checkpoint's counters: the progress counters and the clocks' state, one flat JSON dict."""
        progress = dataclasses.asdict(self.counters)
        clocks = {name: getattr(getattr(self, clock), attribute) for name, (clock, attribute) in CLOCKS.items()}
        later = {name: getattr(getattr(self, clock), attribute) for name, (clock, attribute) in LATER_CLOCKS.items()}
        counts = {key: progress.pop(key) for key in ("env_steps", "policy_steps", "updates", "episodes")}
        # The key order of checkpoints written before the clocks existed, then the clocks added since.
        return {**counts, **clocks, **progress, **later}

    def _load_counters(self, state: dict) -> None:
        state = dict(state)
        if "next_snapshot" not in state:  # written before snapshots existed: the first comes with the next round
            self.should_snapshot.next = state.get("next_eval", 0)
        for name, (clock, attribute) in {**CLOCKS, **LATER_CLOCKS}.items():
            if name in state:
                setattr(getattr(self, clock), attribute, state.pop(name))
        self.counters = Counters(**state)

    def _restore(self) -> dict | None:
        """Restore the newest intact checkpoint; returns its meta, or None (and initialises) when there is none."""
        if self.checkpointer.latest() is None:
            self.state = self.agent.init(self._next_key())
            self.carry = self.agent.initial(self.driver.num_envs)
            self.obs = self.driver.reset()
            return None
        target = {"agent": self.agent.abstract_state(), "carry": self.agent.initial(self.driver.num_envs),
                  "key": jax.random.key_data(self.key)}
        _, restored, replay, meta = self.checkpointer.restore_intact(
            target, mmap_replay=True, warn=lambda line: print(line, file=sys.stderr, flush=True))
        self.state = self.agent.replicate(restored["agent"])
        self.carry = restored["carry"]
        self.key = jax.random.wrap_key_data(restored["key"])
        obs = {k[len(OBS_PREFIX):]: np.array(v) for k, v in replay.items() if k.startswith(OBS_PREFIX)}
        self.replay.load_state_dict({k: v for k, v in replay.items() if not k.startswith(OBS_PREFIX)})
        self._load_counters(meta["counters"])
        self.rng.bit_generator.state = meta["rng"]
        driver_state = meta.get("driver")
        if driver_state is not None and obs:
            self.driver.set_state(driver_state)
            self.obs = obs
            self.episodes.load_running_state(meta.get("episodes", {}))
        else:
            # Envs that cannot be checkpointed start new episodes, with seeds that depend on the step reached (the
            # construction seeds would replay the episodes the run started with); the carry restarts with them.
            env = self.config.env
            seed = int(np.random.SeedSequence([self.config.seed, self.counters.env_steps]).generate_state(1)[0])
            self.driver.close()
            self.driver = VectorDriver(make_specs(env.id, env.num_envs, dist.env_seed(seed, env.num_envs),
                                                  **env.options), env.parallel)
            self.obs = self.driver.reset()
            self.carry = self.agent.initial(self.driver.num_envs)
        return meta

    def save(self) -> Path:
        replay = self.replay.state_dict()
        replay.update({f"{OBS_PREFIX}{k}": np.asarray(v) for k, v in self.obs.items()})
        meta = {
            "counters": self._counters_state(),
            "rng": self.rng.bit_generator.state,
            "driver": self.driver.get_state(),
            "episodes": self.episodes.running_state(),
            "config": cfgmod.to_dict(self.config),
            "metrics_bytes": self.logger.tell(),
        }
        state = {"agent": self.state, "carry": self.carry, "key": jax.random.key_data(self.key)}
        return self.checkpointer.save(self.counters.env_steps, state, replay, meta)

    def snapshot(self) -> Path:
        """Keep the agent as it is now (parameters, optimiser state, acting carry and key; no replay) in
        <logdir>/snapshots/ckpt_<env step>, which no checkpoint prunes; `r2i.load(logdir, step)` reads it."""
        state = {"agent": self.state, "carry": self.carry, "key": jax.random.key_data(self.key)}
        meta = {"counters": self._counters_state(), "config": cfgmod.to_dict(self.config)}
        return self.snapshots.save(self.counters.env_steps, state, None, meta)

    # -- the loop --------------------------------------------------------------------------------------------------

    def summary(self) -> str:
        run = self.config.run
        per_update = run.batch_size * run.batch_length
        params = sum(self.agent.num_params(self.state).values())
        devices = jax.devices()
        capacity = self.config.replay.capacity
        held = stored_steps(self.config)  # what this run will store (preflight checks the same figure)
        stored = f"{held:,} steps" if held == capacity else f"{held:,} of {capacity:,} steps (run.steps)"
        return (
            f"r2i: {self.config.env.id} × {self.config.env.num_envs} envs | {self.config.model.sequence} "
            f"{params / 1e6:.2f}M params | {run.train_ratio / per_update:.4g} updates/env step "
            f"(train ratio {run.train_ratio:g}, batch {run.batch_size}×{run.batch_length}) | "
            f"replay {stored} ≈ {human_bytes(Replay.estimate_bytes(self.replay.spec, held))} "
            f"{'on disk' if self.config.replay.backend == 'disk' else 'RAM'} | "
            f"{len(devices)} × {devices[0].platform} | logdir {self.logdir}"
        )

    def run(self) -> dict:
        """Train until `run.steps` env steps, a SIGINT/SIGTERM (checkpointed, `stopped_early`) or, with
        `run.stop_at_success`, an evaluation round that reaches it (`solved`); returns the last logged metrics."""
        cfg, c = self.config.run, self.counters
        if not self.quiet:
            print(self.summary(), flush=True)
            if self.resumed:
                print(f"r2i: resumed at env step {c.env_steps:,} ({c.updates:,} updates)")
                if self.solved():
                    rounds = f" in its last {cfg.stop_rounds} rounds" if cfg.stop_rounds > 1 else ""
                    print(f"r2i: solved before the stop ({cfg.stop_metric} ≥ run.stop_at_success="
                          f"{cfg.stop_at_success:g}{rounds}): no more training")
        self._train_metrics = Aggregator("train")
        should_save = EverySeconds(cfg.checkpoint_every)
        self._watch = Stopwatch(c.wall_s)
        self._timer = PhaseTimer(PHASES)
        self._rate = (c.env_steps, c.updates, time.monotonic())  # where the next log line's fps are counted from
        # A live progress bar on a terminal; a plain line per log interval when the output goes to a file.
        interactive = sys.stderr.isatty() and not self.quiet
        bar = Progress(cfg.steps, c, interactive)
        on_log: list[Callable[[dict], None]] = [bar.postfix]
        if not interactive and not self.quiet:
            on_log.append(lambda logged: print(f"r2i: step {c.env_steps:,}/{cfg.steps:,} {postfix(logged)}",
                                               flush=True))
        logged = None
        bar.compiling("policy")  # the first action of a session compiles the policy
        with GracefulExit() as stop:
            while c.env_steps < cfg.steps and not self.solved() and not dist.any_process(stop.requested):
                self._policy_step()
                # The envs step (in their worker processes, with env.parallel) while the updates run: the updates
                # read only the replay, which already holds this step's observation and action.
                if self._training_starts():
                    if c.updates == 0:
                        bar.compiling()  # the first update compiles for seconds to minutes: say so instead of freezing
                    for _ in range(self.should_train(self.global_envs)):
                        self._update()
                self._collect_step()
                bar.update(c)
                if self.should_log(c.env_steps):
                    c.wall_s = self._watch.seconds()
                    logged = self._log()
                    for callback in on_log:
                        callback(logged)
                if self.should_eval(c.env_steps) and c.env_steps >= cfg.prefill:
                    with self._timer("eval"):
                        evaluated = self.eval_round(cfg.eval_episodes)
                    evaluated = self.logger.write(c.env_steps, evaluated)
                    if cfg.stop_metric in evaluated:
                        score = float(evaluated[cfg.stop_metric])
                        c.eval_scores = (counter_scores(vars(c)) + [score])[-EVAL_SCORES_KEPT:]
                        c.last_eval_score = score
                    if cfg.stop_at_success and self._reports_stop_metric(evaluated) and self.solved():
                        break
                if self.should_snapshot(c.env_steps):  # after the round: a snapshot holds the policy it evaluated
                    with self._timer("checkpoint"):
                        self.snapshot()
                if dist.any_process(should_save.due()):
                    with self._timer("checkpoint"):
                        self._checkpoint()
                    should_save.restart()
            self._checkpoint()
        bar.close()
        if logged is not None and self.logger.last_step == c.env_steps:
            result = dict(logged)  # nothing happened since the last log line: do not log the same step twice
        else:
            result = self._log()
        result["stopped_early"] = dist.any_process(stop.requested)
        result["signal"] = stop.signum
        result["solved"] = self.solved()
        if result["solved"]:  # the score that met the stop rule: a later, stricter or zero rule trains on from it
            result["solved_score"] = float(min(self._stop_scores()[-self.config.run.stop_rounds:]))
            result["solved_rounds"] = self.config.run.stop_rounds
        return result

    def solved(self) -> bool:
        """Whether the latest evaluation round met `run.stop_at_success` (kept in the counters, so that it holds
        across a stop and resume: a solved run resumes to its final evaluation, not to more training)."""
        return stop_met(self.config.run, self._stop_scores())

    def _stop_scores(self) -> list[float]:
        """`run.stop_metric` of the latest evaluation rounds, newest last (a checkpoint from before `eval_scores`
        existed has only its last round's)."""
        return counter_scores(vars(self.counters))

    def _reports_stop_metric(self, evaluated: dict) -> bool:
        """Whether an evaluation round measured `run.stop_metric` (by default eval/success, the env's `log_success` at
        episode ends), which `run.stop_at_success` reads. An env without it would train to `run.steps` with the stop
        silently never taken, so that is said once per session, on stderr."""
        run = self.config.run
        if run.stop_metric in evaluated:
            return True
        if not self._said_no_stop_metric:
            self._said_no_stop_metric = True
            hint = ("envs report success as a `log_success` value, Gymnasium ones as a numeric info['success']; "
                    "run.stop_metric=eval/return stops on the return" if run.stop_metric == "eval/success" else
                    f"it measured {', '.join(sorted(evaluated))}")
            print(f"r2i: run.stop_at_success={run.stop_at_success:g} has no effect: {self.config.env.id} "
                  f"reports no {run.stop_metric} in its evaluation rounds ({hint}), so the run trains to "
                  f"run.steps={run.steps:,}", file=sys.stderr, flush=True)
        return False

    def _policy_step(self) -> None:
        """Act in every env, store the step in the replay and send the actions to the envs (`_collect_step` receives
        their next observations)."""
        with self._timer("act"):
            action = self._act()
        with self._timer("replay"):
            self.replay.add({**{k: v for k, v in self.obs.items() if k in self.replay.spec}, "action": action})
        with self._timer("env"):
            self.driver.step_async(action)
        self.counters.env_steps += self.global_envs
        self.counters.policy_steps += 1

    def _collect_step(self) -> None:
        """Receive the envs' next observations and count the episodes that ended."""
        with self._timer("env"):
            self.obs = self.driver.step_wait()
            self._record_episodes(self.obs)

    def _act(self, mode: str = "sample") -> np.ndarray:
        self.carry, action = self.agent.act(self.state.params, self.carry, self.obs, dist.local_key(self._next_key()),
                                            mode)
        action = np.asarray(action)
        if self.counters.env_steps < self.config.run.prefill:
            action = np.stack([self.driver.act_space.sample(self.rng) for _ in range(self.driver.num_envs)])
            self.carry = {**self.carry, "a": jnp.asarray(action)}
        return action

    def _record_episodes(self, obs: dict) -> None:
        self.episodes.add_steps(obs)
        last = obs["is_last"]
        if last.any():
            self.counters.episodes += int(last.sum())
            if "log_success" in obs:
                window = self.config.run.success_window
                self.counters.recent_success = (
                    self.counters.recent_success + [float(s) for s in obs["log_success"][last]]
                )[-window:]

    def _training_starts(self) -> bool:
        run = self.config.run
        return self.counters.env_steps >= run.prefill and self.replay.ready(run.batch_size)

    def _update(self) -> None:
        """One update on a batch sampled from the replay; stops the run before a non-finite one is acted on."""
        run = self.config.run
        with self._timer("replay"):
            batch = self.agent.shard_batch(self.replay.sample(dist.local_batch(run.batch_size)))
        with self._timer("train"):  # the finiteness check waits for the update, so its time is the update's
            self.state, out = self.agent.train(self.state, batch, self._next_key())
            finite = bool(out["train/finite"])
        if not finite:  # stop before anything non-finite is acted on or checkpointed
            last = self.checkpointer.latest()
            kept = (f"the last good checkpoint (env step {last:,}) in {self.logdir}/checkpoints is kept"
                    if last is not None else "no checkpoint had been written yet")
            raise TrainingDivergedError(
                f"update {self.counters.updates + 1} produced non-finite losses or gradients; {kept} — lower the "
                "learning rates (optim.*_lr) or check the environment's rewards and observations, then "
                f"{'resume' if last is not None else 'start again'}"
            )
        self._train_metrics.add(out)
        self.counters.updates += 1

    def _log(self) -> dict:
        """Write one metrics record (the interval's update and episode means, rates and progress); returns it."""
        c = self.counters
        steps, updates, since = self._rate
        now = time.monotonic()
        elapsed = max(now - since, 1e-9)
        scalars = {
            **self._train_metrics.result(),
            **self.episodes.result(),
            "fps/env_steps_per_s": (c.env_steps - steps) / elapsed,
            "fps/updates_per_s": (c.updates - updates) / elapsed,
            "progress/updates": c.updates,
            "progress/episodes": c.episodes,
            "progress/replay_steps": len(self.replay),
            "progress/wall_s": c.wall_s,
            **self._timer.shares(),
        }
        if c.recent_success:
            scalars["episode/success_recent"] = float(np.mean(c.recent_success))
        self._rate = (c.env_steps, c.updates, now)
        return self.logger.write(c.env_steps, dist.aggregate(scalars))

    def _checkpoint(self) -> None:
        self.counters.wall_s = self._watch.seconds()
        self.save()

    # -- evaluation ------------------------------------------------------------------------------------------------

    def evaluate(self, episodes: int, mode: str | None = None) -> dict:
        """Run `episodes` full episodes in separate evaluation envs, acting in `mode` (default run.eval_mode); returns
        eval/return, eval/length, eval/success. For image envs (with run.eval_video) a round in run.eval_mode also logs
        its episodes and the open-loop prediction to TensorBoard."""
        mode = mode or self.config.run.eval_mode
        videos = mode == self.config.run.eval_mode and self.config.run.eval_video and any(
            s.is_image for s in self.driver.obs_space.values())
        frames = [] if videos else None
        key = self._next_key()  # taken on every process: the key streams stay the same
        if not dist.is_main():  # evaluation runs on process 0; the others get its result
            return dist.broadcast_json(None)
        out = evaluate(self.agent, self.state.params, self.config, episodes, mode, key, frames=frames)
        if videos:
            from r2i.video import log_eval_videos

            log_eval_videos(self.logger, self.counters.env_steps, frames, self.agent, self.state.params, self.replay,
                            self.config.seed)
        return dist.broadcast_json(out)

    def eval_round(self, episodes: int) -> dict:
        """Evaluation in run.eval_mode; with run.eval_sampled also the sampled policy's, as eval/<key>_sampled (the
        official R2I agent samples when it evaluates, and the paper's curves are of sampled training episodes)."""
        out = self.evaluate(episodes)
        if self.config.run.eval_sampled and self.config.run.eval_mode != "sample":
            out.update({f"{k}_sampled": v for k, v in self.evaluate(episodes, "sample").items()})
        return out

    def close(self) -> None:
        if self.driver is not None:
            self.driver.close()
        if self.logger is not None:
            self.logger.close()
        if self.replay is not None:
            self.replay.close()
        self._lock.release()
