"""The loop's clocks: when to log and evaluate (Every), how many updates the train ratio owes (Ratio), and the
wall-clock period of checkpoints (EverySeconds, Stopwatch)."""

from __future__ import annotations

import itertools

from r2i.clocks import Every, EverySeconds, PhaseTimer, Ratio, Stopwatch


def test_every_fires_at_the_first_step_then_a_period_after_each_firing():
    every = Every(10)
    fired = [step for step in range(4, 61, 4) if every(step)]  # 4 envs: steps advance by 4
    assert fired == [4, 16, 28, 40, 52]  # from the step it fired at: 4 + 10 → first step ≥ 14 is 16
    assert every.next == 62


def test_every_with_period_zero_never_fires():
    every = Every(0)
    assert not any(every(step) for step in range(100)) and every.next == 0


def test_every_resumed_from_its_state_fires_like_an_uninterrupted_one():
    straight = Every(7)
    expected = [step for step in range(3, 90, 3) if straight(step)]
    first = Every(7)
    fired = [step for step in range(3, 45, 3) if first(step)]
    resumed = Every(7, next=first.next)
    fired += [step for step in range(45, 90, 3) if resumed(step)]
    assert fired == expected


def _reference_updates(steps: int, ratio: float, unit: int, calls: int) -> tuple[list[int], float]:
    """The train-ratio accounting as the loop did it before the clocks existed: add the credit, then one update per
    whole unit of credit, subtracting 1.0 each time."""
    credit, out = 0.0, []
    for _ in range(calls):
        credit += steps * ratio / unit
        n = 0
        while credit >= 1.0:
            credit -= 1.0
            n += 1
        out.append(n)
    return out, credit


def test_ratio_owes_whole_updates_and_carries_the_fraction_bit_for_bit():
    for steps, ratio, unit in itertools.product((1, 4, 16), (1, 8, 48, 256, 1024, 0.3), (64, 256, 2048, 48 * 64)):
        clock = Ratio(ratio, unit)
        owed = [clock(steps) for _ in range(500)]
        reference, credit = _reference_updates(steps, ratio, unit, 500)
        assert owed == reference and clock.credit == credit  # exact: a checkpoint's credit resumes identically
        assert sum(owed) == int(500 * steps * ratio / unit + 1e-9)


def test_ratio_resumed_from_its_credit_continues_the_same_sequence():
    straight = Ratio(48, 256)
    expected = [straight(4) for _ in range(100)]
    first = Ratio(48, 256)
    owed = [first(4) for _ in range(37)]
    resumed = Ratio(48, 256, credit=first.credit)
    owed += [resumed(4) for _ in range(63)]
    assert owed == expected and resumed.credit == straight.credit


class _FakeTime:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_every_seconds_is_due_after_its_period_from_the_last_restart():
    time = _FakeTime()
    clock = EverySeconds(60.0, clock=time)
    time.now += 59.9
    assert not clock.due()
    time.now += 0.1
    assert clock.due() and clock.due()  # asking does not restart it: the caller restarts once the work is done
    time.now += 30.0
    clock.restart()
    time.now += 59.0
    assert not clock.due()


def test_stopwatch_adds_the_earlier_sessions():
    time = _FakeTime()
    watch = Stopwatch(offset=12.5, clock=time)
    assert watch.seconds() == 12.5
    time.now += 2.0
    assert watch.seconds() == 14.5


def test_phase_timer_gives_each_phase_its_share_of_the_interval_and_the_rest_to_other():
    time = _FakeTime()
    timer = PhaseTimer(("act", "train", "eval"), clock=time)
    with timer("act"):
        time.now += 1.0
    for _ in range(2):
        with timer("train"):
            time.now += 3.0
    time.now += 1.0  # outside every phase
    assert timer.shares() == {"time/act": 0.125, "time/train": 0.75, "time/eval": 0.0, "time/other": 0.125}
    # The next interval starts at the last call: nothing carries over, named phases stay (at 0), others appear.
    with timer("checkpoint"):
        time.now += 4.0
    assert timer.shares() == {"time/act": 0.0, "time/train": 0.0, "time/eval": 0.0, "time/checkpoint": 1.0,
                              "time/other": 0.0}


def test_phase_timer_counts_a_phase_that_raised():
    time = _FakeTime()
    timer = PhaseTimer(clock=time)
    try:
        with timer("train"):
            time.now += 2.0
            raise RuntimeError
    except RuntimeError:
        pass
    time.now += 2.0
    assert timer.shares() == {"time/train": 0.5, "time/other": 0.5}
