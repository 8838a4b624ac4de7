"""Clocks that tell the training loop when to train, log, evaluate and checkpoint.

Each clock holds the one number a checkpoint must restore for a resumed run to fire at the same env steps as an
uninterrupted one (`Every.next`, `Ratio.credit`); `r2i.loop` stores these among its checkpointed counters. A wall-clock
period (`EverySeconds`) and a `Stopwatch` restart with each session: wall time is not replayed by a resume.
`PhaseTimer` splits the wall clock between the loop's phases (acting, env, replay, updates, evaluation, checkpoints).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Every:
    """Fires at the first step it is asked about, then once `period` units have passed since it last fired.

    `next` is the step from which it fires again; a period of 0 never fires. `every(step)` returns True when it
    fires and then waits until `step + period` — counted from the step it fired at, not from `next`, so a loop that
    advances by several units at a time never fires twice in a row to catch up.
    """

    period: int
    next: int = 0

    def __call__(self, step: int) -> bool:
        if not self.period or step < self.next:
            return False
        self.next = step + self.period
        return True


@dataclass
class Ratio:
    """Converts progress into a whole number of events at a fixed rate, carrying the fraction over.

    Each call with `steps` new units owes `steps · ratio / unit` events (the training loop: env steps · replayed steps
    per env step / replayed steps per update = updates); `__call__` returns the whole events owed and keeps the
    fraction in `credit` for the next call. Computed in that order so the credit matches, bit for bit, checkpoints
    written before this class existed.
    """

    ratio: float
    unit: int = 1
    credit: float = 0.0

    def __call__(self, steps: int) -> int:
        self.credit += steps * self.ratio / self.unit
        due = int(self.credit)  # credit ≥ 0, so int() floors; credit - due is exact for credit < 2**53
        self.credit -= due
        return due


class EverySeconds:
    """A wall-clock period: `due()` once `period` seconds have passed since construction or the last `restart()`.

    Asking and restarting are separate calls because the loop must agree across processes before acting (a
    checkpoint is a collective operation) and restarts the period only once the work is done, so the period is the
    time between the end of one checkpoint and the start of the next.
    """

    def __init__(self, period: float, clock: Callable[[], float] = time.monotonic):
        self.period, self._clock = period, clock
        self._start = clock()

    def due(self) -> bool:
        return self._clock() - self._start >= self.period

    def restart(self) -> None:
        self._start = self._clock()


class Stopwatch:
    """Seconds of wall clock accumulated over sessions: starts at `offset` (the time of earlier sessions)."""

    def __init__(self, offset: float = 0.0, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._origin = clock() - offset

    def seconds(self) -> float:
        return self._clock() - self._origin


class PhaseTimer:
    """Wall-clock seconds spent in named phases since the last `shares()`, as shares of that interval.

        with timer("train"):
            ...one update...
        timer.shares()  # {"time/train": 0.83, ..., "time/other": 0.02}, then the next interval starts

    Shares rather than seconds, so that runs on a shared or contended machine still compare as ratios. A phase timed
    inside another is counted in both; the loop times disjoint phases, so its shares sum to 1 with `time/other`
    (the rest: logging, the progress bar, the loop itself). Phases that ran in an interval are reported, and the
    phases named at construction always (as 0.0 when they did not run), so that curves have no gaps.
    """

    def __init__(self, phases: tuple[str, ...] = (), clock: Callable[[], float] = time.perf_counter):
        self._clock, self._phases = clock, phases
        self._seconds: dict[str, float] = dict.fromkeys(phases, 0.0)
        self._since = clock()

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        start = self._clock()
        try:
            yield
        finally:
            self._seconds[phase] = self._seconds.get(phase, 0.0) + self._clock() - start

    def shares(self) -> dict[str, float]:
        """`time/<phase>`: the phase's share of the wall clock since the last call, and `time/other` for the rest."""
        now = self._clock()
        elapsed = now - self._since
        out = {f"time/{k}": v / elapsed if elapsed > 0 else 0.0 for k, v in self._seconds.items()}
        out["time/other"] = max(0.0, 1.0 - sum(out.values())) if elapsed > 0 else 0.0
        self._seconds, self._since = dict.fromkeys(self._phases, 0.0), now
        return out
