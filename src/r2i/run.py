"""The training loop: prefill, train ratio, evaluation, logging, checkpoint and resume.

Glossary (the units every counter and config field uses):

* **env step** — one call of one environment's `step`; `run.steps`, `run.prefill`, `run.log_every` and
  `run.eval_every` count env steps summed over all training envs (4 envs stepping once = 4 env steps).
* **policy step** — one call of the agent's policy for all envs at once (= env steps / env.num_envs). With
  `env.options.action_repeat` = k, one env step covers k frames of the underlying environment (Atari: 4, DMC: 2).
* **update** — one call of `Agent.train` on a batch of B sequences of L steps.
* **replayed step** — one of the B·L steps an update trains on; `run.train_ratio` = replayed steps per env step, so
  updates per env step = train_ratio / (B·L).

Resume: the run directory holds `config.yaml` and `checkpoints/`. Re-running with the same logdir restores the
agent (parameters, optimiser states, slow critic, return-normaliser state), the replay buffer, counters, the
train-ratio accumulator, the RNGs, the acting carry and — for environments that implement `get_state`, as the
built-in ones do — the environments themselves, so the resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import tqdm
import yaml

from r2i import config as cfgmod
from r2i import distributed as dist
from r2i.agent import Agent, check_batch_divides
from r2i.checkpoint import Checkpointer
from r2i.config import Config
from r2i.envs import VectorDriver, make_specs
from r2i.errors import ConfigError, EnvError, TrainingDivergedError
from r2i.metrics import METRICS_FILE, Aggregator, MetricsLogger
from r2i.replay import Replay, human_bytes
from r2i.replay_disk import make_replay, replay_directory
from r2i.runlock import RunLock
from r2i.signals import GracefulExit

CONFIG_FILE = "config.yaml"
RESULT_FILE = "result.json"
EVAL_SEED_OFFSET = 1_000_003  # evaluation envs never share seeds with training envs
OBS_PREFIX = "driver_obs_"  # the envs' current observations, saved beside the replay arrays


def replay_spec(driver: VectorDriver) -> dict:
    """(shape, dtype) of every stored key: observations, the action taken at them, reward and flags."""
    spec = {key: (space.shape, space.dtype) for key, space in driver.obs_space.items()}
    spec["action"] = ((driver.act_space.size,), np.float32)
    spec["reward"] = ((), np.float32)
    for flag in ("is_first", "is_last", "is_terminal"):
        spec[flag] = ((), bool)
    return spec


@dataclass
class Counters:
    """Progress that a checkpoint restores."""

    env_steps: int = 0
    policy_steps: int = 0
    updates: int = 0
    episodes: int = 0
    train_credit: float = 0.0  # fractional updates owed by the train ratio
    next_log: int = 0
    next_eval: int = 0
    wall_s: float = 0.0  # training wall clock over all sessions
    recent_success: list = field(default_factory=list)


def check_resume_config(config: Config, force: bool = False) -> None:
    """Refuse to resume a run (a logdir with a checkpoint) with a different config, unless `force`."""
    logdir = Path(config.logdir)
    saved_path = logdir / CONFIG_FILE
    if not saved_path.exists() or Checkpointer(logdir / "checkpoints").latest() is None:
        return  # nothing to resume: a config.yaml left by a run that never checkpointed is simply replaced
    saved = load_config(logdir)
    differing = cfgmod.diff(saved, config)
    if differing and not force:
        flat_saved, flat_new = cfgmod.flatten(cfgmod.to_dict(saved)), cfgmod.flatten(cfgmod.to_dict(config))
        lines = ", ".join(f"{k}: {flat_saved[k]!r} → {flat_new[k]!r}" for k in differing[:8])
        raise ConfigError(
            f"{logdir} holds a run with a different config ({lines}); resume with the same settings (or only "
            "--logdir), pass --force to continue it with the new ones, or choose another --logdir"
        )


def write_config(config: Config) -> None:
    path = Path(config.logdir) / CONFIG_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(cfgmod.dump_yaml(config))
    tmp.replace(path)


def prepare_logdir(logdir: Path) -> Path | None:
    """Create the run directory; returns the topmost directory this call created (None if it existed), so that a
    failed start can remove it. A logdir that is a file, under a file, or not readable and writable is a ConfigError."""
    if logdir.exists() and not logdir.is_dir():
        raise ConfigError(f"--logdir {logdir} is a file, not a directory; choose a directory path")
    created = None
    for parent in [logdir, *logdir.parents]:
        if parent.exists():
            break
        created = parent
    try:
        logdir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(f"cannot create --logdir {logdir}: a part of that path is a file; choose another path")\
            from None
    except OSError as error:
        raise ConfigError(f"cannot create --logdir {logdir}: {error.strerror}; choose a writable directory") from None
    if not os.access(logdir, os.R_OK | os.W_OK | os.X_OK):
        raise ConfigError(f"--logdir {logdir} is not readable and writable by this user; fix its permissions "
                          "(chmod u+rwx) or choose another directory")
    return created


def available_ram() -> int | None:
    """Bytes of RAM available to a new allocation (Linux MemAvailable), None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_replay_memory(spec: dict, config: Config) -> None:
    """Refuse a replay that would not fit into the RAM available now (it fills up over the run, then fails late), or,
    with `replay.backend=disk`, onto the free disk space of its directory."""
    need = Replay.estimate_bytes(spec, config.replay.capacity, config.env.num_envs)
    if config.replay.backend == "disk":
        directory = replay_directory(config, config.logdir)
        target = directory
        while not target.exists() and target != target.parent:
            target = target.parent
        free_disk = shutil.disk_usage(target).free
        # A resumed run's chunk files are sparse and already count as used space: only their growth is needed.
        used = sum(f.stat().st_blocks * 512 for f in directory.rglob("*") if f.is_file()) if directory.exists() else 0
        if need > free_disk + used:
            raise ConfigError(
                f"replay.capacity={config.replay.capacity:,} steps needs ≈ {human_bytes(need)} of disk under {target} "
                f"(replay.backend=disk), but only {human_bytes(free_disk)} is free; lower replay.capacity or set "
                "replay.directory to a larger disk"
            )
        return
    free = available_ram()
    if free is not None and need > free:
        per_step = max(1, need // max(1, config.replay.capacity))
        fits = int(0.8 * free // per_step)
        raise ConfigError(
            f"replay.capacity={config.replay.capacity:,} steps needs ≈ {human_bytes(need)} of RAM when full, but "
            f"only {human_bytes(free)} is available; lower replay.capacity (≈ {fits:,} steps fit)"
        )


class Trainer:
    """Owns the envs, replay, agent state and counters of one run. `run()` trains until `run.steps`.

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
        env = config.env
        check_batch_divides(config.run.batch_size, len(jax.devices()))  # before any env process is started
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
        self.checkpointer = dist.ProcessCheckpointer(self.logdir / "checkpoints", keep=2)
        self.counters = Counters()
        self.rng = np.random.default_rng(dist.local_seed(config.seed))  # prefill actions
        self.key = jax.random.key(config.seed)
        self.state = None
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
        self.counters = Counters(**meta["counters"])
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
            "counters": self.counters.__dict__,
            "rng": self.rng.bit_generator.state,
            "driver": self.driver.get_state(),
            "episodes": self.episodes.running_state(),
            "config": cfgmod.to_dict(self.config),
            "metrics_bytes": self.logger.tell(),
        }
        state = {"agent": self.state, "carry": self.carry, "key": jax.random.key_data(self.key)}
        return self.checkpointer.save(self.counters.env_steps, state, replay, meta)

    # -- the loop --------------------------------------------------------------------------------------------------

    def summary(self) -> str:
        run = self.config.run
        per_update = run.batch_size * run.batch_length
        params = sum(self.agent.num_params(self.state).values())
        devices = jax.devices()
        return (
            f"r2i: {self.config.env.id} × {self.config.env.num_envs} envs | {self.config.model.sequence} "
            f"{params / 1e6:.2f}M params | {run.train_ratio / per_update:.4g} updates/env step "
            f"(train ratio {run.train_ratio:g}, batch {run.batch_size}×{run.batch_length}) | "
            f"replay {self.config.replay.capacity:,} steps ≈ "
            f"{human_bytes(Replay.estimate_bytes(self.replay.spec, self.config.replay.capacity))} "
            f"{'on disk' if self.config.replay.backend == 'disk' else 'RAM'} | "
            f"{len(devices)} × {devices[0].platform} | logdir {self.logdir}"
        )

    def _act(self, mode: str = "sample") -> np.ndarray:
        self.carry, action = self.agent.act(self.state.params, self.carry, self.obs, dist.local_key(self._next_key()),
                                            mode)
        action = np.asarray(action)
        if self.counters.env_steps < self.config.run.prefill:
            action = np.stack([self.driver.act_space.sample(self.rng) for _ in range(self.driver.num_envs)])
            self.carry = {**self.carry, "a": jnp.asarray(action)}
        return action

    def _train_updates(self, metrics: Aggregator) -> None:
        run = self.config.run
        if self.counters.env_steps < run.prefill or not self.replay.ready(run.batch_size):
            return
        self.counters.train_credit += self.global_envs * run.train_ratio / (run.batch_size * run.batch_length)
        while self.counters.train_credit >= 1.0:
            batch = self.agent.shard_batch(self.replay.sample(dist.local_batch(run.batch_size)))
            self.state, out = self.agent.train(self.state, batch, self._next_key())
            if not bool(out["train/finite"]):  # stop before anything non-finite is acted on or checkpointed
                last = self.checkpointer.latest()
                kept = (f"the last good checkpoint (env step {last:,}) in {self.logdir}/checkpoints is kept"
                        if last is not None else "no checkpoint had been written yet")
                raise TrainingDivergedError(
                    f"update {self.counters.updates + 1} produced non-finite losses or gradients; {kept} — lower the "
                    "learning rates (optim.*_lr) or check the environment's rewards and observations, then "
                    f"{'resume' if last is not None else 'start again'}"
                )
            metrics.add(out)
            self.counters.train_credit -= 1.0
            self.counters.updates += 1

    def _record_episodes(self, obs: dict, episodes: Aggregator) -> None:
        episodes.add_steps(obs)
        last = obs["is_last"]
        if last.any():
            self.counters.episodes += int(last.sum())
            if "log_success" in obs:
                window = self.config.run.success_window
                self.counters.recent_success = (
                    self.counters.recent_success + [float(s) for s in obs["log_success"][last]]
                )[-window:]

    def run(self) -> dict:
        cfg = self.config.run
        if not self.quiet:
            print(self.summary(), flush=True)
            if self.resumed:
                print(f"r2i: resumed at env step {self.counters.env_steps:,} ({self.counters.updates:,} updates)")
        train_metrics, episodes = Aggregator("train"), self.episodes
        last_save = time.monotonic()
        session_start = time.monotonic() - self.counters.wall_s
        # A live progress bar on a terminal; a plain line per log interval when the output goes to a file.
        interactive = sys.stderr.isatty() and not self.quiet
        bar = _Progress(cfg.steps, self.counters, interactive)
        rate = {"steps": self.counters.env_steps, "updates": self.counters.updates, "time": time.monotonic()}
        solved = False
        logged = None
        bar.compiling("policy")  # the first action of a session compiles the policy
        with GracefulExit() as stop:
            while self.counters.env_steps < cfg.steps and not dist.any_process(stop.requested):
                action = self._act()
                self.replay.add({**{k: v for k, v in self.obs.items() if k in self.replay.spec}, "action": action})
                self.obs = self.driver.step(action)
                self.counters.env_steps += self.global_envs
                self.counters.policy_steps += 1
                self._record_episodes(self.obs, episodes)
                if self.counters.updates == 0 and self._training_starts():
                    bar.compiling()  # the first update compiles for seconds to minutes: say so instead of freezing
                self._train_updates(train_metrics)
                bar.update(self.counters)
                if self.counters.env_steps >= self.counters.next_log:
                    self.counters.next_log = self.counters.env_steps + cfg.log_every
                    self.counters.wall_s = time.monotonic() - session_start
                    logged = self._log(train_metrics, episodes, rate)
                    bar.postfix(logged)
                    if not interactive and not self.quiet:
                        print(f"r2i: step {self.counters.env_steps:,}/{cfg.steps:,} {_postfix(logged)}", flush=True)
                if cfg.eval_every and self.counters.env_steps >= self.counters.next_eval:
                    self.counters.next_eval = self.counters.env_steps + cfg.eval_every
                    if self.counters.env_steps >= cfg.prefill:
                        evaluated = self.logger.write(self.counters.env_steps, self.eval_round(cfg.eval_episodes))
                        if cfg.stop_at_success and evaluated.get("eval/success", 0.0) >= cfg.stop_at_success:
                            solved = True
                            break
                if dist.any_process(time.monotonic() - last_save >= cfg.checkpoint_every):
                    self.counters.wall_s = time.monotonic() - session_start
                    self.save()
                    last_save = time.monotonic()
            self.counters.wall_s = time.monotonic() - session_start
            self.save()
        bar.close()
        if logged is not None and self.logger.last_step == self.counters.env_steps:
            result = dict(logged)  # nothing happened since the last log line: do not log the same step twice
        else:
            result = self._log(train_metrics, episodes, rate)
        result["stopped_early"] = dist.any_process(stop.requested)
        result["signal"] = stop.signum
        result["solved"] = solved
        return result

    def _training_starts(self) -> bool:
        run = self.config.run
        return self.counters.env_steps >= run.prefill and self.replay.ready(run.batch_size)

    def _log(self, train_metrics: Aggregator, episodes: Aggregator, rate: dict) -> dict:
        now = time.monotonic()
        elapsed = max(now - rate["time"], 1e-9)
        c = self.counters
        scalars = {
            **train_metrics.result(),
            **episodes.result(),
            "fps/env_steps_per_s": (c.env_steps - rate["steps"]) / elapsed,
            "fps/updates_per_s": (c.updates - rate["updates"]) / elapsed,
            "progress/updates": c.updates,
            "progress/episodes": c.episodes,
            "progress/replay_steps": len(self.replay),
            "progress/wall_s": c.wall_s,
        }
        if c.recent_success:
            scalars["episode/success_recent"] = float(np.mean(c.recent_success))
        rate.update(steps=c.env_steps, updates=c.updates, time=now)
        return self.logger.write(c.env_steps, dist.aggregate(scalars))

    # -- evaluation ------------------------------------------------------------------------------------------------

    def evaluate(self, episodes: int, mode: str = "greedy") -> dict:
        """Run `episodes` full episodes in separate evaluation envs; returns eval/return, eval/length, eval/success.
        For image envs (with run.eval_video) a greedy round also logs its episodes and the open-loop prediction to
        TensorBoard."""
        videos = mode == "greedy" and self.config.run.eval_video and any(
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
        """Greedy evaluation; with run.eval_sampled also the sampled policy's, as eval/<key>_sampled (the official
        R2I agent samples when it evaluates, and the paper's curves are of sampled training episodes)."""
        out = self.evaluate(episodes)
        if self.config.run.eval_sampled:
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


def evaluate(agent: Agent, params, config: Config, episodes: int, mode: str, key,
             frames: list | None = None) -> dict:
    """Mean return, length and every `log_*` value at episode end (e.g. eval/success) over `episodes` episodes run in
    fresh evaluation envs (seeds disjoint from the training envs'). With a `frames` list, the first image observation
    of every env is appended to it at every policy step, `(envs, H, W, C)`, black for envs whose episodes are done."""
    env = config.env
    num = max(1, min(env.eval_envs, episodes))
    specs = make_specs(env.id, num, config.seed + EVAL_SEED_OFFSET, **env.options)
    finished: list[dict] = []
    with VectorDriver(specs, env.parallel) as driver:
        image = next((k for k in sorted(driver.obs_space) if driver.obs_space[k].is_image), None)
        if frames is not None and image is None:
            raise EnvError(f"{env.id} has no image observation to record a video of")
        obs = driver.reset()
        if frames is not None:
            frames.append(np.array(obs[image]))
        carry = agent.initial(num)
        ret, length = np.zeros(num), np.zeros(num, np.int64)
        started = num  # episodes begun so far; an env whose episode would exceed the budget stops counting
        active = np.ones(num, bool)
        while active.any():
            key, sub = jax.random.split(key)
            carry, action = agent.act(params, carry, obs, sub, mode)
            obs = driver.step(np.asarray(action))
            if frames is not None:
                frames.append(np.where(active[:, None, None, None], obs[image], 0).astype(np.uint8))
            ret += obs["reward"] * active
            length += active & ~obs["is_first"]
            for i in np.flatnonzero(obs["is_last"] & active):
                logs = {k[len("log_"):]: float(v[i]) for k, v in obs.items() if k.startswith("log_")}
                finished.append({"return": ret[i], "length": length[i], **logs})
                ret[i], length[i] = 0.0, 0
                if started < episodes:
                    started += 1
                else:
                    active[i] = False
    out = {"eval/episodes": len(finished)}
    for name in {k for episode in finished for k in episode}:
        values = np.array([e[name] for e in finished if name in e], np.float64)
        out[f"eval/{name}"] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
    return out


class _Progress:
    """The terminal progress bar (tqdm). A "prefill" bar runs while the replay fills with random actions; training
    gets a bar of its own whose rate and ETA are averaged from the start of training (the prefill's speed would make
    the ETA far too short). It says "compiling" while the policy and the first update compile, and shows live
    updates per second."""

    def __init__(self, total: int, counters: Counters, enabled: bool):
        self.enabled, self.total = enabled, total
        self._training = counters.updates > 0
        self._phase = "train" if self._training else "prefill"
        self.bar = self._bar(counters)
        self._extra = ""
        self._shown = 0.0

    def _bar(self, counters: Counters):
        self._start = (time.monotonic(), counters.env_steps, counters.updates)
        return tqdm.tqdm(total=self.total, initial=counters.env_steps, unit="step", disable=not self.enabled,
                         dynamic_ncols=True, smoothing=0, desc=self._phase, leave=self._phase == "train")

    def compiling(self, what: str = "update") -> None:
        if self.enabled:
            self.bar.set_description_str(f"compiling the {what} (once)", refresh=True)

    def update(self, counters: Counters) -> None:
        if not self.enabled:
            return
        if not self._training and counters.updates > 0:  # training began: a fresh bar, rates and ETA from here on
            self._training, self._phase = True, "train"
            self.bar.close()
            self.bar = self._bar(counters)
        if self.bar.desc != self._phase:
            self.bar.set_description_str(self._phase, refresh=False)
        self.bar.update(counters.env_steps - self.bar.n)
        now = time.monotonic()
        if now - self._shown >= 1.0 and now - self._start[0] >= 1.0:  # the bar itself shows env steps per second
            self._shown = now
            live = f"upd/s {(counters.updates - self._start[2]) / (now - self._start[0]):.3g}"
            self.bar.set_postfix_str(f"{live} {self._extra}".strip())

    def postfix(self, logged: dict) -> None:
        self._extra = _postfix(logged, rates=False)

    def close(self) -> None:
        self.bar.close()


def _postfix(logged: dict, rates: bool = True) -> str:
    parts = []
    for key, name in (("fps/env_steps_per_s", "env/s"), ("fps/updates_per_s", "upd/s"),
                      ("episode/return", "return"), ("episode/success_recent", "success"),
                      ("eval/success", "eval")):
        if key in logged and (rates or not key.startswith("fps/")):
            parts.append(f"{name} {logged[key]:.3g}")
    return " ".join(parts)


def finished_result(config: Config) -> dict | None:
    """The saved result of a run that already finished with this many steps (or solved its task), else None."""
    path = Path(config.logdir) / RESULT_FILE
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(result, dict) or "env_steps" not in result:
        return None
    if result["env_steps"] >= config.run.steps or result.get("solved"):
        return result
    return None


def check_updates(config: Config, start: int = 0) -> None:
    """Refuse a run that would end without a single update (its "result" would be an untrained agent's).

    Updates start once `run.prefill` env steps are done and the replay holds `run.batch_size` windows of
    `run.batch_length` steps; from then on each env step owes train_ratio / (B·L) updates.
    """
    run, envs = config.run, config.env.num_envs
    if start >= run.steps:
        return  # nothing left to train: a finished (or checkpointed-at-the-end) run
    per_env = run.steps // envs
    if run.steps <= run.prefill:
        raise ConfigError(
            f"run.steps={run.steps:,} is not above run.prefill={run.prefill:,}: the run would only act randomly and "
            "do no updates; raise run.steps (--steps) or lower run.prefill"
        )
    windows_from = envs * (run.batch_length + math.ceil(run.batch_size / envs) - 1)
    if run.steps <= windows_from:
        raise ConfigError(
            f"run.batch_length={run.batch_length} is longer than the {per_env:,} steps each of the env.num_envs={envs} "
            f"envs collects in run.steps={run.steps:,}: no training window ever fills, so no update would happen; "
            "raise run.steps or lower run.batch_length"
        )
    per_update = run.batch_size * run.batch_length
    updates = (run.steps - max(run.prefill, windows_from, start)) * run.train_ratio / per_update
    if updates < 1:
        raise ConfigError(
            f"run.steps={run.steps:,} with run.train_ratio={run.train_ratio:g} gives less than one update "
            f"(train_ratio / (batch_size·batch_length) = {run.train_ratio / per_update:.3g} "
            "updates per env step after the prefill); raise run.steps or run.train_ratio"
        )


def _checkpointed_step(logdir: Path) -> int:
    """The step of a run directory's latest checkpoint (0 if none), without creating anything."""
    directory = logdir / "checkpoints"
    if not directory.is_dir():
        return 0
    return Checkpointer(directory).latest() or 0


def train(config: Config, *, force: bool = False, quiet: bool = False) -> dict:
    """Train (or resume) a run; returns the last logged metrics plus a final evaluation if configured.

    A run that already finished (its `result.json` covers `run.steps`) is not trained or evaluated again: its saved
    result comes back with `"finished_before": True`. A run that would do no update is refused (ConfigError).
    """
    done = finished_result(config)
    if done is not None:
        return {**done, "finished_before": True}
    logdir = Path(config.logdir)
    check_updates(config, _checkpointed_step(logdir) if logdir.is_dir() else 0)
    trainer = Trainer(config, force=force, quiet=quiet)
    try:
        (logdir / RESULT_FILE).unlink(missing_ok=True)  # training further: the old result no longer describes it
        result = trainer.run()
        if not result["stopped_early"] and config.run.eval_episodes:
            final = trainer.eval_round(config.run.eval_episodes)
            trainer.logger.write(trainer.counters.env_steps, final)
            result.update(final)
        result["env_steps"] = trainer.counters.env_steps
        result["updates"] = trainer.counters.updates
        result["wall_s"] = trainer.counters.wall_s
        if not result["stopped_early"] and dist.is_main():  # result.json marks a finished run (the sweep skips those)
            tmp = logdir / (RESULT_FILE + ".tmp")
            tmp.write_text(json.dumps(result, indent=1))
            tmp.replace(logdir / RESULT_FILE)
        return result
    finally:
        trainer.close()


def format_result(result: dict, logdir: str | Path) -> str:
    """A few labelled lines for the end of `r2i train` (the full result is in result.json and metrics.jsonl)."""
    steps, updates = result.get("env_steps", 0), result.get("updates", 0)
    wall = result.get("wall_s", 0.0)
    if result.get("finished_before"):
        head = f"r2i: {logdir} already finished ({steps:,} env steps); raise --steps to train further"
    elif result.get("stopped_early"):
        head = f"r2i: stopped at env step {steps:,}"
    else:
        head = f"r2i: finished{' (task solved)' if result.get('solved') else ''}"
    lines = [head, f"  trained     {steps:,} env steps, {updates:,} updates, {wall / 60:.1f} min"]
    if updates == 0:
        lines.append("  WARNING     no update was made: the agent is untrained (raise run.steps above run.prefill)")
    if "eval/episodes" in result:
        parts = [f"return {result['eval/return']:.4g}"] if "eval/return" in result else []
        parts += [f"{k[5:]} {v:.4g}" for k, v in sorted(result.items())
                  if k.startswith("eval/") and k not in ("eval/return", "eval/episodes", "eval/length")]
        lines.append(f"  evaluation  {int(result['eval/episodes'])} episodes: {', '.join(parts)}")
    training = [f"return {result['episode/return']:.4g}"] if "episode/return" in result else []
    if "episode/success_recent" in result:
        training.append(f"success {result['episode/success_recent']:.3g}")
    if training:
        lines.append(f"  training    last episodes: {', '.join(training)}")
    files = ("" if result.get("stopped_early") else "result.json, ") + "metrics.jsonl, tb/, checkpoints/"
    lines.append(f"  run dir     {logdir} ({files})")
    return "\n".join(lines)


def load_config(logdir: str | Path) -> Config:
    path = Path(logdir) / CONFIG_FILE
    if not path.exists():
        raise ConfigError(f"{logdir} is not an r2i run directory (no {CONFIG_FILE}); pass the --logdir of a run")
    return cfgmod.from_dict(yaml.safe_load(path.read_text()))


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use the `r2i train` command")
