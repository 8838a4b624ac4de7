"""What a training run shows on the terminal: the progress bar, the periodic status line and the final summary."""

from __future__ import annotations

import time
from pathlib import Path

import tqdm


class Progress:
    """The terminal progress bar (tqdm). A "prefill" bar runs while the replay fills with random actions; training
    gets a bar of its own whose rate and ETA are averaged from the start of training (the prefill's speed would make
    the ETA far too short). It says "compiling" while the policy and the first update compile, and shows live
    updates per second. `counters` is the loop's `r2i.loop.Counters` (only `env_steps` and `updates` are read)."""

    def __init__(self, total: int, counters, enabled: bool):
        self.enabled, self.total = enabled, total
        self._training = counters.updates > 0
        self._phase = "train" if self._training else "prefill"
        self.bar = self._bar(counters)
        self._extra = ""
        self._shown = 0.0

    def _bar(self, counters):
        self._start = (time.monotonic(), counters.env_steps, counters.updates)
        return tqdm.tqdm(total=self.total, initial=counters.env_steps, unit="step", disable=not self.enabled,
                         dynamic_ncols=True, smoothing=0, desc=self._phase, leave=self._phase == "train")

    def compiling(self, what: str = "update") -> None:
        if self.enabled:
            self.bar.set_description_str(f"compiling the {what} (once)", refresh=True)

    def update(self, counters) -> None:
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
        self._extra = postfix(logged, rates=False)

    def close(self) -> None:
        self.bar.close()


def postfix(logged: dict, rates: bool = True) -> str:
    """The headline figures of a logged record, for the progress bar or the status line."""
    parts = []
    for key, name in (("fps/env_steps_per_s", "env/s"), ("fps/updates_per_s", "upd/s"),
                      ("episode/return", "return"), ("episode/success_recent", "success"),
                      ("eval/success", "eval")):
        if key in logged and (rates or not key.startswith("fps/")):
            parts.append(f"{name} {logged[key]:.3g}")
    return " ".join(parts)


def format_result(result: dict, logdir: str | Path) -> str:
    """A few labelled lines for the end of `r2i train` (the full result is in result.json and metrics.jsonl)."""
    steps, updates = result.get("env_steps", 0), result.get("updates", 0)
    wall = result.get("wall_s", 0.0)
    if result.get("finished_before") == "solved":
        head = (f"r2i: {logdir} already solved its task ({steps:,} env steps); to train it further, set "
                "run.stop_at_success=0 (never stop) or above its score, with --force")
    elif result.get("finished_before"):
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
